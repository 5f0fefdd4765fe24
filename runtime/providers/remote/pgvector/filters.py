"""Parsed attribute filters compiled to one SQL/JSON path predicate over the chunks' jsonb metadata.

Values travel as the path's variables, never inside the path text; keys were checked by the
parser (letters, digits, `_ . -`), so quoting them is enough. A comparison on a missing key or a
value of another type is unknown in SQL/JSON, so the row does not match: the same outcome as
SQLite's json_extract comparisons.
"""

from __future__ import annotations

from typing import Any

from pocketstack.providers.vector_search import Comparison, Filter, Scalar

OPERATORS = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def to_jsonpath(where: Filter) -> tuple[str, dict[str, Any]]:
    variables: dict[str, Any] = {}
    return _compile(where, variables), variables


def _compile(where: Filter, variables: dict[str, Any]) -> str:
    if not isinstance(where, Comparison):
        joiner = " && " if where.op == "and" else " || "
        return joiner.join(f"({_compile(part, variables)})" for part in where.parts)
    path = f'$."{where.key}"'
    if isinstance(where.value, tuple):
        # in: equal to one of them; nin: different from each (so a missing key matches neither)
        operator, joiner = ("==", " || ") if where.op == "in" else ("!=", " && ")
        return joiner.join(f"{path} {operator} {_variable(value, variables)}" for value in where.value)
    return f"{path} {OPERATORS[where.op]} {_variable(where.value, variables)}"


def _variable(value: Scalar, variables: dict[str, Any]) -> str:
    name = f"v{len(variables)}"
    variables[name] = value
    return f"${name}"
