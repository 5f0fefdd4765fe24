"""The `invoke_agent` span of an agent run: a response (Responses API) or an agent turn (Agents API).

The GenAI conventions' agent span (`gen_ai.operation.name` invoke_agent), INTERNAL: the agent runs
in this process. Its model calls (the inference router's `chat <model>` spans) and tool calls
(`execute_tool <name>`) are its children, so it is current while the run works. A run that answers
whole ends when it returns; a streamed one ends with its stream, and a background one with its task,
so the span's duration is the run's, not the HTTP answer's. A background run is a trace of its own,
linked to the request that started it (telemetry/background.py says why), as jobs and batches are.

A stream's span is made current around each step of the stream only (each `__anext__`), never
across a `yield`: the code reading the stream between two events must not run under it, and a
context token must be detached in the context it was attached in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from pocketstack.telemetry import instruments
from pocketstack.telemetry.background import launching_span

T = TypeVar("T")

INVOKE_AGENT = gen_ai.GenAiOperationNameValues.INVOKE_AGENT.value
ABANDONED = "pocketstack.stream.abandoned"  # the client left before the run's stream ended (as on chat spans)
CANCELLED = "cancelled"


class AgentRun:
    """One run's span. Start it with the run's name (`invoke_agent`, `invoke_agent <agent>`), and the
    user who runs it current (the span store files it under that user); end it once. `background`: the
    root of its own trace, linked to the current span (the request's)."""

    def __init__(self, name: str, *, background: bool = False) -> None:
        starter = launching_span() if background else None
        self.span = instruments.tracer.start_span(
            name,
            context=otel_context.Context() if background else None,
            links=[Link(starter)] if starter is not None else None,
            kind=SpanKind.INTERNAL,
            record_exception=False,
            set_status_on_exception=False,
        )
        self.context = trace.set_span_in_context(self.span)
        self.ended = False
        if self.span.is_recording():
            self.span.set_attribute(gen_ai.GEN_AI_OPERATION_NAME, INVOKE_AGENT)

    @property
    def recording(self) -> bool:
        return self.span.is_recording()

    def set(self, attributes: dict[str, Any]) -> None:
        """Attributes with a value (None ones left out); build them only when `recording`."""
        self.span.set_attributes({key: value for key, value in attributes.items() if value is not None})

    @contextmanager
    def current(self) -> Iterator[None]:
        token = otel_context.attach(self.context)
        try:
            yield
        finally:
            otel_context.detach(token)

    @contextmanager
    def working(self) -> Iterator[None]:
        """Current while the request works; if it raises, the run ends with its error (one that returns
        leaves the end to its answer, its stream or its background task)."""
        with self.current():
            try:
                yield
            except BaseException as exc:
                self.raised(exc)
                self.end()
                raise

    def usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        if self.recording:
            self.set({gen_ai.GEN_AI_USAGE_INPUT_TOKENS: input_tokens, gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens})

    def failed(self, error_type: str) -> None:
        """The run failed (`error_type`: an exception's class or a bounded error code, never free text)."""
        if self.recording:
            self.span.set_attribute(ERROR_TYPE, error_type)
            self.span.set_status(Status(StatusCode.ERROR))

    def raised(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            if self.recording:
                self.span.set_attributes({ERROR_TYPE: CANCELLED, ABANDONED: True})
            return
        self.failed(type(exc).__name__)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.span.end()

    async def follow(self, stream: AsyncIterator[T], settle: Callable[[], None]) -> AsyncGenerator[T]:
        """The run's stream, passed through with the span current while it works; `settle` (which reads
        how the run ended) and the span's end come after its last item, or when its reader leaves."""
        items = aiter(stream)
        try:
            while True:
                token = otel_context.attach(self.context)
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    break
                finally:
                    otel_context.detach(token)
                yield item
            settle()
        except BaseException as exc:
            self.raised(exc)
            raise
        finally:
            close = getattr(items, "aclose", None)
            try:
                if close is not None:  # the run's own generators end (and end their spans) before this one
                    token = otel_context.attach(self.context)
                    try:
                        await close()
                    finally:
                        otel_context.detach(token)
            finally:
                self.end()
