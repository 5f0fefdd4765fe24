"""SQLite in WAL mode, numbered migrations, and blocking calls kept off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pocketstack.errors import StartupError

Row = sqlite3.Row
MAX_INTEGER = 2**63 - 1  # SQLite's largest INTEGER; binding a larger Python int raises OverflowError


def bounded(value: int) -> int:
    """An offset or row count a request gave, as SQLite can bind it: the spec puts no upper bound on
    some (`start_index`), and any count past SQLite's largest already means "all" or "past the end"."""
    return min(value, MAX_INTEGER)


def storable(value: int) -> bool:
    """Whether SQLite can hold `value` (a 64-bit INTEGER): a number past that names no stored row."""
    return -MAX_INTEGER - 1 <= value <= MAX_INTEGER


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("pocketstack.storage") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class Database:
    """One connection, serialised by a lock, used from worker threads.

    Writers are short transactions, so one connection is enough for a single server; several
    processes may share the file (WAL readers do not block the writer, `busy_timeout` waits).
    """

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self.path = path

    def _run(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self._lock, self._connection:
            return self._connection.execute(sql, params).fetchall()

    def _run_many(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[Row]:
        rows: list[Row] = []
        with self._lock, self._connection:
            for sql, params in statements:
                rows = self._connection.execute(sql, params).fetchall()
        return rows

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await asyncio.to_thread(self._run, sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await asyncio.to_thread(self._run, sql, params)

    async def transaction(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[Row]:
        """Run the statements atomically: all of them land, or none. Answers the last one's rows (its
        RETURNING clause: whether a conditional write happened)."""
        return await asyncio.to_thread(self._run_many, list(statements))

    def transaction_blocking(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[Row]:
        """`transaction`, for a thread of its own (telemetry's span writer), never the event loop."""
        return self._run_many(list(statements))

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def _migrate(connection: sqlite3.Connection) -> None:
    (current,) = connection.execute("PRAGMA user_version").fetchone()
    for number, name, script in _migrations():
        if number <= current:
            continue
        try:
            connection.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
        except sqlite3.Error as exc:
            connection.rollback()
            raise StartupError(f"database migration {name} failed: {exc}") from exc


def open_database(path: Path) -> Database:
    """Open (creating if needed) and migrate the database; StartupError says what is wrong."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA busy_timeout = 5000")
        connection.execute("PRAGMA foreign_keys = ON")
        _migrate(connection)
    except PermissionError as exc:
        raise StartupError(
            f"cannot write state to {path.parent}: permission denied. "
            "Set POCKETSTACK_HOME to a folder you can write to."
        ) from exc
    except (sqlite3.OperationalError, OSError) as exc:
        raise StartupError(
            f"cannot open the state database {path}: {exc}. Set POCKETSTACK_HOME to a folder you can write to."
        ) from exc
    return Database(connection, path)


def open_database_readonly(path: Path) -> Database:
    """Open an existing database to read it, as it is (no migration, no lock): a server may be writing to it
    (WAL lets readers in beside one writer). StartupError when it cannot be read."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA busy_timeout = 5000")
    except sqlite3.Error as exc:
        raise StartupError(f"cannot read the state database {path}: {exc}") from exc
    return Database(connection, path)
