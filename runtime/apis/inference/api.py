"""Inference: chat, text completion and embeddings, routed to the providers that serve the model.

A model's chain is its own provider, then its `fallbacks` in order. A request goes to the first
whose circuit breaker lets traffic through, and moves on when that one cannot be reached, times
out or fails with a 5xx before the first byte (a stream's first chunk); errors after that, and
the caller's own mistakes (4xx), are returned as they are. `X-PocketStack-Provider` names the
provider that served the request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from pocketstack._generated import models, protocols
from pocketstack.apis.inference import completion_guardrails as text_rails
from pocketstack.apis.inference.completion_guardrails import choice_count, prompt_texts
from pocketstack.apis.inference.guardrails import Guardrails, input_messages, with_redacted_input
from pocketstack.apis.inference.telemetry import Attempt, Operation
from pocketstack.apis.inference.verdicts import Guard, Outcome
from pocketstack.apis.models import ModelsApi
from pocketstack.core.resources import SHIELD
from pocketstack.core.stack import Stack
from pocketstack.errors import (
    BadRequestError,
    PocketStackError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from pocketstack.providers.base import InferenceProvider, ServedModel, ShieldMessage, TokenCounts
from pocketstack.security.access import CHAT_COMPLETION, Action
from pocketstack.security.quota import metered, record_usage
from pocketstack.storage.chat_completions import ChatCompletionStore, StoredCompletion
from pocketstack.storage.owners import Owner
from pocketstack.web.context import served_by
from pocketstack.wire.chat_stream import ChatAssembler
from pocketstack.wire.fields import given

log = logging.getLogger(__name__)
T = TypeVar("T")
_ARTICLE = {"llm": "an", "embedding": "an", "rerank": "a"}


@dataclass(frozen=True)
class Target:
    provider_id: str
    model: ServedModel
    provider: InferenceProvider
    provider_type: str


def _fallback_worthy(exc: PocketStackError) -> bool:
    if isinstance(exc, UpstreamError | UpstreamTimeoutError | ServiceUnavailableError):
        return True
    return isinstance(exc, UpstreamStatusError) and exc.status >= 500


async def _primed(stream: AsyncIterator[T]) -> AsyncIterator[T]:
    """The stream with its first item already fetched, so failing to start can fall back."""
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = None

    async def chained() -> AsyncIterator[T]:
        try:
            if first is not None:
                yield first
                async for item in stream:
                    yield item
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    return chained()


def _stored_model(stored: StoredCompletion) -> models.StoredChatCompletion:
    return models.StoredChatCompletion.model_validate(
        {**stored.completion, "input_messages": stored.input_messages, "served_by": stored.served_by}
    )


class InferenceApi(protocols.Inference):
    def __init__(self, stack: Stack, models_api: ModelsApi) -> None:
        self.stack = stack
        self.models = models_api
        self.guardrails: Guardrails | None = None  # set when the safety API is served

    async def _chain(self, model_id: str, model_type: str, purpose: str) -> list[Target]:
        try:
            resource = await self.models.lookup(model_id)
        except ResourceNotFoundError:
            if await self.stack.table(SHIELD).find(model_id) is None:
                raise
            raise BadRequestError(  # moderations take a shield as `model`: say what went wrong here
                f"'{model_id}' is a shield, not a model; {purpose} needs {_ARTICLE[model_type]} {model_type} model "
                "(client.models.list()). Shields run through run-shield, moderations and guardrails.",
                code="wrong_model_type",
                param="model",
            ) from None
        actual = resource.body["model_type"]
        if actual != model_type:
            raise BadRequestError(
                f"Model '{resource.identifier}' is {_ARTICLE[actual]} {actual} model; {purpose} needs "
                f"{_ARTICLE[model_type]} {model_type} model.",
                code="wrong_model_type",
                param="model",
            )
        metadata = resource.body["metadata"]
        hops = [(resource.provider_id, resource.provider_resource_id)]
        hops += [(f["provider_id"], f["provider_model_id"]) for f in metadata.get("fallbacks", [])]
        targets = []
        for provider_id, provider_model_id in hops:
            instance = self.stack.providers.get(provider_id)
            if instance is None:
                log.warning("model %s names provider %s, which is not running", resource.identifier, provider_id)
                continue
            served = ServedModel(resource.identifier, provider_model_id, actual, metadata)
            provider = cast(InferenceProvider, instance.impl)
            targets.append(Target(provider_id, served, provider, instance.config.provider_type))
        if not targets:
            raise ServiceUnavailableError(f"No provider of model '{resource.identifier}' is running.")
        return targets

    async def _serve(
        self, targets: list[Target], call: Callable[[Target], Awaitable[T]], operation: Operation
    ) -> tuple[T, str]:
        """The answer and the provider that gave it. Returned, not left in a context variable: a
        shield's own model call (llama-guard) runs through here too, and would overwrite it.

        Each provider tried is an `Attempt` (telemetry.py): its span is current while the provider
        works, and a stream's span ends with the stream."""
        failures: list[str] = []
        last: PocketStackError | None = None
        started, tried = time.perf_counter(), 0
        for index, target in enumerate(targets):
            breaker = getattr(target.provider, "breaker", None)
            is_last = index == len(targets) - 1
            if breaker is not None and not breaker.available() and not is_last:
                failures.append(f"{target.provider_id}: circuit open ({breaker.last_error})")
                continue
            tried += 1
            attempt = Attempt(operation, target.provider_id, target.provider_type, index, tried, started)
            try:
                with attempt.current():
                    result = await call(target)
                    if isinstance(result, AsyncIterator):  # model tokens count against quotas (metered)
                        result = cast(T, await _primed(attempt.watch(metered(result))))
                    else:
                        record_usage(result)
            except PocketStackError as exc:
                final = not _fallback_worthy(exc) or is_last
                attempt.failed(exc, final)
                if final:
                    raise
                failures.append(f"{target.provider_id}: {exc.message}")
                last = exc
                log.warning("falling back from %s for %s: %s", target.provider_id, target.model.identifier, exc.message)
                continue
            except BaseException as exc:
                attempt.failed(exc, final=True)
                raise
            if not isinstance(result, AsyncIterator):
                attempt.answered(result)
            return result, target.provider_id
        assert last is not None  # the last target either returned or raised
        raise last

    async def _answer(self, targets: list[Target], call: Callable[[Target], Awaitable[T]], operation: Operation) -> T:
        """_serve for the routes that only answer: who served goes out in the response header."""
        result, provider_id = await self._serve(targets, call, operation)
        served_by.set(provider_id)
        return result

    @property
    def store(self) -> ChatCompletionStore:
        return ChatCompletionStore(self.stack.database)

    async def openai_chat_completion(
        self, request: models.ChatCompletionRequest
    ) -> models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk]:
        targets = await self._chain(request.model, "llm", "chat")
        if given(request.tool_choice) is not None and given(request.tools) is None:
            # Llama Stack's router (core/routers/inference.py) and OpenAI refuse it alike.
            raise BadRequestError("'tool_choice' is only allowed when 'tools' is also provided", param="tool_choice")
        # the request as redacting shields left it; provider_id is None when input shields refused it
        request, result, provider_id = await self._guarded(targets, request)
        served_by.set(provider_id)  # set last: the shields' own model calls set it while they judged
        # OpenAI's `store: false` is honoured (Llama Stack has no such field and stores every completion).
        if given(request.store, True) is False:
            return result
        inputs = [m.model_dump(mode="json", by_alias=True) for m in request.messages]
        owner = self.stack.access.owner()
        if isinstance(result, models.ChatCompletion):
            await self.store.add(result.model_dump(mode="json"), inputs, provider_id or "", owner)
            return result
        return self._recorded(result, request.model, inputs, provider_id or "", owner)

    async def _guarded(
        self, targets: list[Target], request: models.ChatCompletionRequest
    ) -> tuple[
        models.ChatCompletionRequest, models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk], str | None
    ]:
        """The request the model got, its answer (the request's guardrails run over input and output), and
        the provider that served it (None when the input guardrails refused it before any model ran)."""
        rails, guard = await self._guard(request)
        if rails is None or not guard:
            chat = Operation("chat", request.model, request)
            return (request, *await self._serve(targets, lambda t: t.provider.chat_completion(t.model, request), chat))
        judged = input_messages(request)
        screened = await rails.judge(guard.input, "input", [message for _, message in judged])
        if screened.blocked is not None:
            refusal = rails.refusal_stream if given(request.stream, False) else rails.refusal
            return request, refusal(request, screened), None
        sent = with_redacted_input(request, judged, screened)
        chat = Operation("chat", request.model, sent)
        result, provider_id = await self._serve(targets, lambda t: t.provider.chat_completion(t.model, sent), chat)
        if isinstance(result, models.ChatCompletion):
            return sent, await rails.guard_answer(result, guard, screened.violations), provider_id
        return sent, rails.guard_stream(result, guard, screened.violations, given(request.n, 1)), provider_id

    async def _guard(
        self, request: models.ChatCompletionRequest | models.CompletionRequest
    ) -> tuple[Guardrails | None, Guard | None]:
        """The guardrails, and the shields this request runs (None without the safety API)."""
        rails = self.guardrails
        if rails is None:
            if given(request.guardrails):
                raise ServiceUnavailableError(
                    "guardrails need the safety API (add `safety` to `apis` and a safety provider).",
                    code="service_not_enabled",
                )
            return None, None
        return rails, await rails.for_request(request)

    async def _recorded(
        self,
        stream: AsyncIterator[models.ChatCompletionChunk],
        model: str,
        inputs: list[dict[str, Any]],
        provider_id: str,
        owner: Owner | None,
    ) -> AsyncIterator[models.ChatCompletionChunk]:
        """The stream as it is, stored once it ends (a stream the client abandons is not stored)."""
        assembler = ChatAssembler()
        async with aclosing(
            cast(AsyncGenerator[models.ChatCompletionChunk], stream)
        ) as chunks:  # closing stops the work
            async for chunk in chunks:
                assembler.add(chunk)
                yield chunk
        if assembler.first is not None:
            completion = assembler.completion(assembler.first.model or model)
            await self.store.add(completion.model_dump(mode="json"), inputs, provider_id, owner)

    async def list_chat_completions(
        self, request: models.ListChatCompletionsRequest
    ) -> models.ListChatCompletionsResponse:
        order = given(request.order, models.SortOrder.desc).value
        page = await self.store.page(
            after=given(request.after),
            limit=request.limit,
            model=given(request.model),
            order=order,
            visible=self.stack.access.visibility(CHAT_COMPLETION),
        )
        data = [_stored_model(item) for item in page.items]
        return models.ListChatCompletionsResponse(
            data=data,
            first_id=data[0].id if data else "",
            last_id=data[-1].id if data else "",
            has_more=page.has_more,
        )

    async def get_chat_completion(self, request: models.GetChatCompletionRequest) -> models.StoredChatCompletion:
        stored = await self.store.get(request.completion_id)
        missing = ResourceNotFoundError("chat completion", request.completion_id)
        if stored is None:
            raise missing
        self.stack.access.check(Action.READ, CHAT_COMPLETION, request.completion_id, stored.owner, missing)
        return _stored_model(stored)

    async def openai_completion(
        self, request: models.CompletionRequest
    ) -> models.Completion | AsyncIterator[models.Completion]:
        """Through chat's guardrails (completion_guardrails.py): the prompt is the input, the text the output."""
        targets = await self._chain(request.model, "llm", "text completion")
        rails, guard = await self._guard(request)
        if rails is None or not guard:
            operation = Operation("text_completion", request.model, request)
            return await self._answer(targets, lambda t: t.provider.completion(t.model, request), operation)
        screened, texts = Outcome(), prompt_texts(request) if guard.input else []
        if any(text.strip() for text in texts):
            screened = await rails.judge(guard.input, "input", [ShieldMessage("user", text) for text in texts])
        if screened.blocked is not None:
            refused = text_rails.refusal_stream if given(request.stream, False) else text_rails.refusal
            return refused(request, screened)
        sent = text_rails.with_redacted_prompt(request, screened)
        operation = Operation("text_completion", request.model, sent)
        result, provider_id = await self._serve(targets, lambda t: t.provider.completion(t.model, sent), operation)
        served_by.set(provider_id)  # the shields' own model calls (llama-guard) keep it as it is
        if isinstance(result, models.Completion):
            return await text_rails.guard_text(rails, result, guard, screened.violations)
        return text_rails.guard_text_stream(rails, result, guard, screened.violations, choice_count(request))

    async def rerank(self, request: models.RerankRequest) -> models.RerankResponse:
        targets = await self._chain(request.model, "rerank", "rerank")
        operation = Operation("rerank", request.model, request)  # no conventions' name for it: PocketStack's
        return await self._answer(targets, lambda t: t.provider.rerank(t.model, request), operation)

    async def openai_embeddings(self, request: models.EmbeddingsRequest) -> models.EmbeddingsResponse:
        targets = await self._chain(request.model, "embedding", "embedding")
        operation = Operation("embeddings", request.model, request)
        return await self._answer(targets, lambda t: t.provider.embeddings(t.model, request), operation)

    async def count_tokens(self, model_id: str, texts: list[str]) -> TokenCounts | None:
        """Token counts from the embedding model's own tokenizer, when its provider can count (else None)."""
        target = (await self._chain(model_id, "embedding", "token counting"))[0]
        counter = getattr(target.provider, "count_tokens", None)
        if counter is None:
            return None
        return cast(TokenCounts, await counter(target.model, texts))


__all__ = ["InferenceApi"]
