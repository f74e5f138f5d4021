"""Remove stored objects nothing refers to.

Files are written before the row that refers to them is committed (a rendered PDF, a signed PDF, an
upload), so a crash, a lost race or a failed commit leaves an encrypted file behind. Past an age that
no transaction lasts (a day by default), a file whose key no row holds is deleted.
"""

from __future__ import annotations

from models.contracts import Contract
from models.identity import Upload
from services.context import ServiceContext

# Every column that holds a storage key.
REFERENCES = ((Upload, "storage_key"), (Contract, "unsigned_key"), (Contract, "signed_key"))
BATCH = 500


async def sweep(ctx: ServiceContext, *, older_than_s: float, dry_run: bool = False) -> dict:
    candidates = await ctx.storage.list_older_than(older_than_s)
    removed: list[str] = []
    for start in range(0, len(candidates), BATCH):
        batch = candidates[start : start + BATCH]
        referenced: set[str] = set()
        for model, column in REFERENCES:
            referenced.update(await model.filter(**{f"{column}__in": batch}).values_list(column, flat=True))
        for key in batch:
            if key not in referenced:
                if not dry_run:
                    await ctx.storage.delete(key)
                removed.append(key)
    return {"scanned": len(candidates), "removed": len(removed), "kept": len(candidates) - len(removed),
            "dry_run": dry_run}
