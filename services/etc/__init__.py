"""Vehicles, ETC-card bindings to a Class II account, and the auto-debit authorisation behind them."""
