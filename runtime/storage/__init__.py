"""State storage. SQLite (WAL) is the default backend; the driver choice stays in this package."""

from pocketstack.storage.sqlite import Database, open_database

__all__ = ["Database", "open_database"]
