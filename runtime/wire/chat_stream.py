"""Chat completion chunks -> the whole completion (OpenAI's delta format, tool calls and `n` choices included)."""

from __future__ import annotations

from pocketstack._generated import models
from pocketstack.wire.fields import given


def argument_fragment(call: models.ChunkToolCall) -> str:
    """The piece of a streamed tool call's arguments one chunk carries ("" when none)."""
    function = given(call.function)
    return given(function.arguments, "") if function is not None else ""


class ChoiceAssembler:
    """One choice's deltas, gathered into its message."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, models.ToolCall] = {}
        self.logprobs: list[models.TokenLogprob] = []
        self.finish: models.FinishReason | None = None

    def add(self, choice: models.ChunkChoice) -> None:
        delta = choice.delta
        content = given(delta.content)
        if content:
            self.text.append(content)
        refusal = given(delta.refusal)
        if refusal:
            self.refusal.append(refusal)
        for call in given(delta.tool_calls, []):
            function = given(call.function)
            current = self.calls.get(call.index)
            if current is None:
                name = given(function.name, "") if function is not None else ""
                current = models.ToolCall(id=given(call.id, ""), function=models.FunctionCall(name=name, arguments=""))
                self.calls[call.index] = current
            current.function.arguments += argument_fragment(call)
        choice_logprobs = given(choice.logprobs)
        if choice_logprobs is not None:
            self.logprobs.extend(given(choice_logprobs.content, []))
        self.finish = given(choice.finish_reason, self.finish)

    def choice(self, index: int) -> models.ChatChoice:
        message = models.ChatResponseMessage(content=None if self.calls else "".join(self.text))
        if self.calls:
            message.tool_calls = [self.calls[i] for i in sorted(self.calls)]
        if self.refusal:
            message.content, message.refusal = None, "".join(self.refusal)
        return models.ChatChoice(
            index=index,
            message=message,
            finish_reason=self.finish or models.FinishReason.stop,
            logprobs=models.ChoiceLogprobs(content=self.logprobs) if self.logprobs else None,
        )


class ChatAssembler:
    """Feed it every chunk of a stream; `completion()` is what the non-streamed answer would be."""

    def __init__(self) -> None:
        self.first: models.ChatCompletionChunk | None = None
        self.choices: dict[int, ChoiceAssembler] = {}
        self.violations: list[models.GuardrailViolation] = []
        self.usage: models.Usage | None = None

    def add(self, chunk: models.ChatCompletionChunk) -> None:
        self.first = self.first or chunk
        self.usage = given(chunk.usage, self.usage)
        self.violations += given(chunk.guardrail_violations, [])
        for choice in chunk.choices:
            self.choices.setdefault(choice.index, ChoiceAssembler()).add(choice)

    def completion(self, model: str) -> models.ChatCompletion:
        if self.first is None:
            raise ValueError("no chunk was received")
        assemblers = self.choices or {0: ChoiceAssembler()}
        choices = [assemblers[index].choice(index) for index in sorted(assemblers)]
        completion = models.ChatCompletion(id=self.first.id, created=self.first.created, model=model, choices=choices)
        if self.usage is not None:
            completion.usage = self.usage
        if self.violations:
            completion.guardrail_violations = self.violations
        return completion
