"""The span and GenAI metrics of each provider attempt the inference router makes.

One span per attempt, named and described by the OpenTelemetry GenAI semantic conventions
(`chat <model>`, `text_completion <model>`, `embeddings <model>`), child of the API span; the
provider's own work (the queue wait, an upstream request carrying `traceparent`) happens with it
current. A stream's span lives until the stream ends, or until the client leaves.

The cost is kept per request, not per token: attributes are built once at the end, and only
when the span records; a stream's chunks are looked at for the first token, the finish reasons
and the usage chunk, nothing else (unless `telemetry.capture_content` asks for the text).

Timing: every duration and the time to first token count from the router's first attempt, so
a request that fell back reports what its client waited; `gen_ai.client.operation.duration`
counts each attempt on its own (PocketStack as a client of that provider).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel

from pocketstack._generated import models
from pocketstack.telemetry import evaluation, instruments, serving
from pocketstack.wire.chat_stream import ChatAssembler
from pocketstack.wire.fields import given, plain

T = TypeVar("T")

# Newer conventions than the installed opentelemetry-semantic-conventions (0.58b0) name it; no constant yet.
CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
# On the span as well as in the metric, so the local query API can derive it from stored spans.
TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token"
PROVIDER_ID = serving.PROVIDER_ID
FALLBACK = "pocketstack.fallback"  # true when a fallback of the model's own provider served it
ATTEMPT = "pocketstack.attempt"  # 1 for the first provider tried, 2 for the next...
ABANDONED = "pocketstack.stream.abandoned"  # the client left before the stream's end
EMBEDDINGS_COUNT = "pocketstack.embeddings.count"
CANCELLED = "cancelled"  # error.type of an attempt its client walked away from


@dataclass(frozen=True)
class Operation:
    """What the router was asked: the convention's operation name, the model, the request."""

    name: str  # chat, text_completion, embeddings, rerank
    model: str
    request: BaseModel


def provider_name(provider_type: str) -> str:
    """`gen_ai.provider.name`: `remote::openai` -> `openai` (the conventions' own value), `inline::llama-cpp`
    -> `llama_cpp`."""
    return provider_type.partition("::")[2].replace("-", "_") or provider_type


def _error_type(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return CANCELLED
    return type(exc).__name__  # PocketStack's error classes: a bounded set, as the metrics need


def _request_attributes(request: BaseModel) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if isinstance(request, models.ChatCompletionRequest):
        max_tokens = given(request.max_completion_tokens, given(request.max_tokens))
    elif isinstance(request, models.CompletionRequest):
        max_tokens = given(request.max_tokens)
    else:
        if isinstance(request, models.EmbeddingsRequest):
            attributes[gen_ai.GEN_AI_REQUEST_ENCODING_FORMATS] = [
                getattr(given(request.encoding_format, "float"), "value", "float")
            ]
        return attributes
    for key, value in (
        (gen_ai.GEN_AI_REQUEST_MAX_TOKENS, max_tokens),
        (gen_ai.GEN_AI_REQUEST_TEMPERATURE, given(request.temperature)),
        (gen_ai.GEN_AI_REQUEST_TOP_P, given(request.top_p)),
        (gen_ai.GEN_AI_REQUEST_SEED, given(request.seed)),
    ):
        if value is not None:
            attributes[key] = value
    n = given(request.n, 1)
    if n != 1:
        attributes[gen_ai.GEN_AI_REQUEST_CHOICE_COUNT] = n
    return attributes


# -- content (only with `telemetry.capture_content`), in the conventions' message JSON schemas ----


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append({"type": "text", "content": part.get("text", "")})
        elif isinstance(part, dict):
            parts.append({"type": str(part.get("type", "unknown"))})  # images, files: their kind, not their bytes
    return parts


def _call_parts(calls: Any) -> list[dict[str, Any]]:
    return [
        {"type": "tool_call", "id": c.get("id"), "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
        for c in calls or []
        if isinstance(c, dict) and isinstance(c.get("function"), dict)
    ]


def input_messages(request: BaseModel) -> list[dict[str, Any]]:
    if isinstance(request, models.ChatCompletionRequest):
        messages = []
        for message in request.messages:
            data = plain(message).model_dump(mode="json", exclude_none=True)
            role = data.get("role", "user")
            if role == "tool":
                parts = [
                    {"type": "tool_call_response", "id": data.get("tool_call_id"), "response": data.get("content")}
                ]
            else:
                parts = _parts(data.get("content")) + _call_parts(data.get("tool_calls"))
            messages.append({"role": role, "parts": parts})
        return messages
    if isinstance(request, models.CompletionRequest):
        prompt = plain(request.prompt)
        prompts = [prompt] if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)) else prompt
        return [
            {"role": "user", "parts": [{"type": "text", "content": p if isinstance(p, str) else str(p)}]}
            for p in prompts
        ]
    if isinstance(request, models.EmbeddingsRequest):
        texts = plain(request.input)
        texts = [texts] if isinstance(texts, str) else texts
        return [{"role": "user", "parts": [{"type": "text", "content": str(t)} for t in texts]}]
    return []


