"""Request bodies are parsed by pydantic-core's JSON parser for speed, accepting exactly what json.loads did."""

from __future__ import annotations

import json

import pytest

from pocketstack.web.codec import _parsed

ACCEPTED = [
    b'{"embedding": [0.1, -2.5e-3, 1e400, NaN], "n": 123456789012345678901234567890}',
    b'{"a": 1, "a": 2}',
    b'{"text": "\\ud800 a lone surrogate"}',  # pydantic-core refuses it; json.loads took it
    b"[" * 300 + b"]" * 300,  # deeper than pydantic-core's limit
]


@pytest.mark.parametrize("raw", ACCEPTED)
def test_what_json_accepted_parses_to_the_same_value(raw: bytes) -> None:
    assert repr(_parsed(raw)) == repr(json.loads(raw))


@pytest.mark.parametrize("raw", [b'{"a": }', b"\xff", b"[" * 5000 + b"]" * 5000])
def test_what_json_refused_is_still_refused(raw: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)):
        _parsed(raw)
