"""Grammars that hold llama.cpp's output to a language: a caller's GBNF, or a JSON Schema converted.

A grammar llama.cpp cannot parse, or a schema whose keywords the converter would silently drop, is
a 400 before any token is generated.
"""

from __future__ import annotations

import json
from typing import Any

from pocketstack.errors import BadRequestError

# JSON Schema keywords llama-cpp-python's grammar converter ignores: output could break them.
UNENFORCEABLE = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "uniqueItems", "not", "if",
     "then", "else", "contains", "minProperties", "maxProperties", "dependentRequired", "dependentSchemas",
     "patternProperties", "propertyNames"}
)  # fmt: skip


def _unenforceable(schema: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in UNENFORCEABLE:
                found.append(f"{path}/{key}")
            if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
                for name, sub in value.items():
                    found += _unenforceable(sub, f"{path}/{key}/{name}")
            elif isinstance(value, dict | list):
                found += _unenforceable(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            found += _unenforceable(item, f"{path}/{index}")
    return found


def gbnf(text: str | None) -> Any:
    """A caller's GBNF grammar (llama.cpp's `grammar` extension); parsed against the model by `_check_grammar`."""
    if text is None:
        return None
    if not text.strip():
        raise BadRequestError("grammar is empty; leave it out for free text.", param="grammar")
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


def check_grammar(llm: Any, grammar: Any) -> None:
    """400 for a grammar llama.cpp cannot parse: llama-cpp-python only parses it when sampling
    starts, and then crashes the process on the NULL sampler an invalid grammar gives."""
    if grammar is None:
        return
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar._grammar.encode("utf-8"), b"root")
    if not sampler:
        raise BadRequestError(
            "The grammar does not parse as GBNF: check that a `root` rule exists, that every rule used is defined, "
            "and that brackets and quotes are closed.",
            param="grammar",
        )
    llama_cpp.llama_sampler_free(sampler)


# llama-cpp-python's schema converter lets JSON strings hold raw control characters (`[^"\\]`), so a
# model could write a newline inside a string and never close it; llama.cpp's own converter, and
# JSON itself, exclude them.
_LAX_CHAR = 'char ::= [^"\\\\] |'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def _strict_strings(gbnf: str) -> str:
    return "\n".join(
        _STRICT_CHAR + line[len(_LAX_CHAR) :] if line.startswith(_LAX_CHAR) else line for line in gbnf.splitlines()
    )


def grammar_of(schema: dict[str, Any] | bool | None, text: str | None = None) -> Any:
    """The grammar of a request: its own GBNF `text`, or its JSON Schema's (True: any JSON); None: free text."""
    if text is not None:
        if schema is not None:
            raise BadRequestError(
                "Give either `grammar` or a JSON `response_format` / forced tool call, not both.", param="grammar"
            )
        return gbnf(text)
    if schema is None:
        return None
    if isinstance(schema, dict) and (ignored := _unenforceable(schema)):
        raise BadRequestError(
            "The schema uses keywords the grammar cannot enforce, so the output could break them: "
            f"{', '.join(ignored[:5])}. Remove them (and check values after parsing).",
            code="unsupported_schema",
            param="response_format",
        )
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, json_schema_to_gbnf

    try:
        if schema is True:
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        return LlamaGrammar.from_string(_strict_strings(json_schema_to_gbnf(json.dumps(schema))), verbose=False)
    except Exception as exc:  # the converter raises bare exceptions on schemas it cannot express
        raise BadRequestError(f"The JSON schema cannot be enforced: {exc}", param="response_format") from exc
