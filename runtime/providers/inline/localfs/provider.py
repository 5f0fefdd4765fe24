"""inline::localfs: file bytes in a folder, metadata in the state database, expiry enforced."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pocketstack._generated import models
from pocketstack.errors import NotFoundError, ResourceNotFoundError
from pocketstack.providers.base import Health, ProviderContext
from pocketstack.providers.inline.localfs.config import LocalFsConfig
from pocketstack.storage import Database
from pocketstack.storage.owners import OWNER_COLUMNS, Owner, Visibility, owner_of, owner_values
from pocketstack.storage.pages import page
from pocketstack.web.uploads import FileBody, Upload

log = logging.getLogger(__name__)
COLUMNS = "id, filename, purpose, bytes, content_type, created_at, expires_at"


def _file_object(row: Any) -> models.OpenAIFileObject:
    return models.OpenAIFileObject(
        id=row["id"],
        bytes=row["bytes"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        filename=row["filename"],
        purpose=models.FilePurpose(row["purpose"]),
        status="processed",
    )


class LocalFsFiles:
    def __init__(self, config: LocalFsConfig, context: ProviderContext) -> None:
        if context.database is None:
            raise RuntimeError("inline::localfs needs the state database")
        self._db: Database = context.database
        self.provider_id = context.provider_id
        self.folder = Path(config.storage_dir).expanduser() if config.storage_dir else context.home / "files"
        self._next_expiry: float | None = None  # the earliest expires_at of a stored file
        self._listeners: list[Callable[[list[str]], Awaitable[None]]] = []

    def on_removed(self, listener: Callable[[list[str]], Awaitable[None]]) -> None:
        """Call `listener` with the ids of files that are deleted or expire (vector stores drop them)."""
        self._listeners.append(listener)

    async def _removed(self, file_ids: list[str]) -> None:
        for listener in self._listeners:
            await listener(file_ids)

    async def initialize(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        await self._sweep()

    async def shutdown(self) -> None:
        return None

    async def health(self) -> Health:
        return Health("OK") if self.folder.is_dir() else Health("Error", f"{self.folder} is missing")

    def path_of(self, file_id: str) -> Path:
        return self.folder / file_id

    async def upload(
        self, upload: Upload, purpose: str, expires_after_s: int | None, owner: Owner | None = None
    ) -> models.OpenAIFileObject:
        file_id = f"file-{uuid.uuid4().hex}"
        created = int(time.time())
        expires = created + expires_after_s if expires_after_s is not None else None
        target = self.path_of(file_id)
        await asyncio.to_thread(_move, upload.path, target)
        if expires is not None:
            self._next_expiry = expires if self._next_expiry is None else min(self._next_expiry, expires)
        try:
            await self._db.execute(
                f"INSERT INTO files (provider_id, {COLUMNS}, {OWNER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.provider_id,
                    file_id,
                    upload.filename,
                    purpose,
                    upload.size,
                    upload.content_type,
                    created,
                    expires,
                    *owner_values(owner),
                ),
            )
        except BaseException:
            target.unlink(missing_ok=True)  # no bytes without metadata
            raise
        return (await self._rows("id = ?", (file_id,)))[0]

    async def list_files(
        self, *, after: str | None, limit: int, order: str, purpose: str | None, visible: Visibility | None = None
    ) -> models.ListFilesResponse:
        await self._maybe_sweep()
        clauses = ["provider_id = ?", "(expires_at IS NULL OR expires_at > ?)"]
        params: list[Any] = [self.provider_id, time.time()]
        if purpose is not None:
            clauses.append("purpose = ?")
            params.append(purpose)
        found = await page(
            self._db,
            table="files",
            columns=COLUMNS,
            where=clauses,
            params=params,
            after=after,
            limit=limit,
            descending=order == "desc",
            visible=visible,
            no_cursor="No file '{cursor}' to continue after.",
        )
        data = [_file_object(row) for row in found.rows]
        return models.ListFilesResponse(
            data=data,
            first_id=data[0].id if data else "",
            last_id=data[-1].id if data else "",
            has_more=found.has_more,
        )

    async def owner(self, file_id: str) -> Owner | None:
        rows = await self._db.fetch(
            f"SELECT {OWNER_COLUMNS} FROM files WHERE provider_id = ? AND id = ?", (self.provider_id, file_id)
        )
        if not rows:
            raise ResourceNotFoundError("file", file_id)
        return owner_of(rows[0])

    async def get(self, file_id: str) -> models.OpenAIFileObject:
        await self._maybe_sweep()
        found = await self._rows("id = ? AND (expires_at IS NULL OR expires_at > ?)", (file_id, time.time()))
        if not found:
            raise ResourceNotFoundError("file", file_id)
        return found[0]

    async def delete(self, file_id: str) -> models.OpenAIFileDeleteResponse:
        await self.get(file_id)
        await self._db.execute("DELETE FROM files WHERE id = ? AND provider_id = ?", (file_id, self.provider_id))
        self.path_of(file_id).unlink(missing_ok=True)
        await self._removed([file_id])
        return models.OpenAIFileDeleteResponse(id=file_id, deleted=True)

    async def content(self, file_id: str) -> FileBody:
        found = await self.get(file_id)
        rows = await self._db.fetch("SELECT content_type FROM files WHERE id = ?", (file_id,))
        path = self.path_of(file_id)
        if not path.is_file():
            log.error("file %s has metadata but no bytes at %s", file_id, path)
            raise NotFoundError(f"The content of file '{file_id}' is missing.", code="file_content_missing")
        return FileBody(path=path, media_type=rows[0]["content_type"], filename=found.filename)

    async def _rows(self, where: str, params: tuple[Any, ...]) -> list[models.OpenAIFileObject]:
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM files WHERE provider_id = ? AND {where}", (self.provider_id, *params)
        )
        return [_file_object(row) for row in rows]

    async def _maybe_sweep(self) -> None:
        if self._next_expiry is not None and time.time() >= self._next_expiry:
            await self._sweep()

    async def _sweep(self) -> None:
        """Expired files go: metadata first (they vanish from the API), then their bytes."""
        now = int(time.time())
        expired = await self._db.fetch(
            "SELECT id FROM files WHERE provider_id = ? AND expires_at IS NOT NULL AND expires_at <= ?",
            (self.provider_id, now),
        )
        nearest = await self._db.fetch(
            "SELECT MIN(expires_at) AS nearest FROM files WHERE provider_id = ? AND expires_at > ?",
            (self.provider_id, now),
        )
        self._next_expiry = nearest[0]["nearest"]
        if not expired:
            return
        await self._db.execute(
            "DELETE FROM files WHERE provider_id = ? AND expires_at IS NOT NULL AND expires_at <= ?",
            (self.provider_id, now),
        )
        for row in expired:
            self.path_of(row["id"]).unlink(missing_ok=True)
        log.info("removed %d expired files", len(expired))
        await self._removed([row["id"] for row in expired])


def _move(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)  # the spool is on the same filesystem by default: a rename
    except OSError:
        shutil.move(source, target)
