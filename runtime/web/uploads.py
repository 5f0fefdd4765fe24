"""Multipart uploads, streamed to disk as they arrive, and files answered as raw bytes.

The generated stubs of multipart operations hand the implementation an `Upload` per binary form
field: a file already on disk (in the spool folder, on the same filesystem as the file store so
keeping it is a rename), never bytes in memory. What the implementation does not move away is
deleted when the request ends.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web

from pocketstack.errors import PayloadTooLargeError

CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Upload:
    path: Path
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class FileBody:
    """A file to answer with, as it lies on disk."""

    path: Path
    media_type: str = "application/octet-stream"
    filename: str | None = None


class UploadSpool:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes

    def remove_stale(self) -> None:
        """Spool files a crashed process left behind (older than an hour: none is still arriving)."""
        if not self.folder.is_dir():
            return
        cutoff = time.time() - 3600
        for leftover in self.folder.glob("upload-*"):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    async def receive(self, part: BodyPartReader) -> Upload:
        """Copy one form part to a new spool file, refusing (413) once it passes the limit."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"upload-{uuid.uuid4().hex}"
        size = 0
        try:
            with path.open("wb") as sink:
                while chunk := await part.read_chunk(CHUNK_BYTES):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLargeError(
                            f"The file is larger than this server accepts ({self.max_bytes} bytes; "
                            "server.max_upload_bytes).",
                            code="file_too_large",
                        )
                    sink.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        filename = os.path.basename(part.filename or "") or "upload"
        content_type = part.headers.get("Content-Type", "application/octet-stream")
        return Upload(path=path, filename=filename, content_type=content_type, size=size)


SPOOL = web.AppKey("upload_spool", UploadSpool)
