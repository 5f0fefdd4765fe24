"""Distributions shipped with PocketStack: run configs selected by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT = "edge"


def available() -> list[str]:
    folder = resources.files(__name__)
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def path_of(name: str) -> Path | None:
    """The YAML of a shipped distribution, or None when there is no such name."""
    entry = resources.files(__name__) / f"{name}.yaml"
    return Path(str(entry)) if entry.is_file() else None
