"""Rendering and signing contracts (and sealing the statements the bank issues) in worker processes.

Both are pure Python under the GIL (reportlab, pyHanko): threads keep the event loop responsive but
add no throughput, so a server doing them in threads signs at one core's pace whatever the machine.
``ContractWorkers`` runs them in a pool of processes (``ESIGN_PROCESSES``, the core count by default),
each of which loads the bank's signing identity and the contract font once, when it starts. With
``processes=0`` the work runs in a thread of this process, as before (useful where spawning is not).

Processes are started with ``spawn``: forking a process that runs an event loop and database driver
threads can copy a held lock into the child. The pool starts on first use; a child that dies takes
the pool with it (``BrokenProcessPool``), which is rebuilt once and the call retried.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from .render import RenderedPdf, render_contract
from .signing import seal_document, sign_contract
from .statement_pdf import StatementDocument, render_statement

STATEMENT_REASON = "银行出具对账单并加具电子签章"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdentitySource:
    """Where a worker process finds the bank's signing identity (the same rules as the server's)."""

    sandbox: bool
    var_dir: str
    key_path: str | None = None
    cert_path: str | None = None
    chain_path: str | None = None

    def load(self):
        from .certs import load_bank_identity

        return load_bank_identity(sandbox=self.sandbox, var_dir=self.var_dir, key_path=self.key_path,
                                  cert_path=self.cert_path, chain_path=self.chain_path)


# -- in the worker processes -------------------------------------------------------------------------

_identity = None
_font_path: str | None = None


def _start_worker(source: IdentitySource, font_path: str | None) -> None:
    global _identity, _font_path
    from .render import resolve_font

    _identity = source.load()
    _font_path = font_path
    resolve_font(font_path)  # parse the font once, not on the first contract


def _render(template_code: str, context: dict, kwargs: dict) -> RenderedPdf:
    return render_contract(template_code, context, font_path=_font_path, **kwargs)


def _sign(pdf: bytes, kwargs: dict) -> bytes:
    return sign_contract(pdf, identity=_identity, font_path=_font_path, **kwargs)


def _statement(doc: StatementDocument, tsa_url: str | None) -> bytes:
    return sealed_statement(doc, identity=_identity, font_path=_font_path, tsa_url=tsa_url)


def sealed_statement(doc: StatementDocument, *, identity, font_path: str | None, tsa_url: str | None) -> bytes:
    """Render and seal in one go (one trip to a worker process, the PDF never crosses twice)."""
    return seal_document(render_statement(doc, font_path=font_path), identity=identity, reason=STATEMENT_REASON,
                         font_path=font_path, tsa_url=tsa_url)


def _ready(hold_s: float) -> int:
    time.sleep(hold_s)  # long enough that the next call goes to another process
    return os.getpid()


# -- in the server -----------------------------------------------------------------------------------


class ContractWorkers:
    def __init__(self, *, processes: int, identity: Any, source: IdentitySource, font_path: str | None) -> None:
        self.processes = processes
        self._identity = identity  # this process's own, for processes=0
        self._source = source
        self._font_path = font_path
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Sanic starts its workers as daemonic processes, and multiprocessing refuses children to
            # those (a daemon's children would outlive it when it is killed). Ours are closed with the
            # worker (``close``, at server stop), and exit on their own when their work pipe closes if
            # the worker dies; so the flag is cleared for this process before the pool spawns them.
            current = multiprocessing.current_process()
            if current._config.get("daemon"):
                current._config["daemon"] = False
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self._source, self._font_path),
            )
        return self._pool

    async def _run(self, fn, *args):
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            try:
                return await loop.run_in_executor(self._executor(), fn, *args)
            except BrokenProcessPool:
                log.warning("a contract worker process died; restarting the pool", extra={"attempt": attempt})
                self._pool = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def warm_up(self) -> list[int]:
        """Start every worker process now (they spawn and load the identity and font in parallel)."""
        if not self.processes:
            return []
        seen: set[int] = set()
        for _ in range(5):  # a process still starting leaves its call to another: ask again
            seen.update(await asyncio.gather(*(self._run(_ready, 0.2) for _ in range(self.processes))))
            if len(seen) >= self.processes:
                break
        return sorted(seen)

    async def render(self, template_code: str, context: Mapping[str, Any], **kwargs) -> RenderedPdf:
        if not self.processes:
            return await asyncio.to_thread(render_contract, template_code, context, font_path=self._font_path, **kwargs)
        return await self._run(_render, template_code, dict(context), kwargs)

    async def sign(self, pdf: bytes, *, signature_png: bytes, signer_lines: Sequence[str], signed_at: dt.datetime,
                   tsa_url: str | None = None) -> bytes:
        kwargs = dict(signature_png=signature_png, signer_lines=list(signer_lines), signed_at=signed_at, tsa_url=tsa_url)
        if not self.processes:
            return await asyncio.to_thread(sign_contract, pdf, identity=self._identity, font_path=self._font_path,
                                           **kwargs)
        return await self._run(_sign, pdf, kwargs)

    async def statement(self, doc: StatementDocument, *, tsa_url: str | None = None) -> bytes:
        """An account statement rendered and sealed by the bank (PAdES), off the event loop."""
        if not self.processes:
            return await asyncio.to_thread(sealed_statement, doc, identity=self._identity, font_path=self._font_path,
                                           tsa_url=tsa_url)
        return await self._run(_statement, doc, tsa_url)

    def close(self) -> None:
        """At server stop, once requests are done: the processes are ended now, not left to be joined at
        interpreter exit (a process still starting up kept a stopping worker, and with it the server,
        waiting past the graceful timeout)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                if process.is_alive():
                    process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
