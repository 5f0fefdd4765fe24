"""Shield runs: a `run_shield <shield_id>` span per run and a counter of verdicts.

Every shield run goes through the Safety API (run-shield, moderations, the guardrails of chat
completions and Responses, agents' input and output shields), which wraps the provider call in
`shield_run`; so the span covers exactly the provider's work, and its duration is the run's.
A verdict is recorded in plain terms (flagged or not, a level, category names) so this layer
needs nothing from the providers'; the shield's message to the user may quote what it checked,
so it is recorded only with `telemetry.capture_content`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Span, Status, StatusCode

from pocketstack.telemetry import instruments
from pocketstack.telemetry.serving import PROVIDER_ID

SHIELD_ID = "pocketstack.shield.id"
VERDICT = "pocketstack.safety.verdict"  # allowed | violation
VIOLATION_LEVEL = "pocketstack.safety.violation_level"  # info | warn | error: the highest among the flagged
CATEGORIES = "pocketstack.safety.categories"  # the flagged categories' names
USER_MESSAGE = "pocketstack.safety.user_message"  # only with capture_content
INPUTS = "pocketstack.safety.inputs"  # messages (run-shield) or texts (moderations) checked
FLAGGED_INPUTS = "pocketstack.safety.flagged_inputs"  # moderations: how many of the texts were flagged
ALLOWED, VIOLATION = "allowed", "violation"
CANCELLED = "cancelled"  # error.type of a run its caller stopped waiting for (a stream cut, a client gone)
_LEVELS = {"info": 0, "warn": 1, "error": 2}

verdicts = instruments.meter.create_counter(
    "pocketstack.safety.verdicts",
    unit="{verdict}",
    description="Shield verdicts, by shield and verdict (allowed or violation); a moderation counts one per text.",
)


class Judgement(Protocol):
    """What a verdict says, as the providers' `Verdict` says it (read only)."""

    @property
    def flagged(self) -> bool: ...

    @property
    def categories(self) -> Mapping[str, bool]: ...

    @property
    def violation_level(self) -> str: ...

    @property
    def user_message(self) -> str | None: ...


class ShieldRun:
    """One run's span; `judged` records the provider's verdicts on it and in the counter."""

    def __init__(self, span: Span, shield_id: str) -> None:
        self.span = span
        self.shield_id = shield_id

    def judged(self, judgements: Sequence[Judgement]) -> None:
        flagged = [j for j in judgements if j.flagged]
        for judgement in judgements:
            verdicts.add(1, {SHIELD_ID: self.shield_id, VERDICT: VIOLATION if judgement.flagged else ALLOWED})
        if not self.span.is_recording():
            return
        self.span.set_attribute(VERDICT, VIOLATION if flagged else ALLOWED)
        if len(judgements) > 1:
            self.span.set_attribute(FLAGGED_INPUTS, len(flagged))
        if not flagged:
            return
        level = max((j.violation_level for j in flagged), key=lambda name: _LEVELS.get(name, 2))
        categories = sorted({name for j in flagged for name, hit in j.categories.items() if hit})
        self.span.set_attributes({VIOLATION_LEVEL: level, CATEGORIES: categories})
        message = next((j.user_message for j in flagged if j.user_message), None)
        if message is not None and instruments.capture_content():
            self.span.set_attribute(USER_MESSAGE, message)


@contextmanager
def shield_run(shield_id: str, provider_id: str, inputs: int) -> Iterator[ShieldRun]:
    """The span of one provider call, current while it runs (a model the shield calls is its child).
    An error ends it ERROR with `error.type`, and goes on to the caller unchanged."""
    span = instruments.tracer.start_span(
        f"run_shield {shield_id}",
        attributes={SHIELD_ID: shield_id, PROVIDER_ID: provider_id, INPUTS: inputs},
        record_exception=False,
        set_status_on_exception=False,
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield ShieldRun(span, shield_id)
    except (asyncio.CancelledError, GeneratorExit):
        span.set_attribute(ERROR_TYPE, CANCELLED)  # nothing failed: whoever waited left
        raise
    except Exception as exc:
        span.set_attribute(ERROR_TYPE, type(exc).__name__)  # the error classes: a bounded set
        span.set_status(Status(StatusCode.ERROR))
        raise
    finally:
        otel_context.detach(token)
        span.end()
