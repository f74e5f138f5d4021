"""Tortoise models, one module per entity family. ``MODEL_MODULES`` is what Tortoise and Aerich load."""

MODEL_MODULES = [
    "models.users",
    "models.infra",
    "models.identity",
    "models.audit",
    "models.contracts",
    "models.accounts",
    "models.etc",
    "models.partners",
    "models.payments",
    "models.risk",
    "models.staff",
]
