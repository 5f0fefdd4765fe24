"""The spec's component schemas, classified for the SDK generators: objects, unions, enums, aliases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]


_SYMBOL_WORDS = {"=": "eq", "!": "not", "~": "match", "<": "lt", ">": "gt", "+": "plus", "-": "minus", "*": "star"}


def spelled(value: str) -> str:
    """An enum value made only of symbols ("!=", "=~") in words ("not eq", "eq match"), so the SDKs'
    constants named after values stay distinct; any other value unchanged."""
    if any(ch.isalnum() for ch in value):
        return value
    return " ".join(_SYMBOL_WORDS.get(ch, "") for ch in value).strip()


def ref_name(schema: Schema) -> str:
    return str(schema.get("$ref", "")).rsplit("/", 1)[-1]


@dataclass
class SchemaTable:
    schemas: dict[str, Schema]
    supertypes: dict[str, list[str]] = field(default_factory=dict)  # schema -> unions it is a variant of

    def __post_init__(self) -> None:
        for name in self.schemas:
            if self.kind(name) != "union":
                continue
            for variant in self.variants(self.schemas[name]):
                target = ref_name(variant)
                if target and self.kind(target) in ("object", "union"):
                    self.supertypes.setdefault(target, []).append(name)

    def kind(self, name: str) -> str:
        """object, union, nullable (`anyOf: [X, null]`), enum (of strings) or alias (anything else)."""
        schema = self.schemas[name]
        if "anyOf" in schema or "oneOf" in schema:
            return "nullable" if self.nullable_inner(schema) is not None else "union"
        if schema.get("enum") and schema.get("type", "string") == "string":
            return "enum"
        if schema.get("type") == "object" or "properties" in schema:
            return "object"
        return "alias"

    @staticmethod
    def variants(schema: Schema) -> list[Schema]:
        return list(schema.get("anyOf") or schema.get("oneOf") or [])

    def nullable_inner(self, schema: Schema) -> Schema | None:
        """The one non-null variant of an `anyOf: [X, null]`, else None."""
        variants = self.variants(schema)
        others = [v for v in variants if v.get("type") != "null"]
        return others[0] if len(variants) == 2 and len(others) == 1 else None

    @staticmethod
    def base_type(schema: Schema) -> tuple[str | None, bool]:
        """A schema's JSON type without null, and whether null is allowed."""
        types = schema.get("type")
        if isinstance(types, list):
            rest = [t for t in types if t != "null"]
            return (rest[0] if len(rest) == 1 else None), "null" in types
        return types, False
