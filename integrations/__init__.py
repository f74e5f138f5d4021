"""Clients for outside parties behind small interfaces. They know nothing of our database."""
