"""Vector stores: spans of searches, file ingestions and chunk inserts; gauges of each store's size.

The Vector IO API opens the spans; the embedding requests it makes meanwhile (the inference
router's `embeddings <model>` spans) start under them. The store is named as the GenAI
conventions name a retrieval source, `gen_ai.data_source.id`, on the spans and the gauges.

Ingestion runs on a background worker, after (or while) the request that attached the file is
answered, and may be resumed by the next server after a stop. So, as every background run
(background.py), its span is the root of a trace of its own, linked to the span of the request
that queued the file; and it is started as that request's user, noted when the file was queued,
so the user who attached a file sees its ingestion in their traces (the span store files a trace
under the user current when its root starts).

The gauges are read only when metrics are collected (a scrape, an OTLP export), on the collector's
thread: the sources registered here answer with one aggregate query each (serving.py's `Sources`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GEN_AI_DATA_SOURCE_ID
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Link, Span, SpanContext, Status, StatusCode

from pocketstack.security.principal import User, current_user, reset_current_user, set_current_user
from pocketstack.telemetry import instruments
from pocketstack.telemetry.background import launching_span
from pocketstack.telemetry.serving import Reading, Sources

STORE_ID = GEN_AI_DATA_SOURCE_ID
FILE_ID = "pocketstack.file.id"
SEARCH_MODE = "pocketstack.vector_store.search_mode"  # vector | keyword | hybrid
MAX_RESULTS = "pocketstack.vector_store.max_results"
RESULTS = "pocketstack.vector_store.results"  # the hits returned (after the score threshold)
RANKER = "pocketstack.vector_store.ranker"
REWRITE_QUERY = "pocketstack.vector_store.rewrite_query"
QUERY = "pocketstack.vector_store.query"  # only with capture_content
REWRITTEN_QUERY = "pocketstack.vector_store.rewritten_query"  # only with capture_content
CHUNKS = "pocketstack.vector_store.chunks"  # chunks written (an insert) or made (an ingestion)
CHUNKING_STRATEGY = "pocketstack.ingest.chunking_strategy"  # auto | static | contextual
MAX_CHUNK_TOKENS = "pocketstack.ingest.max_chunk_tokens"
CHUNK_OVERLAP_TOKENS = "pocketstack.ingest.chunk_overlap_tokens"
TOKENS = "pocketstack.ingest.tokens"  # the chunks' tokens in the embedding model's tokenizer, when it counted
BYTES = "pocketstack.ingest.bytes"  # bytes of chunk text stored (the file's usage_bytes)
STATUS = "pocketstack.ingest.status"  # completed | failed | cancelled (detached, or its batch cancelled)
CANCELLED = "cancelled"

store_chunks = Sources()
store_files = Sources()
store_bytes = Sources()

instruments.meter.create_observable_gauge(
    "pocketstack.vector_store.size",
    callbacks=[store_chunks.observe],
    unit="{chunk}",
    description="Chunks stored in each vector store (inline::sqlite-vec).",
)
instruments.meter.create_observable_gauge(
    "pocketstack.vector_store.files",
    callbacks=[store_files.observe],
    unit="{file}",
    description="Files attached to each vector store, whatever their ingestion status.",
)
instruments.meter.create_observable_gauge(
    "pocketstack.vector_store.usage",
    callbacks=[store_bytes.observe],
    unit="By",
    description="Bytes of text each vector store holds from its files (their usage_bytes; chunks inserted "
    "directly through vector-io are not counted).",
)


def reading(store_id: str, value: float) -> Reading:
    """One store's gauge reading."""
    return value, {STORE_ID: store_id}


def _failed(span: Span, exc: BaseException) -> None:
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        span.set_attribute(ERROR_TYPE, CANCELLED)  # the caller left or the server is stopping: nothing failed
        return
    span.set_attribute(ERROR_TYPE, type(exc).__name__)  # the error classes: a bounded set
    span.set_status(Status(StatusCode.ERROR))


@contextmanager
def _current(name: str, attributes: dict[str, Any]) -> Iterator[Span]:
    """A span current for the block; an error marks it and goes on unchanged."""
    span = instruments.tracer.start_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    except BaseException as exc:
        _failed(span, exc)
        raise
    finally:
        otel_context.detach(token)
        span.end()


