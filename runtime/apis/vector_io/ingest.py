"""Text out of uploaded files, and text cut into overlapping chunks: what vector-store ingestion stores and
POST /v1alpha/file-processors/process answers, through these same functions.

Chunks are windows of whole words cut from the original text (its line breaks kept). Their sizes
are counted in the embedding model's tokens: each distinct word is tokenized once by the model's
own tokenizer and a window's size is the sum over its words (exact for WordPiece, which splits on
whitespace first; within a token or two per window for BPE). Without a tokenizer (a remote
embedding model) a word counts as 1.3 tokens, English text's average.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pocketstack.apis.vector_io import contextual
from pocketstack.config import FileIngestionParams
from pocketstack.providers.file_processing import InvalidFileError, UnsupportedFileError, extract

if TYPE_CHECKING:
    from pocketstack.apis.inference.api import InferenceApi

ESTIMATED_TOKENS_PER_WORD = 1.3
DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS = 800, 400  # OpenAI's `auto`

__all__ = ["InvalidFileError", "UnsupportedFileError"]


def extract_text(path: Path, filename: str, content_type: str) -> str:
    """The file's text (providers/file_processing.py reads it; blocking: run it in a thread)."""
    return extract(path, filename, content_type).text


@dataclass(frozen=True)
class ChunkingPlan:
    max_tokens: int
    overlap_tokens: int


AUTO = ChunkingPlan(DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS)
WHOLE = ChunkingPlan(1 << 62, 0)  # one window over the whole text


def auto_plan(params: FileIngestionParams) -> ChunkingPlan:
    """What `auto` means in this server: vector_stores.file_ingestion_params, else OpenAI's 800 / 400 tokens."""
    size = params.default_chunk_size_tokens or DEFAULT_MAX_TOKENS
    overlap = params.default_chunk_overlap_tokens
    overlap = DEFAULT_OVERLAP_TOKENS if overlap is None else overlap
    return ChunkingPlan(size, min(overlap, size // 2))


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


async def chunk_document(
    inference: InferenceApi, text: str, model: str | None, plan: ChunkingPlan, reserve: int = 0
) -> tuple[list[TextChunk], str]:
    """The text's chunks, sized in the embedding model's tokens and never over what it can embed (less
    `reserve`, kept for a context when it would not fit otherwise; the WHOLE plan is never cut down); and what
    counted them (the model, or the estimate: no model, or one whose provider cannot count)."""
    spans = words(text)
    vocabulary = sorted({text[a:b] for a, b in spans})
    counts = await inference.count_tokens(model, vocabulary) if vocabulary and model is not None else None
    if model is None or counts is None:
        return chunk_text(text, plan), f"estimate ({ESTIMATED_TOKENS_PER_WORD} tokens per word)"
    room = counts.context_length - counts.special_tokens
    if reserve and plan.max_tokens + reserve > room:
        room = max(room - reserve, room // 2)
    if plan.max_tokens > room and plan != WHOLE:  # e.g. auto's 800 on a 512-token encoder: windows it embeds whole
        plan = ChunkingPlan(room, min(plan.overlap_tokens, room // 2))
    sizes = dict(zip(vocabulary, counts.counts, strict=True))
    return chunk_text(text, plan, sizes.__getitem__), model


def chunk_fields(
    document_id: str, source: str, index: int, piece: TextChunk, tokenizer: str
) -> tuple[str, dict[str, Any]]:
    """A chunk's id and its chunk_metadata (Llama Stack's ChunkMetadata fields), as ingestion stores them."""
    chunk_id = f"{document_id}-{index}"
    return chunk_id, {
        "document_id": document_id,
        "chunk_id": chunk_id,
        "chunk_index": index,
        "chunk_tokenizer": tokenizer,
        "content_token_count": round(piece.tokens),
        "source": source,
    }
