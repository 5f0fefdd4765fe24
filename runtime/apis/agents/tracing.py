"""What an agent turn tells telemetry: an `invoke_agent <agent>` span (telemetry/agents.py) per turn.

Its steps are its child spans: each inference step is the inference router's `chat <model>` span,
each tool of a tool_execution step an `execute_tool <tool>` span (made by the Responses turn the
agent runs on), each input shield a `shield_call <shield>` span made here. PocketStack's agents
have no memory_retrieval step: their RAG is the knowledge_search tool, an `execute_tool` span
of type datastore. The session is the conversation (`gen_ai.conversation.id`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind

from pocketstack._generated import models
from pocketstack.apis.responses.tracing import settle
from pocketstack.apis.responses.turn import Turn
from pocketstack.telemetry import instruments
from pocketstack.telemetry.agents import AgentRun

TURN_ID = "pocketstack.agent.turn_id"
AWAITING_INPUT = "pocketstack.agent.awaiting_input"  # the turn ended with calls for the client to run
STEP_TYPE = "pocketstack.agent.step.type"
SHIELD_ID = "pocketstack.shield.id"
VIOLATION_LEVEL = "pocketstack.shield.violation_level"


def turn_run(agent_id: str, config: dict[str, Any], session_id: str, turn_id: str) -> AgentRun:
    name = config.get("name")
    run = AgentRun(f"invoke_agent {name or agent_id}")
    if run.recording:
        run.set(
            {
                gen_ai.GEN_AI_AGENT_ID: agent_id,
                gen_ai.GEN_AI_AGENT_NAME: name,
                gen_ai.GEN_AI_REQUEST_MODEL: config.get("model"),
                gen_ai.GEN_AI_CONVERSATION_ID: session_id,
                TURN_ID: turn_id,
            }
        )
    return run


def settled(run: AgentRun, turn: dict[str, Any], engine: Turn) -> None:
    settle(run, engine.response, engine.usage)
    if run.recording and turn.get("awaiting"):
        run.set({AWAITING_INPUT: True})


def traced(
    run: AgentRun, answer: models.AgentTurn | AsyncIterator[models.AgentTurnResponseStreamChunk],
    turn: dict[str, Any], engine: Turn,
) -> models.AgentTurn | AsyncIterator[models.AgentTurnResponseStreamChunk]:  # fmt: skip
    """The turn's answer; the span ends now for a whole one, with its stream for a streamed one."""
    if isinstance(answer, models.AgentTurn):
        settled(run, turn, engine)
        run.end()
        return answer
    return run.follow(answer, lambda: settled(run, turn, engine))


@contextmanager
def shield_call(shield_id: str) -> Iterator[Any]:
    """An input shield's step; the caller sets its violation level (`VIOLATION_LEVEL`) once it is known."""
    name = f"shield_call {shield_id}"
    with instruments.tracer.start_as_current_span(name, kind=SpanKind.INTERNAL, record_exception=False) as span:
        if span.is_recording():
            span.set_attributes({STEP_TYPE: "shield_call", SHIELD_ID: shield_id})
        try:
            yield span
        except Exception as exc:  # the status (ERROR) is the SDK's; the error's kind is ours to name
            span.set_attribute(ERROR_TYPE, type(exc).__name__)
            raise
