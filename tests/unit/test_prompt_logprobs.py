"""The arithmetic of prompt logprobs (prompt_logprobs.py) without a model: batch spans and text offsets."""

from __future__ import annotations

from itertools import pairwise

import pytest

from pocketstack.providers.inline.llama_cpp.prompt_logprobs import batches, text_offsets


@pytest.mark.parametrize("count", [1, 2, 3, 63, 64, 65, 66, 129, 200])
def test_batches_cover_the_prompt_and_none_is_a_lone_token(count: int) -> None:
    spans = batches(count, 64)
    assert spans[0][0] == 0 and spans[-1][1] == count
    assert all(a[1] == b[0] for a, b in pairwise(spans))  # contiguous, in order
    assert all(2 <= end - start <= 64 for start, end in spans) or count == 1


def test_text_offsets_count_characters_and_a_split_character_starts_where_it_does() -> None:
    euro = "€".encode()  # three bytes, which a byte-level tokenizer may cut into two tokens
    assert text_offsets([b"A", b" price", b" of", b" 5", euro[:2], euro[2:], b"."]) == [0, 1, 7, 10, 12, 12, 13]
    assert text_offsets([b"Hi", b" there"], leading=1) == [0, 0, 2]  # an added BOS reads as no text
