"""Text out of uploaded files, and text cut into overlapping chunks for a vector store.

Chunks are windows of whole words cut from the original text (its line breaks kept). Their sizes
are counted in the embedding model's tokens: each distinct word is tokenized once by the model's
own tokenizer and a window's size is the sum over its words (exact for WordPiece, which splits on
whitespace first; within a token or two per window for BPE). Without a tokenizer (a remote
embedding model) a word counts as 1.3 tokens, English text's average.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pocketstack.apis.vector_io import contextual

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".log", ".py", ".js", ".ts", ".java", ".c", ".h",
                           ".cpp", ".go", ".rs", ".sh", ".yaml", ".yml", ".toml", ".ini", ".xml", ".tex"})  # fmt: skip
ESTIMATED_TOKENS_PER_WORD = 1.3
DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS = 800, 400  # OpenAI's `auto`


class UnsupportedFileError(ValueError):
    """The file's type cannot be turned into text (its status becomes failed: unsupported_file)."""


class InvalidFileError(ValueError):
    """The file claims a type its bytes do not have (failed: invalid_file)."""


class _TextOfHtml(HTMLParser):
    SKIPPED = frozenset({"script", "style", "noscript", "template"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1
        elif tag in ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "tr", "section", "article"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _decode(data: bytes, kind: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidFileError(f"the {kind} file is not UTF-8 text: {exc}") from exc


def extract_text(path: Path, filename: str, content_type: str) -> str:
    suffix = Path(filename).suffix.lower()
    media = content_type.split(";")[0].strip().lower()
    if suffix == ".pdf" or media == "application/pdf":
        from pypdf import PdfReader  # loads with the first PDF
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(path)
            return "\n\n".join(page.extract_text() or "" for page in reader.pages)
        except (PdfReadError, ValueError, KeyError) as exc:
            raise InvalidFileError(f"the PDF cannot be read: {exc}") from exc
    data = path.read_bytes()
    if suffix in (".html", ".htm") or media in ("text/html", "application/xhtml+xml"):
        parser = _TextOfHtml()
        parser.feed(_decode(data, "HTML"))
        return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()
    if suffix in (".json", ".jsonl") or media in ("application/json", "application/jsonl"):
        text = _decode(data, "JSON")
        try:
            for line in text.splitlines() if suffix == ".jsonl" or media == "application/jsonl" else [text]:
                if line.strip():
                    json.loads(line)
        except ValueError as exc:
            raise InvalidFileError(f"the JSON file does not parse: {exc}") from exc
        return text
    if suffix == ".csv" or media == "text/csv":
        rows = csv.reader(io.StringIO(_decode(data, "CSV")))
        return "\n".join(", ".join(cell.strip() for cell in row) for row in rows)
    if suffix in TEXT_SUFFIXES or media.startswith("text/"):
        return _decode(data, "text")
    raise UnsupportedFileError(f"unsupported file type '{suffix or media}' (text, markdown, html, json, csv, pdf)")


@dataclass(frozen=True)
class ChunkingPlan:
    max_tokens: int
    overlap_tokens: int


AUTO = ChunkingPlan(DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS)


def chunking_plan(strategy: dict[str, Any] | None, auto: ChunkingPlan = AUTO) -> ChunkingPlan:
    """OpenAI's chunking_strategy: `auto` (800/400 unless configured) or `static` with its limits checked;
    or Llama Stack's `contextual` (its sizes, checked as Llama Stack checks them: contextual.py)."""
    if not strategy or strategy.get("type") == "auto":
        return auto
    if strategy.get("type") == "contextual":
        settings = contextual.parse(strategy)
        return ChunkingPlan(settings.max_chunk_size_tokens, settings.chunk_overlap_tokens)
    if strategy.get("type") != "static" or not isinstance(strategy.get("static"), dict):
        raise ValueError(
            "chunking_strategy is {type: auto}, {type: static, static: {...}} or {type: contextual, contextual: {...}}"
        )
    static: dict[str, object] = strategy["static"]
    size, overlap = static.get("max_chunk_size_tokens", 800), static.get("chunk_overlap_tokens", 400)
    if not isinstance(size, int) or not 100 <= size <= 4096:
        raise ValueError("max_chunk_size_tokens must be an integer from 100 to 4096")
    if not isinstance(overlap, int) or overlap < 0 or overlap > size // 2:
        raise ValueError("chunk_overlap_tokens must be an integer from 0 to half of max_chunk_size_tokens")
    return ChunkingPlan(size, overlap)


def words(text: str) -> list[tuple[int, int]]:
    """The spans of the text's words (runs of non-space)."""
    return [match.span() for match in re.finditer(r"\S+", text)]


@dataclass(frozen=True)
class TextChunk:
    text: str
    tokens: float  # exact with a tokenizer, else the estimate


def chunk_text(text: str, plan: ChunkingPlan, word_tokens: Callable[[str], int] | None = None) -> list[TextChunk]:
    """Windows of at most `max_tokens`, each starting up to `overlap_tokens` before the last one ended."""
    spans = words(text)
    if not spans:
        return []
    costs = [float(word_tokens(text[a:b])) if word_tokens is not None else ESTIMATED_TOKENS_PER_WORD for a, b in spans]
    chunks: list[TextChunk] = []
    start = 0
    while True:
        end, size = start, 0.0
        while end < len(spans) and (end == start or size + costs[end] <= plan.max_tokens):
            size += costs[end]
            end += 1
        chunks.append(TextChunk(text[spans[start][0] : spans[end - 1][1]], size))
        if end == len(spans):
            return chunks
        back, overlap = end, 0.0
        while back - 1 > start and overlap + costs[back - 1] <= plan.overlap_tokens:
            back -= 1
            overlap += costs[back]
        start = back
