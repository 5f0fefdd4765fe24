"""What guardrails decide: the shields a request runs, and what they found."""

from __future__ import annotations

from dataclasses import dataclass, field

from pocketstack._generated import models
from pocketstack.wire.fields import given


@dataclass(frozen=True)
class Guard:
    """The shields one request runs, by stage."""

    input: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.input or self.output)


@dataclass
class Outcome:
    violations: list[models.GuardrailViolation] = field(default_factory=list)
    blocked: models.GuardrailViolation | None = None
    redacted: list[str] | None = None  # the judged texts as a redacting shield rewrote them


def refusal_text(blocked: models.GuardrailViolation) -> str:
    return given(blocked.user_message) or "I can't help with that."
