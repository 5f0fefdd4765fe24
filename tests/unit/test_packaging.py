"""A non-editable install (a wheel, the single binary) contains every package of runtime/."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.config import REPO


def test_every_runtime_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    runtime = REPO / "runtime"
    found = {
        ".".join(["pocketstack", *init.parent.relative_to(runtime).parts])
        for init in runtime.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found == listed


def test_the_single_binary_finds_its_bundled_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pocketstack.modelstore import store
    from tests.support.config import write_gguf

    write_gguf(tmp_path / store.BUNDLED_MODELS / store.DEFAULT_CHAT_FILE)
    write_gguf(tmp_path / store.BUNDLED_MODELS / "all-MiniLM-L6-v2.gguf", architecture="bert", pooling=1)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    found = {m.name: m.info.model_type for m in store.discover(tmp_path / "empty-store")}
    assert found == {store.DEFAULT_CHAT_NAME: "llm", "all-MiniLM-L6-v2": "embedding"}
