"""Parsed attribute filters compiled to SQLite over the chunks' JSON metadata column."""

from __future__ import annotations

from typing import Any

from pocketstack.providers.vector_search import Comparison, Filter

COMPARISONS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def to_sql(where: Filter, column: str) -> tuple[str, list[Any]]:
    """A WHERE fragment and its parameters (keys were checked by the parser; they still travel as parameters)."""
    if not isinstance(where, Comparison):
        compiled = [to_sql(part, column) for part in where.parts]
        sql = f" {where.op.upper()} ".join(f"({fragment})" for fragment, _ in compiled)
        return sql, [value for _, values in compiled for value in values]
    path = f'$."{where.key}"'
    if isinstance(where.value, tuple):
        marks = ", ".join("?" for _ in where.value)
        negate = "NOT " if where.op == "nin" else ""
        return f"json_extract({column}, ?) {negate}IN ({marks})", [path, *map(_plain, where.value)]
    return f"json_extract({column}, ?) {COMPARISONS[where.op]} ?", [path, _plain(where.value)]


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value  # JSON true is 1 to json_extract