def output_messages(result: Any) -> list[dict[str, Any]]:
    messages = []
    if isinstance(result, models.ChatCompletion):
        for choice in result.choices:
            message = choice.message.model_dump(mode="json", exclude_none=True)
            parts = _parts(message.get("content") or message.get("refusal")) + _call_parts(message.get("tool_calls"))
            finish = getattr(choice.finish_reason, "value", choice.finish_reason)
            messages.append({"role": "assistant", "parts": parts, "finish_reason": finish})
    elif isinstance(result, models.Completion):
        for text_choice in result.choices:
            finish = getattr(text_choice.finish_reason, "value", text_choice.finish_reason)
            parts = [{"type": "text", "content": text_choice.text}]
            messages.append({"role": "assistant", "parts": parts, "finish_reason": finish})
    return messages


# -- what an answer says about itself ----------------------------------------------------------


@dataclass
class Answer:
    """What the span and the metrics report of a successful attempt."""

    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    vectors: int | None = None


def _usage(answer: Answer, usage: Any) -> None:
    if usage is None:
        return
    prompt = getattr(usage, "prompt_tokens", None)
    answer.input_tokens = prompt if isinstance(prompt, int) else None
    completion = getattr(usage, "completion_tokens", None)
    answer.output_tokens = completion if isinstance(completion, int) else None
    details = given(getattr(usage, "prompt_tokens_details", None))
    cached = given(getattr(details, "cached_tokens", None)) if details is not None else None
    answer.cached_tokens = cached if isinstance(cached, int) else None


def _finish(reason: Any) -> str:
    return str(getattr(reason, "value", reason))


def answer_of(result: Any) -> Answer:
    """A whole (non-streamed) answer: chat, text completion, embeddings or rerank."""
    answer = Answer(response_id=getattr(result, "id", None), response_model=getattr(result, "model", None))
    if isinstance(result, models.ChatCompletion | models.Completion):
        answer.finish_reasons = [_finish(c.finish_reason) for c in result.choices if c.finish_reason is not None]
        _usage(answer, given(result.usage))
    elif isinstance(result, models.EmbeddingsResponse):
        _usage(answer, result.usage)
        answer.vectors = len(result.data)
    return answer


