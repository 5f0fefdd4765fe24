"""A scripted chat model, served through the real provider table, for tests that need set answers.

It plays two parts. Asked the Llama Guard question, it answers as a perfect Llama Guard would
for the labelled cases (tests/support/safety_cases.py GUARD), or as `verdicts` says for a text. Asked
anything else, it replies with `replies[last user text]` (default: an echo), streamed a word at
a time when the request streams. Every request it gets is kept in RECEIVED. A text completion
continues its prompt with `replies[prompt]` (default: an echo), streamed a word at a time too. The `scripted` fixture
(tests/functional/conftest.py) puts it in the provider table; CHAT registers it as the model "chat".
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import MISSING, BaseModel, Field

from pocketstack._generated import models
from pocketstack.errors import NotImplementedByProviderError
from pocketstack.providers.base import ModelCheck, ProviderContext, ProviderModel, ProviderSpec, ServedModel, Stateless
from pocketstack.providers.inline.llama_cpp.pool import ModelKey, ModelPool
from pocketstack.wire.fields import plain
from tests.support.safety_cases import GUARD

CHAT = {"model_id": "chat", "provider_id": "scripted", "provider_model_id": "chat", "model_type": "llm"}
RECEIVED: list[models.ChatCompletionRequest] = []
COMPLETED: list[models.CompletionRequest] = []  # the text completion requests it got
STREAMED: list[str] = []  # every word a stream produced (a stream closed early stops producing)
_TURN = re.compile(r"<BEGIN CONVERSATION>\n\n(.*)\n\n<END CONVERSATION>", re.S)
_LABELS = {text: ("unsafe\n" + ",".join(sorted(codes, key=lambda c: int(c[1:])))) if flagged else "safe"
           for text, flagged, codes in GUARD}  # fmt: skip


class ScriptedConfig(BaseModel):
    replies: dict[str, str] = Field(default_factory=dict)
    verdicts: dict[str, str] = Field(default_factory=dict)
    # last user text -> the tool calls to answer with ({"name": ..., "arguments": "<json>"}), when tools are offered
    calls: dict[str, list[dict[str, str]]] = Field(default_factory=dict)
    persistent: list[str] = Field(default_factory=list)  # user texts whose calls repeat after tool answers
    slow: dict[str, float] = Field(default_factory=dict)  # last user text -> seconds to think before answering
    serialize: bool = False  # chat one request at a time through llama.cpp's ModelPool lock (the priority tests)


class _NoModel:
    def close(self) -> None:
        return None


def judged_text(prompt: str) -> str:
    """The last turn's text in a Llama Guard prompt."""
    match = _TURN.search(prompt)
    assert match, prompt
    last = match.group(1).split("\n\n")[-1]
    return last.split(": ", 1)[1]


