"""Text extraction and chunking (pure functions, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketstack.apis.vector_io import ingest
from tests.support.documents import pdf


def _tokens(word: str) -> int:
    return len(word)  # a stand-in tokenizer: one token per character, so sizes are easy to check


def test_windows_respect_the_token_budget_and_overlap() -> None:
    text = " ".join(f"w{i:03d}" for i in range(100))  # 100 words of 4 tokens
    chunks = ingest.chunk_text(text, ingest.ChunkingPlan(max_tokens=40, overlap_tokens=8), _tokens)
    assert all(c.tokens <= 40 for c in chunks) and chunks[0].tokens == 40
    assert chunks[0].text.split()[-2:] == chunks[1].text.split()[:2]  # 8 tokens of overlap = 2 words
    assert chunks[-1].text.split()[-1] == "w099"
    covered = {w for c in chunks for w in c.text.split()}
    assert covered == set(text.split())


def test_without_overlap_the_chunks_tile_the_text_and_keep_line_breaks() -> None:
    text = "alpha\nbeta gamma\n\ndelta epsilon zeta"
    chunks = ingest.chunk_text(text, ingest.ChunkingPlan(max_tokens=9, overlap_tokens=0), _tokens)
    assert [c.text for c in chunks] == ["alpha\nbeta", "gamma", "delta", "epsilon", "zeta"]
    assert [c.tokens for c in chunks] == [9, 5, 5, 7, 4]


def test_a_word_longer_than_the_budget_still_gets_a_chunk() -> None:
    chunks = ingest.chunk_text("a " + "x" * 50 + " b", ingest.ChunkingPlan(10, 2), _tokens)
    assert [c.text for c in chunks] == ["a", "x" * 50, "b"]


def test_without_a_tokenizer_words_are_estimated() -> None:
    text = " ".join(["word"] * 200)
    chunks = ingest.chunk_text(text, ingest.ChunkingPlan(130, 0))
    assert [len(c.text.split()) for c in chunks] == [100, 100]


@pytest.mark.parametrize(
    "strategy",
    [{"type": "static", "static": {"max_chunk_size_tokens": 50}}, {"type": "nope"},
     {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150}}],
)  # fmt: skip
def test_bad_strategies_are_refused(strategy: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ingest.chunking_plan(strategy)


def _pdf(path: Path, lines: list[str]) -> Path:
    path.write_bytes(pdf(lines))
    return path


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "guide.pdf", ["The harbour pilot boards at dawn.", "Tides turn at noon."])
    text = ingest.extract_text(pdf, "guide.pdf", "application/pdf")
    assert "harbour pilot boards at dawn" in text and "Tides turn at noon" in text


def test_a_broken_pdf_is_an_invalid_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\nnot really a pdf")
    with pytest.raises(ingest.InvalidFileError):
        ingest.extract_text(broken, "broken.pdf", "application/pdf")
