"""The partner open API: partners and their credentials, signed requests and responses, debits and
refunds of bound accounts, statements, and signed notifications. The wire protocol: docs/open-api.md."""
