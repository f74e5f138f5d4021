"""Encrypted object storage for uploads (ID photos, signature images).

``LocalEncryptedStorage`` keeps each object as an AES-256-GCM-sealed file under a folder; the same
interface can front object storage (S3/COS) later. File I/O runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Protocol

from core.pii import PiiCipher


class ObjectStorage(Protocol):
    async def put(self, data: bytes, *, purpose: str) -> str: ...

    async def get(self, key: str, *, purpose: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    async def list_older_than(self, seconds: float) -> list[str]: ...


class LocalEncryptedStorage:
    def __init__(self, root: str | Path, cipher: PiiCipher) -> None:
        self.root = Path(root)
        self._cipher = cipher

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError("bad storage key")
        return self.root / key[:2] / key

    async def put(self, data: bytes, *, purpose: str) -> str:
        key = uuid.uuid4().hex
        sealed = self._cipher.seal(data, purpose=purpose)
        await asyncio.to_thread(self._write, self._path(key), sealed)
        return key

    async def get(self, key: str, *, purpose: str) -> bytes:
        sealed = await asyncio.to_thread(self._path(key).read_bytes)
        return self._cipher.open(sealed, purpose=purpose)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def list_older_than(self, seconds: float) -> list[str]:
        """Keys of objects last written more than ``seconds`` ago; stale partial writes (a crash between
        writing and renaming) are removed on the way."""
        return await asyncio.to_thread(self._scan, time.time() - seconds)

    def _scan(self, cutoff: float) -> list[str]:
        keys = []
        if not self.root.is_dir():
            return keys
        for path in self.root.glob("*/*"):
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            if path.suffix == ".tmp":
                path.unlink(missing_ok=True)
            elif path.name.isalnum():
                keys.append(path.name)
        return keys

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
