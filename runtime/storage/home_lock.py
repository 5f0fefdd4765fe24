"""One server per home: `pocketstack run` holds an exclusive lock on `<home>/server.lock` while it serves.

Two servers on one home would both resume the same in-progress work at start (a file's ingestion
among it) and do it twice. The command-line tools that only read or briefly write (`traces`, `keys`) take no lock:
SQLite's WAL and busy timeout serve them beside a running server.

The lock is `flock`, which the kernel drops when the process ends however it ends (SIGKILL
included), so a crash never leaves a stale lock behind. Where there is no `flock` (Windows), no
lock is taken.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

if sys.platform != "win32":
    import fcntl

LOCK_NAME = "server.lock"


class HomeInUseError(Exception):
    """Another process serves from this home; the message says which and what to do."""


class HomeLock:
    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, home: Path) -> HomeLock:
        """Take the home's lock, or HomeInUseError at once (never waits: the other server may run for days)."""
        if sys.platform == "win32":
            return cls(None)
        home.mkdir(parents=True, exist_ok=True)
        path = home / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise HomeInUseError(
                f"another PocketStack server (pid {holder}) is serving from {home}; stop it, or give this one "
                "a home of its own (POCKETSTACK_HOME)"
            ) from None
        os.ftruncate(fd, 0)  # who holds it, for the message another server gives
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None
