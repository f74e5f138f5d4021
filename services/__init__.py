"""Domain logic, one package per domain."""
