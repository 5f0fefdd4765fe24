"""Multipart uploads, streamed to disk as they arrive, and files answered as raw bytes.

The generated stubs of multipart operations hand the implementation an `Upload` per binary form
field: a file already on disk (in the spool folder, on the same filesystem as the file store so
keeping it is a rename), never bytes in memory. What the implementation does not move away is
deleted when the request ends.

A spool file is locked (flock) from its creation until its request ends, so the next start tells
the partial body a killed process left (nobody holds its lock: no request will ever finish it)
from one a live server on the same home is still receiving, and removes it at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web

from pocketstack.errors import PayloadTooLargeError

log = logging.getLogger(__name__)
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Upload:
    path: Path
    filename: str
    content_type: str
    size: int
    held: int | None = None  # a descriptor holding the spool file's lock, closed when the request ends

    def release(self) -> None:
        if self.held is not None:
            os.close(self.held)


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
        """Spool files no live process holds (a process killed mid-upload left them), and the
        never-renamed names of files a process died creating (older than an hour: none is starting)."""
        if not self.folder.is_dir():
            return
        removed = sum(_remove_unheld(leftover) for leftover in self.folder.glob("upload-*"))
        if removed:
            log.info("removed %d partial uploads a stopped server left", removed)
        cutoff = time.time() - 3600
        for leftover in self.folder.glob(".upload-*"):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    async def receive(self, part: BodyPartReader) -> Upload:
        """Copy one form part to a new spool file, refusing (413) once it passes the limit."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"upload-{uuid.uuid4().hex}"
        pending, path = self.folder / f".{name}", self.folder / name
        sink = pending.open("wb")
        try:  # locked before it takes the name a sweeping start looks at: no start ever sees it unheld
            fcntl.flock(sink.fileno(), fcntl.LOCK_EX)
            os.rename(pending, path)
        except BaseException:
            sink.close()
            pending.unlink(missing_ok=True)
            raise
        size = 0
        try:
            with sink:
                while chunk := await part.read_chunk(CHUNK_BYTES):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLargeError(
                            f"The file is larger than this server accepts ({self.max_bytes} bytes; "
                            "server.max_upload_bytes).",
                            code="file_too_large",
                        )
                    sink.write(chunk)
                held = os.dup(sink.fileno())  # the lock stays with the request, not with this writer
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        filename = os.path.basename(part.filename or "") or "upload"
        content_type = part.headers.get("Content-Type", "application/octet-stream")
        return Upload(path=path, filename=filename, content_type=content_type, size=size, held=held)


def _remove_unheld(leftover: Path) -> bool:
    """Remove a spool file unless a live process holds its lock; whether it was removed."""
    try:
        descriptor = os.open(leftover, os.O_RDONLY)
    except OSError:
        return False  # moved into the file store, or removed, meanwhile
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # its request is still running
    else:
        leftover.unlink(missing_ok=True)
        return True
    finally:
        os.close(descriptor)


SPOOL = web.AppKey("upload_spool", UploadSpool)
