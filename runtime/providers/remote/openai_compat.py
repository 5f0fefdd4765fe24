"""One base for every OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp's server, TGI, OpenAI,
Fireworks, Together, Groq...), over aiohttp: a concrete remote is a base URL, a key and quirks.

Errors are translated here, at the boundary: unreachable or slow upstreams become 502/504
(and count against the circuit breaker, so the router can fall back); an upstream error status
is passed on with the upstream's message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import aiohttp
from opentelemetry import propagate
from pydantic import BaseModel, ValidationError

from pocketstack._generated import models
from pocketstack.errors import NotImplementedByProviderError, UpstreamError, UpstreamStatusError, UpstreamTimeoutError
from pocketstack.providers.base import Health, ModelCheck, ProviderContext, ProviderModel, ServedModel
from pocketstack.providers.remote.breaker import CircuitBreaker
from pocketstack.providers.remote.config import OpenAICompatConfig, Quirks
from pocketstack.telemetry import serving
from pocketstack.web.context import provider_data
from pocketstack.wire.fields import given

log = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)


KNOWN_FINISH_REASONS = frozenset(reason.value for reason in models.FinishReason)
# Request fields the server acts on itself, never sent upstream (an OpenAI upstream rejects unknown ones).
SERVER_FIELDS = frozenset({"guardrails"})


def _is_embedding(model_id: str) -> bool:
    return "embed" in model_id.lower()


class OpenAICompatProvider:
    def __init__(self, config: OpenAICompatConfig, context: ProviderContext, quirks: Quirks) -> None:
        self.config = config
        self.context = context
        self.quirks = quirks
        self.base_url = config.url.rstrip("/")
        self.breaker = CircuitBreaker(config.failure_threshold, config.cooldown_s)
        self._session: aiohttp.ClientSession | None = None
        self._probe: asyncio.Task[None] | None = None
        self._reachable: bool | None = None  # None until the first probe answers
        self._in_flight = 0  # requests to the remote now: while any runs, its outcome is the health signal

    # -- lifecycle and health ----------------------------------------------------------------

    async def initialize(self) -> None:
        timeout = aiohttp.ClientTimeout(connect=self.config.connect_timeout_s, sock_read=self.config.read_timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._probe = asyncio.create_task(self._probe_forever(), name=f"probe {self.context.provider_id}")
        serving.breaker_state.add(self._breaker_state)

    def _breaker_state(self) -> list[serving.Reading]:
        state = serving.BREAKER_STATES[self.breaker.state]
        return [(state, {serving.PROVIDER_ID: self.context.provider_id})]

    async def shutdown(self) -> None:
        serving.breaker_state.remove(self._breaker_state)
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self._session is not None:
            await self._session.close()

    async def probe(self) -> bool:
        """One health check (GET /models); it feeds the breaker like a request would."""
        try:
            await self._get_json("/models", timeout=self.config.connect_timeout_s)
        except (UpstreamError, UpstreamTimeoutError, UpstreamStatusError) as exc:
            self._reachable = False
            self.breaker.record_failure(exc.message)
            return False
        self._reachable = True
        self.breaker.record_success()
        return True

    async def _probe_forever(self) -> None:
        while True:
            try:
                # Not while a request runs: it tells the breaker as much, and servers that serve one request
                # at a time drop the running one for a newcomer (llama-cpp-python's server does by default,
                # `interrupt_requests`): a probe would cut a user's stream short.
                if self._in_flight == 0 or self._reachable is None:
                    await self.probe()
            except Exception:  # the probe must outlive any surprise, or health goes stale
                log.exception("health probe of %s failed", self.context.provider_id)
                self._reachable = False
            await asyncio.sleep(self.config.health_interval_s)

    async def health(self) -> Health:
        if self._reachable is None:
            return Health("OK", "not probed yet")
        if self._reachable and self.breaker.admits():  # a health poll is no trial request
            return Health("OK")
        return Health("Error", self.breaker.last_error or "unreachable")

    # -- HTTP --------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        key = self.config.api_key
        if self.quirks.provider_data_key:
            key = provider_data.get().get(self.quirks.provider_data_key) or key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # The trace goes on upstream: W3C `traceparent` of the current span (the router's inference span;
        # nothing when no span records, as for the health probe).
        propagate.inject(headers)
        return headers

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("provider not initialized")
        return self._session

    async def _raise_for_status(self, response: aiohttp.ClientResponse) -> None:
        if response.status < 400:
            return
        text = await response.text()
        try:
            data = json.loads(text)
            error = data.get("error") or data.get("detail") or data.get("message")  # OpenAI, FastAPI, others
            message = error.get("message") if isinstance(error, dict) else str(error) if error else None
        except (ValueError, AttributeError):
            message = None
        message = f"{self.context.provider_id}: {message or text[:500] or response.reason}"
        if response.status >= 500:
            self.breaker.record_failure(message)
        raise UpstreamStatusError(response.status, message, code="upstream_error")

    def _unreachable(self, exc: BaseException) -> Exception:
        if isinstance(exc, asyncio.TimeoutError):
            error: Exception = UpstreamTimeoutError(f"{self.context.provider_id} at {self.base_url} timed out.")
        else:
            error = UpstreamError(f"{self.context.provider_id} at {self.base_url} is unreachable: {exc}")
        self.breaker.record_failure(str(error))
        return error

    def _garbled(self, exc: Exception) -> Exception:
        """A 200 that is not JSON (a proxy's HTML page, a wrong URL): a broken upstream, fall back."""
        error = UpstreamError(f"{self.context.provider_id} at {self.base_url} answered with something not JSON: {exc}")
        self.breaker.record_failure(error.message)
        return error

    async def _get_json(self, path: str, timeout: float | None = None) -> Any:
        try:
            request_timeout = aiohttp.ClientTimeout(total=timeout) if timeout else None
            async with self.session.get(
                self.base_url + path, headers=self._headers(), timeout=request_timeout
            ) as response:
                await self._raise_for_status(response)
                return await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from exc
        except ValueError as exc:  # a 200 that is not JSON
            raise self._garbled(exc) from exc

    def _body(self, request: BaseModel, model: ServedModel) -> dict[str, Any]:
        body = request.model_dump(mode="json", by_alias=True, exclude_none=False)
        body = {k: v for k, v in body.items() if k not in self.quirks.unsupported_fields and k not in SERVER_FIELDS}
        body["model"] = model.provider_model_id
        return body

    @contextlib.contextmanager
    def _requesting(self) -> Iterator[None]:
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    async def _post(
        self, path: str, body: dict[str, Any], result: type[ModelT], model: ServedModel, our_id: str | None = None
    ) -> ModelT:
        try:
            with self._requesting():
                # The whole answer within the read timeout: aiohttp's sock_read restarts at every byte, so a
                # server trickling blank space (JSON allows any amount) would otherwise hold the request forever.
                async with asyncio.timeout(self.config.connect_timeout_s + self.config.read_timeout_s):
                    async with self.session.post(self.base_url + path, json=body, headers=self._headers()) as response:
                        await self._raise_for_status(response)
                        data = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from exc
        except ValueError as exc:  # a 200 that is not JSON
            raise self._garbled(exc) from exc
        answer = self._validate(result, data, model, our_id)
        self.breaker.record_success()  # only a usable answer: a remote that answers 200 with junk is failing
        return answer

    def _validate(self, result: type[ModelT], data: Any, model: ServedModel, our_id: str | None = None) -> ModelT:
        if isinstance(data, dict):
            if "model" in data:
                data["model"] = model.identifier
            if our_id is not None and "id" in data:
                # Upstream ids may repeat (or be empty); stored completions need ours.
                data["upstream_id"], data["id"] = data["id"], our_id
            for choice in data.get("choices") or []:
                reason = choice.get("finish_reason") if isinstance(choice, dict) else None
                if reason is not None and reason not in KNOWN_FINISH_REASONS:  # e.g. "eos_token"
                    choice["finish_reason"] = "stop"
        error = data.get("error") if isinstance(data, dict) else None
        if error:  # a 200 that carries an error (some servers and proxies answer so): the remote's own words
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            raise self._failed(UpstreamError(f"{self.context.provider_id}: {message}"))
        try:
            return result.model_validate(data)
        except ValidationError as exc:
            error = UpstreamError(f"{self.context.provider_id} answered in an unexpected shape: {exc}")
            raise self._failed(error) from exc

    def _failed(self, error: UpstreamError) -> UpstreamError:
        """A remote's broken answer counts against its breaker like an unreachable remote does."""
        self.breaker.record_failure(error.message)
        return error

    async def _stream(
        self, path: str, body: dict[str, Any], chunk: type[ModelT], model: ServedModel, our_id: str | None = None
    ) -> AsyncIterator[ModelT]:
        try:
            with self._requesting():
                async with self.session.post(self.base_url + path, json=body, headers=self._headers()) as response:
                    await self._raise_for_status(response)
                    started = finished = False  # finished: a choice said why it ended, the answer is whole
                    async for payload in self._payloads(response.content):
                        if payload == b"[DONE]":
                            return
                        parsed = self._validate(chunk, json.loads(payload), model, our_id)
                        if not started:  # a usable chunk, not just a 200 (which may carry junk or an error)
                            self.breaker.record_success()
                            started = True
                        finished = finished or any(c.finish_reason for c in getattr(parsed, "choices", []))
                        yield parsed
                    if not finished:  # the body ended mid-answer, without [DONE]: not a whole answer
                        message = f"{self.context.provider_id} at {self.base_url} ended the stream mid-answer."
                        raise self._failed(UpstreamError(message))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from exc
        except ValueError as exc:  # a 200 that is not JSON
            raise self._garbled(exc) from exc

    async def _payloads(self, content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
        """The `data:` payloads of a server-sent event stream, each within the read timeout of the one before
        (the first: of the headers), however its bytes come: aiohttp's sock_read restarts at every byte, so a
        server trickling one byte a minute, or only blank lines and comments, would otherwise hold the stream
        (and the client behind it) forever."""
        while True:
            async with asyncio.timeout(self.config.read_timeout_s):
                while True:
                    line = (await content.readline()).strip()
                    if not line and content.at_eof():
                        return
                    if line.startswith(b"data:"):
                        break
            yield line[5:].strip()

    # -- the provider interface --------------------------------------------------------------

    async def list_models(self) -> list[ProviderModel]:
        data = await self._get_json("/models", timeout=self.config.connect_timeout_s)
        return [
            ProviderModel(item["id"], "embedding" if _is_embedding(item["id"]) else "llm", {})
            for item in data.get("data", [])
            if isinstance(item, dict) and isinstance(item.get("id"), str)
        ]

    async def check_model(self, provider_model_id: str, model_type: str | None, *, trusted: bool = False) -> ModelCheck:
        # The remote may be offline now; it is checked when used, not at registration.
        return ModelCheck(model_type or ("embedding" if _is_embedding(provider_model_id) else "llm"))

    async def chat_completion(
        self, model: ServedModel, request: models.ChatCompletionRequest
    ) -> models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk]:
        body = self._body(request, model)
        our_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.get("stream"):
            return self._stream("/chat/completions", body, models.ChatCompletionChunk, model, our_id)
        return await self._post("/chat/completions", body, models.ChatCompletion, model, our_id)

    async def completion(
        self, model: ServedModel, request: models.CompletionRequest
    ) -> models.Completion | AsyncIterator[models.Completion]:
        body = self._body(request, model)
        our_id = f"cmpl-{uuid.uuid4().hex}"
        if body.get("stream"):
            return self._stream("/completions", body, models.Completion, model, our_id)
        return await self._post("/completions", body, models.Completion, model, our_id)

    async def rerank(self, model: ServedModel, request: models.RerankRequest) -> models.RerankResponse:
        raise NotImplementedByProviderError(
            f"{self.context.provider_id} has no rerank in OpenAI's API; serve rerankers with inline::llama-cpp."
        )

    async def embeddings(self, model: ServedModel, request: models.EmbeddingsRequest) -> models.EmbeddingsResponse:
        response = await self._post("/embeddings", self._body(request, model), models.EmbeddingsResponse, model)
        if given(request.encoding_format) == models.EncodingFormat.base64:  # some servers ignore the field
            for item in response.data:
                if isinstance(item.embedding, list):
                    item.embedding = base64.b64encode(struct.pack(f"<{len(item.embedding)}f", *item.embedding)).decode()
        return response
