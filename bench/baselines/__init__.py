"""Bare-stack baselines: minimal apps on the project's pinned versions, none of its code.

Each is a script run as its own process: ``python bench/baselines/<name>.py --port P [--db URL]``.
"""