class _StreamTally:
    """A stream's chunks, looked at as they pass: the first token, finish reasons, the usage chunk."""

    def __init__(self, capture: bool) -> None:
        self.answer = Answer(finish_reasons=[])
        self.first_token: float | None = None
        self.content_chunks = 0  # the output tokens when the stream carries no usage (one token a chunk)
        self.chat = ChatAssembler() if capture else None
        self.texts: dict[int, list[str]] | None = {} if capture else None
        self.text_finish: dict[int, Any] = {}

    def add(self, item: Any) -> None:
        answer = self.answer
        if answer.response_id is None:
            answer.response_id, answer.response_model = getattr(item, "id", None), getattr(item, "model", None)
        usage = given(getattr(item, "usage", None))
        if usage is not None:
            _usage(answer, usage)
        content = False
        if isinstance(item, models.ChatCompletionChunk):
            for choice in item.choices:
                delta = choice.delta
                if given(delta.content) or given(delta.tool_calls):
                    content = True
                if choice.finish_reason is not None:
                    cast(list[str], answer.finish_reasons).append(_finish(choice.finish_reason))
            if self.chat is not None:
                self.chat.add(item)
        elif isinstance(item, models.Completion):
            for text_choice in item.choices:
                if text_choice.text:
                    content = True
                    if self.texts is not None:
                        self.texts.setdefault(text_choice.index, []).append(text_choice.text)
                if text_choice.finish_reason is not None:
                    cast(list[str], answer.finish_reasons).append(_finish(text_choice.finish_reason))
                    self.text_finish[text_choice.index] = text_choice.finish_reason
        if content:
            self.content_chunks += 1
            if self.first_token is None:
                self.first_token = time.perf_counter()

    def counted(self) -> Answer:
        answer = self.answer
        if answer.output_tokens is None and self.content_chunks:
            answer.output_tokens = self.content_chunks
        return answer

    def output(self) -> list[dict[str, Any]]:
        if self.chat is not None and self.chat.first is not None:
            return output_messages(self.chat.completion(self.chat.first.model or ""))
        if self.texts:
            return [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "".join(self.texts[index])}],
                    "finish_reason": _finish(self.text_finish.get(index)),
                }
                for index in sorted(self.texts)
            ]
        return []


# -- one attempt -----------------------------------------------------------------------------------


