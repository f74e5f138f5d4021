"""Guard for the synchronous cores: they must not run on an event loop."""

from __future__ import annotations

import asyncio


def refuse_running_loop(alternative: str) -> None:
    """pyHanko's sync API calls ``asyncio.run``, which fails deep inside on a running loop (and the work
    would block the loop if it didn't). Fail early and name the async wrapper to call instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"called on a running event loop; use {alternative}()")
