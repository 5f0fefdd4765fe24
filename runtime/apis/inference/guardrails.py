"""Guardrails: shields run around chat completions, over what goes in and what comes out.

A request's shields are the run config's `safety.guardrails` that cover its model plus the
request's own `guardrails`. Input shields judge the user and tool messages before the model is
called; output shields judge the answer. A verdict at level `error` turns the answer into a
refusal in chat's own shape (`message.refusal`, finish_reason `content_filter`); every flagged
verdict, blocking or not, is recorded on the completion as `guardrail_violations`.

A shield that redacts (pii in `redact` mode: a `warn` whose metadata holds `redacted_messages`)
rewrites what it judged: the user and tool messages before the model sees them, or the answer
before the client does; the shields after it judge the redacted text.

A stream is held back a sentence at a time and judged before it is sent (screening.py). Text
completions go through the same shields (completion_guardrails.py), and so do an agent's output
shields (`guard_output`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pocketstack._generated import models
from pocketstack.apis.inference.screening import Judge, screen_stream
from pocketstack.apis.inference.verdicts import Guard, Outcome, refusal_text
from pocketstack.apis.safety import SafetyApi, message_text
from pocketstack.config import ConfigError, SafetyConfig
from pocketstack.errors import ResourceNotFoundError
from pocketstack.providers.base import ShieldMessage, Verdict
from pocketstack.web.context import served_by
from pocketstack.wire.chat_stream import argument_fragment
from pocketstack.wire.fields import given, plain

ChatAnswer = models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk]
_JUDGED_INPUT_ROLES = ("user", "tool")  # what comes from outside; system prompts are the developer's own


def _recorded(shield_id: str, stage: str, verdict: Verdict) -> models.GuardrailViolation:
    return models.GuardrailViolation(
        shield_id=shield_id,
        stage=models.GuardrailViolationStage(stage),
        violation_level=models.ViolationLevel(verdict.violation_level),
        user_message=verdict.user_message,
        metadata=verdict.metadata,
    )


def shield_ids(guardrails: list[Any] | None) -> list[str]:
    """A request's `guardrails` (shield ids, or Llama Stack's `{"type": id}` specs) as shield ids."""
    ids = []
    for guardrail in guardrails or []:
        value = plain(guardrail)
        ids.append(value if isinstance(value, str) else str(value.type))
    return ids


def input_messages(request: models.ChatCompletionRequest) -> list[tuple[int, ShieldMessage]]:
    """The messages input shields judge, with their places in the request."""
    judged = []
    for index, message in enumerate(request.messages):
        body = plain(message)
        role = str(body.role)
        text = message_text(body.content)
        if role in _JUDGED_INPUT_ROLES and text.strip():
            judged.append((index, ShieldMessage(role=role, text=text)))
    return judged


def with_redacted_input(
    request: models.ChatCompletionRequest, judged: list[tuple[int, ShieldMessage]], outcome: Outcome
) -> models.ChatCompletionRequest:
    """The request with the judged messages replaced by their redacted texts (itself when nothing was redacted)."""
    if outcome.redacted is None:
        return request
    messages = list(request.messages)
    for (index, original), text in zip(judged, outcome.redacted, strict=True):
        if text != original.text:
            messages[index] = messages[index].model_copy(update={"content": text})
    return request.model_copy(update={"messages": messages})


def _answer_text(message: models.ChatResponseMessage) -> str:
    parts = [given(message.content) or ""]
    parts += [call.function.arguments for call in given(message.tool_calls, [])]
    return "\n".join(part for part in parts if part)


class Guardrails:
    def __init__(self, config: SafetyConfig, safety: SafetyApi) -> None:
        self.config = config
        self.safety = safety

    async def validate_config(self) -> None:
        """Every configured guardrail names a registered shield; ConfigError otherwise."""
        for index, rail in enumerate(self.config.guardrails):
            try:
                await self.safety.shields.lookup(rail.shield_id)
            except ResourceNotFoundError as exc:
                raise ConfigError(f"safety.guardrails[{index}]: {exc.message}") from exc

    async def for_request(self, request: models.ChatCompletionRequest | models.CompletionRequest) -> Guard:
        named = shield_ids(given(request.guardrails))
        for shield_id in named:  # a typo is a 404 before the model runs, not after
            await self.safety.shields.lookup(shield_id)

        def configured(stage: str) -> list[str]:
            rails = [r for r in self.config.guardrails if stage in r.stages]
            return [r.shield_id for r in rails if r.models is None or request.model in r.models]

        return Guard(
            input=list(dict.fromkeys(configured("input") + named)),
            output=list(dict.fromkeys(configured("output") + named)),
        )

    async def judge(self, shield_ids: list[str], stage: str, messages: list[ShieldMessage]) -> Outcome:
        outcome = Outcome()
        if not messages:
            return outcome
        serving = served_by.get()
        for shield_id in shield_ids:
            try:
                verdict = await self.safety.check(shield_id, messages)
            finally:  # a shield's own model call (llama-guard) did not serve the request: keep who did
                served_by.set(serving)
            if not verdict.flagged:
                continue
            recorded = _recorded(shield_id, stage, verdict)
            outcome.violations.append(recorded)
            if verdict.violation_level == "error":
                outcome.blocked = recorded
                break  # the answer is a refusal now: the other shields have nothing left to judge
            redacted = verdict.metadata.get("redacted_messages")
            if isinstance(redacted, list) and len(redacted) == len(messages):
                messages = [ShieldMessage(m.role, str(text)) for m, text in zip(messages, redacted, strict=True)]
                outcome.redacted = [m.text for m in messages]
        return outcome

    # Non-streamed answers

    @staticmethod
    def refusal(request: models.ChatCompletionRequest, outcome: Outcome) -> models.ChatCompletion:
        """The answer to a request its input guardrails blocked: the model never ran."""
        assert outcome.blocked is not None
        refusal = refusal_text(outcome.blocked)
        choices = [
            models.ChatChoice(
                index=index,
                message=models.ChatResponseMessage(content=None, refusal=refusal),
                finish_reason=models.FinishReason.content_filter,
                logprobs=None,
            )
            for index in range(given(request.n, 1))
        ]
        return models.ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=request.model,
            choices=choices,
            usage=models.Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
            guardrail_violations=outcome.violations,
        )

    async def guard_answer(
        self, completion: models.ChatCompletion, guard: Guard, prior: list[models.GuardrailViolation]
    ) -> models.ChatCompletion:
        violations = list(prior)
        for choice in completion.choices:
            text = _answer_text(choice.message)
            outcome = await self.judge(guard.output, "output", [ShieldMessage("assistant", text)] if text else [])
            violations += outcome.violations
            if outcome.blocked is not None:
                choice.message = models.ChatResponseMessage(content=None, refusal=refusal_text(outcome.blocked))
                choice.finish_reason = models.FinishReason.content_filter
                choice.logprobs = None
            elif outcome.redacted is not None and not given(choice.message.tool_calls, []):
                choice.message.content = outcome.redacted[0]
                choice.logprobs = None  # they are the original tokens'
        if violations:
            completion.guardrail_violations = violations
        return completion

    # Streams

    async def refusal_stream(
        self, request: models.ChatCompletionRequest, outcome: Outcome
    ) -> AsyncIterator[models.ChatCompletionChunk]:
        completion = self.refusal(request, outcome)
        for index in range(len(completion.choices)):
            reported = outcome if index == 0 else Outcome([], outcome.blocked)
            for chunk in _refusal_chunks(
                completion.id, completion.created, request.model, reported, role=True, index=index
            ):
                yield chunk

    def output_judge(self, guard: Guard) -> Judge:
        """The output shields over an answer so far, as stream screening calls them."""

        async def judge(answer: str) -> Outcome:
            judged = [ShieldMessage("assistant", answer)] if answer.strip() else []
            return await self.judge(guard.output, "output", judged)

        return judge

    def guard_stream(
        self,
        stream: AsyncIterator[models.ChatCompletionChunk],
        guard: Guard,
        prior: list[models.GuardrailViolation],
        choices: int = 1,
    ) -> AsyncIterator[models.ChatCompletionChunk]:
        """The stream, each of its `choices` held back a sentence at a time and judged (screening.py)."""
        return screen_stream(stream, _ChatShape(), self.output_judge(guard), prior, choices)

    async def guard_output(self, answer: ChatAnswer, shields: list[str]) -> ChatAnswer:
        """Output shields over an answer as it came: whole, or a stream held back and judged a sentence at a time."""
        guard = Guard(output=shields)
        if isinstance(answer, models.ChatCompletion):
            return await self.guard_answer(answer, guard, [])
        return self.guard_stream(answer, guard, [])


class _ChatShape:
    """Chat chunks, for stream screening: content is the text, tool-call arguments are judged too."""

    def split(self, chunk: models.ChatCompletionChunk) -> list[models.ChatCompletionChunk]:
        if len(chunk.choices) <= 1:  # providers send one choice a chunk; an upstream may send several
            return [chunk] if chunk.choices else []
        return [chunk.model_copy(update={"choices": [choice]}) for choice in chunk.choices]

    def index(self, chunk: models.ChatCompletionChunk) -> int:
        return chunk.choices[0].index

    def text(self, chunk: models.ChatCompletionChunk) -> str:
        return given(chunk.choices[0].delta.content) or ""

    def calls(self, chunk: models.ChatCompletionChunk) -> str:
        return "".join(argument_fragment(call) for call in given(chunk.choices[0].delta.tool_calls, []))

    def ends(self, chunk: models.ChatCompletionChunk) -> bool:
        return given(chunk.choices[0].finish_reason) is not None

    def opens(self, chunk: models.ChatCompletionChunk) -> bool:
        return bool(given(chunk.choices[0].delta.role))

    def rewrite(self, held: list[models.ChatCompletionChunk], replacement: str) -> None:
        """In the first held chunk that had text, the others emptied."""
        placed = False
        for chunk in held:
            for choice in chunk.choices:
                if not given(choice.delta.content):
                    continue
                choice.delta.content = "" if placed else replacement
                choice.logprobs = None  # they are the original tokens'
                placed = True

    def refusal(
        self, first: models.ChatCompletionChunk, outcome: Outcome, opened: bool
    ) -> list[models.ChatCompletionChunk]:
        index = first.choices[0].index
        return _refusal_chunks(first.id, first.created, first.model, outcome, role=not opened, index=index)

    def record(self, last: models.ChatCompletionChunk, violations: list[models.GuardrailViolation]) -> None:
        last.guardrail_violations = violations


def _refusal_chunks(
    identifier: str, created: int, model: str, outcome: Outcome, *, role: bool, index: int = 0
) -> list[models.ChatCompletionChunk]:
    assert outcome.blocked is not None
    delta = models.ChunkDelta(refusal=refusal_text(outcome.blocked))
    if role:
        delta.role = "assistant"
    body = models.ChunkChoice(index=index, delta=delta, finish_reason=None)
    end = models.ChunkChoice(index=index, delta=models.ChunkDelta(), finish_reason=models.FinishReason.content_filter)
    return [
        models.ChatCompletionChunk(id=identifier, created=created, model=model, choices=[body]),
        models.ChatCompletionChunk(
            id=identifier, created=created, model=model, choices=[end], guardrail_violations=outcome.violations
        ),
    ]
