"""Stream screening: a stream's choices held back and judged a sentence at a time.

Each time a choice's held text completes a sentence, its answer so far is judged, and only then
are the held chunks sent. A violation ends the choice there with its refusal (what it generates
after is dropped), and once every choice is blocked the stream is closed, which stops the
generation: no unchecked sentence reaches the client. A redacting verdict rewrites the held text.

The screening is the same for chat chunks and text completion chunks; a `Shape` says how to read
and write each kind.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, cast

from pocketstack._generated import models
from pocketstack.apis.inference.verdicts import Outcome

C = TypeVar("C")
_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]]*)\s|\n")

# The output shields over an answer so far (its text, tool-call arguments included).
Judge = Callable[[str], Awaitable[Outcome]]


class Shape(Protocol[C]):
    """How to read and write one kind of stream chunk."""

    def split(self, chunk: C) -> list[C]:
        """The chunk as one chunk per choice ([] for a chunk of no choice, such as usage)."""
        ...

    def index(self, chunk: C) -> int: ...

    def text(self, chunk: C) -> str:
        """The answer text the chunk adds (what a redaction may rewrite)."""
        ...

    def calls(self, chunk: C) -> str:
        """The tool-call arguments the chunk adds (judged, never rewritten)."""
        ...

    def ends(self, chunk: C) -> bool: ...

    def opens(self, chunk: C) -> bool:
        """Whether the chunk opens its choice (a chat chunk's role)."""
        ...

    def rewrite(self, held: list[C], replacement: str) -> None:
        """Put `replacement` in place of the held chunks' text."""
        ...

    def refusal(self, first: C, outcome: Outcome, opened: bool) -> list[C]:
        """The chunks that end a blocked choice; `first` is a chunk of it, `opened` whether its opening went out."""
        ...

    def record(self, last: C, violations: list[models.GuardrailViolation]) -> None:
        """Report what the guardrails flagged on the chunk that ends a choice."""
        ...


@dataclass
class _Screen(Generic[C]):
    """What the output shields have seen of one choice of a stream, and what of it went out."""

    prior: list[models.GuardrailViolation]  # the input's violations, reported on the first choice
    held: list[C] = field(default_factory=list)
    text: str = ""
    calls: str = ""
    judged_upto: int = 0
    released_upto: int = 0  # how much of `text` went out,
    sent: str = ""  # and as what (redacted or not)
    opened: bool = False
    blocked: bool = False

    async def take(self, chunk: C, shape: Shape[C], judge: Judge) -> list[C]:
        """The chunk held; the held ones released once the choice's answer so far is judged."""
        self.held.append(chunk)
        self.text += shape.text(chunk)
        self.calls += shape.calls(chunk)
        ending = shape.ends(chunk)
        complete = _last_sentence_end(self.text, self.judged_upto)
        if not ending and complete is None:
            return []
        self.judged_upto = complete or self.judged_upto
        outcome = await judge("\n".join(part for part in (self.text, self.calls) if part))
        output = outcome.violations
        if outcome.blocked is not None:
            self.blocked = True
            return shape.refusal(self.held[0], Outcome(self.prior + output, outcome.blocked), self.opened)
        pending = self.text[self.released_upto :]
        if outcome.redacted is not None and not self.calls and outcome.redacted[0].startswith(self.sent):
            # What was sent is the redaction of the text before a sentence end, which a later
            # finding cannot reach into: the rest of the redacted answer is the held part's.
            replacement = outcome.redacted[0][len(self.sent) :]
            if replacement != pending:
                shape.rewrite(self.held, replacement)
            self.sent += replacement
        else:
            self.sent += pending
        self.released_upto = len(self.text)
        if ending and self.prior + output:
            shape.record(self.held[-1], self.prior + output)
        released, self.held = self.held, []
        self.opened = self.opened or any(shape.opens(c) for c in released)
        return released


async def screen_stream(
    stream: AsyncIterator[C],
    shape: Shape[C],
    judge: Judge,
    prior: list[models.GuardrailViolation],
    choices: int = 1,
) -> AsyncIterator[C]:
    """The stream, each of its `choices` held back and judged on its own; a blocked choice ends in
    a refusal while the others go on, and the generation stops once every choice is blocked."""
    screens: dict[int, _Screen[C]] = {}
    trailing: list[C] = []  # chunks of no choice (usage) go out last
    async with aclosing(cast(AsyncGenerator[C], stream)) as chunks:
        async for chunk in chunks:
            singles = shape.split(chunk)
            if not singles:
                trailing.append(chunk)
                continue
            for single in singles:
                index = shape.index(single)
                screen = screens.setdefault(index, _Screen(prior if index == 0 else []))
                if screen.blocked:
                    continue  # its refusal is out; what it generates after is dropped
                for released in await screen.take(single, shape, judge):
                    yield released
            if sum(screen.blocked for screen in screens.values()) >= choices:
                return  # leaving the `async with` closes the stream: generation stops here
    for released in trailing:
        yield released


def _last_sentence_end(text: str, after: int) -> int | None:
    """Where the last complete sentence of `text` ends, when one ended after `after`."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text, after)]
    return ends[-1] if ends else None