class Attempt:
    """One provider call's span and metrics. End it once: `answered`, `failed`, or its stream's end."""

    def __init__(
        self, operation: Operation, provider_id: str, provider_type: str, position: int, number: int, started: float
    ) -> None:
        self.operation = operation
        self.provider_id = provider_id
        self.provider = provider_name(provider_type)
        self.position = position
        self.number = number
        self.request_started = started
        self.started = time.perf_counter()
        # The conventions: CLIENT for a call to a model, MAY be INTERNAL when the model runs in the same
        # process. So a remote is CLIENT (a network hop a trace viewer should show) and llama.cpp inside
        # the server INTERNAL.
        kind = SpanKind.CLIENT if provider_type.startswith("remote::") else SpanKind.INTERNAL
        self.span = instruments.tracer.start_span(
            f"{operation.name} {operation.model}", kind=kind, record_exception=False, set_status_on_exception=False
        )
        self.first_token = serving.FirstToken()
        self.ended = False

    @contextmanager
    def current(self) -> Iterator[None]:
        """The span current while the provider works (its queue wait, its upstream request's `traceparent`)."""
        noting = serving.expect_first_token(self.first_token)
        current = otel_context.attach(trace.set_span_in_context(self.span))  # use_span's work, without its extras
        try:
            yield
        finally:
            otel_context.detach(current)
            serving.stop_expecting(noting)

    def answered(self, result: Any) -> None:
        self._end(answer_of(result), self.first_token.at, output=result)

    def failed(self, exc: BaseException, final: bool) -> None:
        """`final`: the request fails with it (no fallback follows), so it counts as the server's answer."""
        self._end(None, None, error=_error_type(exc), final=final)

    async def watch(self, stream: AsyncIterator[T]) -> AsyncGenerator[T]:
        """The stream, passed through; the span ends with it. An error before the first item is left
        to the router (it may fall back), so the span ends there."""
        tally = _StreamTally(self.span.is_recording() and instruments.capture_content())
        started = False
        error: str | None = None
        try:
            async with aclosing(cast(AsyncGenerator[T], stream)) as items:  # closing it stops the provider's work
                async for item in items:
                    tally.add(item)
                    started = True
                    yield item
        except BaseException as exc:  # GeneratorExit: whoever read it stopped (the client left, a guardrail cut it)
            error = _error_type(exc)
            raise
        finally:
            if started or error is None:
                self._end(tally.counted(), tally.first_token, error=error, abandoned=error == CANCELLED, tally=tally)

    def _end(
        self,
        answer: Answer | None,
        first_token: float | None,
        *,
        error: str | None = None,
        final: bool = True,
        abandoned: bool = False,
        output: Any = None,
        tally: _StreamTally | None = None,
    ) -> None:
        if self.ended:
            return
        self.ended = True
        now = time.perf_counter()
        operation = self.operation
        labels: dict[str, Any] = {
            gen_ai.GEN_AI_OPERATION_NAME: operation.name,
            gen_ai.GEN_AI_REQUEST_MODEL: operation.model,
            gen_ai.GEN_AI_PROVIDER_NAME: self.provider,
            PROVIDER_ID: self.provider_id,
        }
        if answer is not None and answer.response_model:
            labels[gen_ai.GEN_AI_RESPONSE_MODEL] = answer.response_model
        if error is not None:
            labels[ERROR_TYPE] = error
        duration = now - self.request_started
        ttft = first_token - self.request_started if first_token is not None else None
        instruments.gen_ai_client_duration.record(now - self.started, labels)
        if final:
            instruments.gen_ai_server_duration.record(duration, labels)
        if answer is not None and error is None:
            self._record_tokens(answer, labels, duration, ttft)
        span = self.span
        if answer is not None and error is None:
            evaluation.generated(span, answer.response_id)  # an eval row's scores will name this generation
        if span.is_recording():
            span.set_attributes(self._attributes(labels, answer, ttft, abandoned))
            if instruments.capture_content():
                self._content(output, tally)
            if error is not None and not abandoned:
                span.set_status(Status(StatusCode.ERROR))
        span.end()

    def _record_tokens(self, answer: Answer, labels: dict[str, Any], duration: float, ttft: float | None) -> None:
        if answer.input_tokens is not None:
            instruments.gen_ai_token_usage.record(answer.input_tokens, {**labels, gen_ai.GEN_AI_TOKEN_TYPE: "input"})
        if answer.output_tokens is not None and self.operation.name != "embeddings":
            instruments.gen_ai_token_usage.record(answer.output_tokens, {**labels, gen_ai.GEN_AI_TOKEN_TYPE: "output"})
        if ttft is not None:
            instruments.gen_ai_server_ttft.record(ttft, labels)
            if answer.output_tokens is not None and answer.output_tokens > 1:
                instruments.gen_ai_server_tpot.record((duration - ttft) / (answer.output_tokens - 1), labels)

    def _attributes(
        self, labels: dict[str, Any], answer: Answer | None, ttft: float | None, abandoned: bool
    ) -> dict[str, Any]:
        attributes = {**labels, **_request_attributes(self.operation.request), ATTEMPT: self.number}
        if self.position > 0:
            attributes[FALLBACK] = True
        if abandoned:
            attributes[ABANDONED] = True
        if ttft is not None:
            attributes[TIME_TO_FIRST_TOKEN] = ttft
        if answer is not None:
            for key, value in (
                (gen_ai.GEN_AI_RESPONSE_ID, answer.response_id),
                (gen_ai.GEN_AI_USAGE_INPUT_TOKENS, answer.input_tokens),
                (gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, answer.output_tokens),
                (CACHE_READ_INPUT_TOKENS, answer.cached_tokens),
                (EMBEDDINGS_COUNT, answer.vectors),
            ):
                if value is not None:
                    attributes[key] = value
            if answer.finish_reasons:
                attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = answer.finish_reasons
        return attributes

    def _content(self, output: Any, tally: _StreamTally | None) -> None:
        """The conventions' `gen_ai.input.messages` / `gen_ai.output.messages`, as JSON strings (span
        attributes cannot hold structures); embeddings get their inputs only."""
        attributes = {gen_ai.GEN_AI_INPUT_MESSAGES: json.dumps(input_messages(self.operation.request))}
        produced = tally.output() if tally is not None else output_messages(output) if output is not None else []
        if produced:
            attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES] = json.dumps(produced)
        self.span.set_attributes(attributes)
