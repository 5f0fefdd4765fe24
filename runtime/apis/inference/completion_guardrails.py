"""Guardrails on text completions (/v1/completions): chat's shields, in the completions shape.

The same shields run as for a chat request to the model (the run config's `safety.guardrails`
that cover it, plus the request's own `guardrails`). The prompt is the input, each prompt of a
list judged as a user's text; a prompt of token ids cannot be judged, so it is refused (400)
while input shields apply. The text is the output, each choice judged on its own, a stream held
back a sentence at a time and stopped at a violation (screening.py).

A violation at level `error` ends the choice with empty `text` (what a stream already sent of it
stays sent: the sentences the shields passed) and finish_reason `content_filter`, as OpenAI's
content filter ends a completion. A completion has no refusal field, and the shield's message
written into `text` would read as the model's own continuation of the prompt: the message is in
`guardrail_violations` (`user_message`), on the completion or on the chunk that ends the choice.
A redacting shield rewrites the prompt before the model sees it, and the text before the client
does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from pocketstack._generated import models
from pocketstack.apis.inference.guardrails import Guardrails
from pocketstack.apis.inference.screening import screen_stream
from pocketstack.apis.inference.verdicts import Guard, Outcome
from pocketstack.errors import BadRequestError
from pocketstack.providers.base import ShieldMessage
from pocketstack.wire.fields import given, plain

TextAnswer = models.Completion | AsyncIterator[models.Completion]


def choice_count(request: models.CompletionRequest) -> int:
    """How many choices the request asks for: `n` for each of its prompts."""
    prompt = plain(request.prompt)
    prompts = len(prompt) if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) else 1
    return prompts * int(given(request.n, 1))


def prompt_texts(request: models.CompletionRequest) -> list[str]:
    """The prompts input shields judge; token ids are refused, having no text to judge."""
    prompt = plain(request.prompt)
    if isinstance(prompt, str):
        return [prompt]
    if all(isinstance(item, str) for item in prompt):
        return [str(item) for item in prompt]
    raise BadRequestError("Input guardrails judge the prompt's text: send it as text, not token ids.", param="prompt")


def with_redacted_prompt(request: models.CompletionRequest, outcome: Outcome) -> models.CompletionRequest:
    """The request with its prompts as a redacting shield rewrote them (itself when nothing was redacted)."""
    if outcome.redacted is None:
        return request
    prompt = outcome.redacted[0] if isinstance(plain(request.prompt), str) else list(outcome.redacted)
    return request.model_copy(update={"prompt": prompt})


def _ended(index: int) -> models.CompletionChoice:
    return models.CompletionChoice(
        index=index, text="", finish_reason=models.FinishReason.content_filter, logprobs=None
    )


def refusal(request: models.CompletionRequest, outcome: Outcome) -> models.Completion:
    """The answer to a request its input guardrails blocked: every choice ended, the model never ran."""
    return models.Completion(
        id=f"cmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=request.model,
        choices=[_ended(index) for index in range(choice_count(request))],
        usage=models.Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
        guardrail_violations=outcome.violations,
    )


async def refusal_stream(request: models.CompletionRequest, outcome: Outcome) -> AsyncIterator[models.Completion]:
    whole = refusal(request, outcome)
    for choice in whole.choices:  # the violations on the first choice's chunk, as chat reports them
        violations = outcome.violations if choice.index == 0 else []
        yield models.Completion(
            id=whole.id, created=whole.created, model=whole.model, choices=[choice], guardrail_violations=violations
        )


async def guard_text(
    rails: Guardrails, completion: models.Completion, guard: Guard, prior: list[models.GuardrailViolation]
) -> models.Completion:
    """A whole completion's choices judged each on its own: blocked ones ended, redacted ones rewritten."""
    violations = list(prior)
    for choice in completion.choices:
        judged = [ShieldMessage("assistant", choice.text)] if choice.text.strip() else []
        outcome = await rails.judge(guard.output, "output", judged)
        violations += outcome.violations
        if outcome.blocked is not None:
            choice.text, choice.finish_reason, choice.logprobs = "", models.FinishReason.content_filter, None
        elif outcome.redacted is not None:
            choice.text, choice.logprobs = outcome.redacted[0], None  # the logprobs are the original tokens'
    if violations:
        completion.guardrail_violations = violations
    return completion


def guard_text_stream(
    rails: Guardrails,
    stream: AsyncIterator[models.Completion],
    guard: Guard,
    prior: list[models.GuardrailViolation],
    choices: int,
) -> AsyncIterator[models.Completion]:
    """The stream, each choice held back a sentence at a time and judged (screening.py)."""
    return screen_stream(stream, _CompletionShape(), rails.output_judge(guard), prior, choices)


class _CompletionShape:
    """Text completion chunks, for stream screening."""

    def split(self, chunk: models.Completion) -> list[models.Completion]:
        if len(chunk.choices) <= 1:
            return [chunk] if chunk.choices else []
        return [chunk.model_copy(update={"choices": [choice]}) for choice in chunk.choices]

    def index(self, chunk: models.Completion) -> int:
        return chunk.choices[0].index

    def text(self, chunk: models.Completion) -> str:
        return chunk.choices[0].text

    def calls(self, chunk: models.Completion) -> str:
        return ""

    def ends(self, chunk: models.Completion) -> bool:
        return chunk.choices[0].finish_reason is not None

    def opens(self, chunk: models.Completion) -> bool:
        return False

    def rewrite(self, held: list[models.Completion], replacement: str) -> None:
        """In the first held chunk that had text, the others emptied."""
        placed = False
        for chunk in held:
            for choice in chunk.choices:
                if choice.text:
                    choice.text, choice.logprobs = "" if placed else replacement, None
                    placed = True

    def refusal(self, first: models.Completion, outcome: Outcome, opened: bool) -> list[models.Completion]:
        ended = _ended(first.choices[0].index)
        return [
            models.Completion(
                id=first.id,
                created=first.created,
                model=first.model,
                choices=[ended],
                guardrail_violations=outcome.violations,
            )
        ]

    def record(self, last: models.Completion, violations: list[models.GuardrailViolation]) -> None:
        last.guardrail_violations = violations
