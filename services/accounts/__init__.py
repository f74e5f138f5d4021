"""Remote account opening, the ledger and the PBOC limits: ``rules`` (the one table of class rules),
``opening`` (applications and submit), ``numbers`` (account numbers), ``ledger`` (the only writer of
balances), ``funding`` (top-ups and withdrawals through the card network), ``views`` (what the API shows)."""
