"""OpenAI's attribute filters (comparison and compound) compiled to SQL over a JSON column."""

from __future__ import annotations

import re
from typing import Any

from pocketstack.errors import BadRequestError

COMPARISONS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
MAX_DEPTH = 16


def to_sql(spec: Any, column: str, depth: int = 0) -> tuple[str, list[Any]]:
    """A WHERE fragment and its parameters; BadRequestError names what is malformed."""
    if depth > MAX_DEPTH:
        raise BadRequestError("filters are nested too deeply", param="filters")
    if not isinstance(spec, dict) or "type" not in spec:
        raise BadRequestError("a filter is an object with a `type`", param="filters")
    kind = spec["type"]
    if kind in ("and", "or"):
        parts = spec.get("filters")
        if not isinstance(parts, list) or not parts:
            raise BadRequestError(f"an `{kind}` filter needs a non-empty `filters` list", param="filters")
        compiled = [to_sql(part, column, depth + 1) for part in parts]
        sql = f" {kind.upper()} ".join(f"({fragment})" for fragment, _ in compiled)
        return sql, [value for _, values in compiled for value in values]
    key, value = spec.get("key"), spec.get("value")
    if not isinstance(key, str) or not KEY.match(key):
        raise BadRequestError("a comparison filter needs a `key` (letters, digits, _ . -)", param="filters")
    path = f'$."{key}"'
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not value or not all(_scalar(v) for v in value):
            raise BadRequestError(f"an `{kind}` filter needs a non-empty list of scalars", param="filters")
        marks = ", ".join("?" for _ in value)
        negate = "NOT " if kind == "nin" else ""
        return f"json_extract({column}, ?) {negate}IN ({marks})", [path, *map(_plain, value)]
    if kind not in COMPARISONS:
        raise BadRequestError(f"unknown filter type '{kind}'", param="filters")
    if not _scalar(value):
        raise BadRequestError("a comparison filter's `value` is a string, number or boolean", param="filters")
    if kind in ("gt", "gte", "lt", "lte") and isinstance(value, (str, bool)):
        raise BadRequestError(f"`{kind}` compares numbers", param="filters")
    return f"json_extract({column}, ?) {COMPARISONS[kind]} ?", [path, _plain(value)]


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value  # JSON true is 1 to json_extract
