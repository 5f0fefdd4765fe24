"""The generated Swift package, parsed with tree-sitter-swift (there is no Swift compiler here).

Every file must parse without an error node; every schema must have its type and every operation
its method; and a small spec's models are compared with golden files, so a change to the
generator's output is seen in review.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_swift
import yaml

from codegen.header import header
from codegen.spec import load_spec
from codegen.swift import emit_models, type_name
from tests.support.config import REPO

SWIFT = REPO / "sdks" / "swift"
GOLDEN = Path(__file__).with_name("golden") / "swift"
PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))


def _errors(node: tree_sitter.Node) -> list[str]:
    if node.type == "ERROR" or node.is_missing:
        return [f"line {node.start_point[0] + 1}: {node.type} {(node.text or b'')[:80]!r}"]
    if not node.has_error:
        return []
    return [found for child in node.children for found in _errors(child)]


@pytest.mark.parametrize("path", sorted(SWIFT.rglob("*.swift")), ids=lambda p: p.name)
def test_every_swift_file_parses(path: Path) -> None:
    tree = PARSER.parse(path.read_bytes())
    assert _errors(tree.root_node) == []


def test_every_schema_and_operation_is_there() -> None:
    spec = yaml.safe_load((REPO / "spec" / "openapi.yaml").read_text())
    models = (SWIFT / "Sources" / "PocketStack" / "Models.swift").read_text()
    declared = set(re.findall(r"^public (?:struct|indirect enum) (\w+)", models, re.MULTILINE))
    for name, schema in spec["components"]["schemas"].items():
        if schema.get("type") == "object" or "properties" in schema or schema.get("enum"):
            assert type_name(name) in declared, name
    operations = (SWIFT / "Sources" / "PocketStack" / "Operations.swift").read_text()
    methods = set(re.findall(r"public func (\w+)\(", operations))
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and "operationId" in op:
                camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), op["operationId"])
                assert camel in methods, op["operationId"]
    assert "openaiChatCompletionStream" in methods and "AsyncThrowingStream<ChatCompletionChunk" in operations


GOLDEN_SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "golden", "version": "v1"},
    "tags": [{"name": "Inspect"}],
    "paths": {},
    "components": {
        "schemas": {
            "Role": {"type": "string", "enum": ["user", "assistant", "default"]},
            "TextPart": {
                "type": "object",
                "required": ["type", "text"],
                "properties": {"type": {"type": "string", "const": "text"}, "text": {"type": "string"}},
            },
            "Content": {
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#/components/schemas/TextPart"}}]
            },
            "Message": {
                "type": "object",
                "description": "A message.",
                "required": ["role", "content"],
                "properties": {
                    "role": {"$ref": "#/components/schemas/Role"},
                    "content": {"$ref": "#/components/schemas/Content"},
                    "max_tokens": {"type": ["integer", "null"]},
                    "metadata": {"type": "object", "additionalProperties": True},
                    "default": {"type": "string", "description": "a keyword as a field name: backticked"},
                },
            },
            "Error": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}},
        }
    },
}  # fmt: skip


def test_a_small_specs_models_match_the_golden_file(tmp_path: Path) -> None:
    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(GOLDEN_SPEC, sort_keys=False))
    generated = emit_models(load_spec(path), header("//"))
    assert _errors(PARSER.parse(generated.encode()).root_node) == []
    golden = GOLDEN / "Models.swift"
    assert generated == golden.read_text(), f"regenerate {golden} if the change is intended"