class ScriptedModel(Stateless):
    def __init__(self, config: ScriptedConfig, context: ProviderContext) -> None:
        self.config = config
        self.pool = ModelPool(lambda key: _NoModel(), budget_bytes=10**12, max_waiting=4)
        self.pool_key = ModelKey(Path(__file__), embedding=False)

    async def check_model(self, provider_model_id: str, model_type: str | None, *, trusted: bool = False) -> ModelCheck:
        return ModelCheck(model_type or "llm")

    async def list_models(self) -> list[ProviderModel]:
        return []

    def _answer(self, request: models.ChatCompletionRequest, choice: int = 0) -> str:
        """The reply of choice `choice` (of `n`): `replies["<text>#<choice>"]` when set, else `replies[text]`."""
        last = request.messages[-1]
        text = last.content if isinstance(last.content, str) else ""
        if last.role == "tool":
            return f"The tool said: {text}"
        if text.startswith("Task: Check if there is unsafe content"):
            judged = judged_text(text)
            return self.config.verdicts.get(judged, _LABELS.get(judged, "safe"))
        return self.config.replies.get(f"{text}#{choice}", self.config.replies.get(text, f"You said: {text}"))

    def _calls(self, request: models.ChatCompletionRequest) -> list[dict[str, str]]:
        """The calls scripted for the last user text: once, or again after every tool answer if `persistent`."""
        if request.tools in (None, MISSING):
            return []
        users = [m for m in request.messages if m.role == "user" and isinstance(m.content, str)]
        if not users:
            return []
        asked = str(users[-1].content)
        if request.messages[-1].role != "user" and asked not in self.config.persistent:
            return []
        return [{"id": f"call_{uuid.uuid4().hex[:12]}", **call} for call in self.config.calls.get(asked, [])]

    async def chat_completion(
        self, model: ServedModel, request: models.ChatCompletionRequest
    ) -> models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk]:
        if not self.config.serialize:
            return await self._chat(model, request)
        async with self.pool.use(self.pool_key):  # as inline::llama-cpp holds its model
            return await self._chat(model, request)

    async def _chat(
        self, model: ServedModel, request: models.ChatCompletionRequest
    ) -> models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk]:
        RECEIVED.append(request)
        last = request.messages[-1]
        await asyncio.sleep(self.config.slow.get(last.content if isinstance(last.content, str) else "", 0))
        calls = self._calls(request)
        choices = request.n if isinstance(request.n, int) else 1
        answers = ["" if calls else self._answer(request, choice) for choice in range(choices)]
        identifier, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if request.stream is True:
            return self._stream(identifier, created, model.identifier, answers, calls)
        finish = "tool_calls" if calls else "stop"
        replied = []
        for index, answer in enumerate(answers):
            message: dict[str, Any] = {"role": "assistant", "content": answer or None}
            if calls:
                message["tool_calls"] = [
                    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for c in calls
                ]
            replied.append({"index": index, "finish_reason": finish, "logprobs": None, "message": message})
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        return models.ChatCompletion.model_validate(
            {"id": identifier, "created": created, "model": model.identifier, "choices": replied, "usage": usage}
        )

    async def _stream(
        self, identifier: str, created: int, model: str, answers: list[str], calls: list[dict[str, str]]
    ) -> AsyncIterator[Any]:
        def chunk(choice: int, delta: dict[str, Any], finish: str | None = None) -> models.ChatCompletionChunk:
            return models.ChatCompletionChunk.model_validate(
                {
                    "id": identifier,
                    "created": created,
                    "model": model,
                    "choices": [{"index": choice, "delta": delta, "finish_reason": finish, "logprobs": None}],
                }
            )

        for choice, answer in enumerate(answers):  # choice after choice, as inline::llama-cpp streams `n`
            yield chunk(choice, {"role": "assistant", "content": ""})
            for word in re.findall(r"\S+\s*", answer):
                STREAMED.append(word)
                yield chunk(choice, {"content": word})
            for index, call in enumerate(calls):  # OpenAI's delta form: id and name first, the arguments in pieces
                opening = {"index": index, "id": call["id"], "type": "function", "function": {"name": call["name"]}}
                yield chunk(choice, {"tool_calls": [opening]})
                half = len(call["arguments"]) // 2
                for piece in (call["arguments"][:half], call["arguments"][half:]):
                    yield chunk(choice, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            yield chunk(choice, {}, "tool_calls" if calls else "stop")
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        yield models.ChatCompletionChunk.model_validate(
            {"id": identifier, "created": created, "model": model, "choices": [], "usage": usage}
        )

    async def completion(
        self, model: ServedModel, request: models.CompletionRequest
    ) -> models.Completion | AsyncIterator[models.Completion]:
        COMPLETED.append(request)
        prompt = plain(request.prompt)
        prompts = prompt if isinstance(prompt, list) else [prompt]
        n = request.n if isinstance(request.n, int) else 1
        texts = [self.config.replies.get(str(p), f"You said: {p}") for p in prompts for _ in range(n)]
        identifier, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def completion(choices: list[dict[str, Any]], **extra: Any) -> models.Completion:
            body = {"id": identifier, "created": created, "model": model.identifier, "choices": choices, **extra}
            return models.Completion.model_validate(body)

        def choice(index: int, text: str, finish: str | None) -> dict[str, Any]:
            return {"index": index, "text": text, "finish_reason": finish, "logprobs": None}

        usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        if request.stream is not True:
            return completion([choice(i, text, "stop") for i, text in enumerate(texts)], usage=usage)

        async def stream() -> AsyncIterator[models.Completion]:
            for index, text in enumerate(texts):
                for word in re.findall(r"\S+\s*", text):
                    STREAMED.append(word)
                    yield completion([choice(index, word, None)])
                yield completion([choice(index, "", "stop")])
            yield completion([], usage=usage)

        return stream()

    async def embeddings(self, model: ServedModel, request: models.EmbeddingsRequest) -> Any:
        raise NotImplementedByProviderError("the scripted model only chats")

    async def rerank(self, model: ServedModel, request: models.RerankRequest) -> Any:
        raise NotImplementedByProviderError("the scripted model only chats")


SPEC = ProviderSpec(
    api="inference",
    provider_type="test::scripted",
    description="A chat model with set answers (tests only).",
    config_model=ScriptedConfig,
    create=lambda config, context: ScriptedModel(config, context),
)


def scripted_entry(**config: Any) -> dict[str, Any]:
    return {"provider_id": "scripted", "provider_type": SPEC.provider_type, "config": config}
