"""Reading generated request models: optional fields (MISSING or null) and RootModel wrappers."""

from __future__ import annotations

from typing import Any

from pydantic import MISSING, RootModel


def given(value: Any, default: Any = None) -> Any:
    """A request field's value, or `default` when it was left out or sent as null."""
    return default if value is MISSING or value is None else value


def plain(value: Any) -> Any:
    """Unwrap RootModels (the generator's form of constrained unions) down to plain Python values."""
    if isinstance(value, RootModel):
        return plain(value.root)
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value
