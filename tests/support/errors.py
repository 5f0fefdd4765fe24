"""The spec's one error shape, as every failing request must return it."""

from __future__ import annotations

from typing import Any


def assert_error_shape(body: dict[str, Any]) -> dict[str, Any]:
    """Checks `{"error": {...}}` with a non-empty message and only the spec's keys; returns the detail."""
    assert set(body) == {"error"}
    detail = body["error"]
    assert isinstance(detail["message"], str) and detail["message"]
    assert set(detail) <= {"message", "type", "code", "param"}
    return detail  # type: ignore[no-any-return]