class Search:
    """What a search span learns as the search goes: the rewritten query, the hits."""

    def __init__(self, span: Span) -> None:
        self.span = span

    def rewritten(self, query: str) -> None:
        if self.span.is_recording() and instruments.capture_content():
            self.span.set_attribute(REWRITTEN_QUERY, query)

    def found(self, results: int) -> None:
        self.span.set_attribute(RESULTS, results)


@contextmanager
def searching(
    store_id: str, query: str, *, mode: str, max_results: int, ranker: str, rewrite_query: bool = False
) -> Iterator[Search]:
    """`search <store id>`: the query's embedding and the provider's search happen under it."""
    attributes: dict[str, Any] = {
        STORE_ID: store_id,
        SEARCH_MODE: mode,
        MAX_RESULTS: max_results,
        RANKER: ranker,
        REWRITE_QUERY: rewrite_query,
    }
    if instruments.capture_content():
        attributes[QUERY] = query
    with _current(f"search {store_id}", attributes) as span:
        yield Search(span)


@contextmanager
def inserting(store_id: str, chunks: int) -> Iterator[None]:
    """`insert_chunks <store id>`: a write of chunks (the API's insert, or a batch of an ingestion)."""
    with _current(f"insert_chunks {store_id}", {STORE_ID: store_id, CHUNKS: chunks}):
        yield


class Ingestion:
    """What an ingestion span learns as the file is worked: its chunks, then how it ended."""

    def __init__(self, span: Span) -> None:
        self.span = span

    def chunked(self, chunks: int, max_tokens: int, overlap_tokens: int, tokens: float | None) -> None:
        if self.span.is_recording():
            sizes = {CHUNKS: chunks, MAX_CHUNK_TOKENS: max_tokens, CHUNK_OVERLAP_TOKENS: overlap_tokens}
            self.span.set_attributes(sizes)
            if tokens is not None:
                self.span.set_attribute(TOKENS, round(tokens))

    def finished(self, status: str, usage_bytes: int, error_code: str | None) -> None:
        self.span.set_attributes({STATUS: status, BYTES: usage_bytes})
        if error_code is not None:
            self.span.set_attribute(ERROR_TYPE, error_code)  # the file's last_error code: a bounded set
            self.span.set_status(Status(StatusCode.ERROR))


class Origin:
    """Where a queued ingestion comes from: the request's span (what its trace links to) and its user."""

    __slots__ = ("span", "user")

    def __init__(self) -> None:
        self.span = launching_span()
        self.user = current_user()


# The ingestion the worker is on: the places that end one (a failure found deep in it, or the
# final status) note it here without the recorder being handed down to each of them.
_ingestion: ContextVar[Ingestion | None] = ContextVar("pocketstack_ingestion", default=None)


def ingestion() -> Ingestion | None:
    """The ingestion being worked in this task, if any."""
    return _ingestion.get()


@contextmanager
def ingesting(
    store_id: str, file_id: str, strategy: str, *, link: SpanContext | None, user: User | None
) -> Iterator[Ingestion]:
    """`ingest <file id>`, a trace of its own linked to `link` (the request that queued the file; None:
    resumed at start) and owned by `user`: set as the current user only while the span starts, since
    the span store reads the owner then, and the ingestion itself keeps running as the server's work."""
    reset = set_current_user(user)
    try:
        span = instruments.tracer.start_span(
            f"ingest {file_id}",
            context=Context(),  # a root, never the worker's own context
            links=[Link(link)] if link is not None else None,
            attributes={STORE_ID: store_id, FILE_ID: file_id, CHUNKING_STRATEGY: strategy},
            record_exception=False,
            set_status_on_exception=False,
        )
    finally:
        reset_current_user(reset)
    recorder = Ingestion(span)
    noted = _ingestion.set(recorder)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield recorder
    except BaseException as exc:
        if not isinstance(exc, asyncio.CancelledError):
            span.set_attribute(STATUS, "failed")
        _failed(span, exc)
        raise
    finally:
        otel_context.detach(token)
        _ingestion.reset(noted)
        span.end()
