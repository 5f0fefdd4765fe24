from __future__ import annotations

from pathlib import Path

import pytest

from pocketstack.core.registry import Registry, Resource
from pocketstack.errors import ConflictError, StartupError
from pocketstack.storage import open_database


def _resource(identifier: str, source: str = "config") -> Resource:
    return Resource("model", identifier, "p", identifier, source, 0, {"identifier": identifier})  # type: ignore[arg-type]


async def test_resources_survive_a_reopen(tmp_path: Path) -> None:
    db = open_database(tmp_path / "state.db")
    await Registry(db).add("model", "a", "p", "a-res", {"identifier": "a"})
    db.close()
    db = open_database(tmp_path / "state.db")
    found = await Registry(db).get("model", "a")
    db.close()
    assert found is not None
    assert (found.provider_resource_id, found.body, found.source) == ("a-res", {"identifier": "a"}, "api")


async def test_add_refuses_a_taken_identifier(tmp_path: Path) -> None:
    registry = Registry(open_database(tmp_path / "state.db"))
    await registry.add("model", "a", "p", "a", {"v": 1})
    with pytest.raises(ConflictError):
        await registry.add("model", "a", "p", "a", {"v": 2})
    found = await registry.get("model", "a")
    assert found is not None and found.body == {"v": 1}


async def test_sync_config_replaces_only_config_entries(tmp_path: Path) -> None:
    registry = Registry(open_database(tmp_path / "state.db"))
    await registry.add("model", "by-api", "p", "by-api", {})
    await registry.sync_source("model", "config", [_resource("one"), _resource("two")])
    await registry.sync_source("model", "config", [_resource("two")])
    assert sorted(r.identifier for r in await registry.all("model")) == ["by-api", "two"]
    await registry.sync_source("model", "config", [])
    assert [r.identifier for r in await registry.all("model")] == ["by-api"]


async def test_migrations_are_recorded(tmp_path: Path) -> None:
    db = open_database(tmp_path / "state.db")
    (row,) = await db.fetch("PRAGMA user_version")
    assert row[0] >= 1
    (mode,) = await db.fetch("PRAGMA journal_mode")
    assert mode[0] == "wal"


def test_unwritable_folder_is_a_clear_startup_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StartupError, match="POCKETSTACK_HOME"):
        open_database(blocker / "sub" / "state.db")
