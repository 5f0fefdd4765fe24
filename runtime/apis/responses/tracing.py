"""What a response's run and its tool calls tell telemetry (telemetry/agents.py, telemetry/tools.py).

One `invoke_agent` span per response: the model, the response's id, its conversation (a
`conversation`, or the `previous_response_id` it continues: a chain has no id of its own, and the
response it continues is what links it to the rest), the stored prompt it used, and at its end the
usage of all its model calls and its status. The turn (turn.py) runs each server tool call in an
`execute_tool` span made here, and tells the calls it hands to the client as events.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from pocketstack._generated import models
from pocketstack.apis.responses.tools.base import ServerTool, ToolOutcome
from pocketstack.telemetry import tools as tool_telemetry
from pocketstack.telemetry.agents import AgentRun
from pocketstack.wire.fields import given

PROMPT_ID = "pocketstack.prompt.id"
PROMPT_VERSION = "pocketstack.prompt.version"
RESPONSE_STATUS = "pocketstack.response.status"
BACKGROUND = "pocketstack.response.background"


def response_run(
    request: models.CreateResponseRequest, response: dict[str, Any], prompt_version: int | None
) -> AgentRun:
    """The span of a response about to run (`response`: its skeleton, with its id)."""
    run = AgentRun("invoke_agent", background=bool(response.get("background")))
    if run.recording:
        conversation = (response.get("conversation") or {}).get("id") or response.get("previous_response_id")
        prompt = given(request.prompt)
        run.set(
            {
                gen_ai.GEN_AI_REQUEST_MODEL: request.model,
                gen_ai.GEN_AI_RESPONSE_ID: response["id"],
                gen_ai.GEN_AI_CONVERSATION_ID: conversation,
                PROMPT_ID: prompt.id if prompt is not None else None,
                PROMPT_VERSION: prompt_version if prompt is not None else None,
                BACKGROUND: True if response.get("background") else None,
            }
        )
    return run


def settle(run: AgentRun, response: dict[str, Any], usage: list[models.Usage]) -> None:
    """How the run ended: its status, the usage of all its model calls, and its error if it failed."""
    if run.recording:
        run.set({RESPONSE_STATUS: response.get("status")})
        if usage:
            run.usage(sum(u.prompt_tokens for u in usage), sum(u.completion_tokens for u in usage))
        if response.get("status") == "failed":
            run.failed(str((response.get("error") or {}).get("code") or "server_error"))  # a bounded set of codes


@contextmanager
def server_tool_call(tool: ServerTool, call: models.ToolCall) -> Iterator[tool_telemetry.ToolCall]:
    """The span of one call the server runs, current while it runs; `told` says how it went."""
    name = call.function.name
    with tool_telemetry.executing(
        name, tool.tool_type(name), call_id=call.id, arguments=call.function.arguments
    ) as span:
        yield span


def told(span: tool_telemetry.ToolCall, outcome: ToolOutcome) -> None:
    """The call's outcome, read from the item that tells it (an error, a failed search, an approval request)."""
    item = outcome.item
    if outcome.results is not None:
        span.results(outcome.results)
    if item["type"] == "mcp_approval_request":
        span.answered(outcome=tool_telemetry.APPROVAL_REQUESTED)
        return
    error = item.get("error")
    if error is not None or item.get("status") == "failed":
        span.answered(error=str(error or "failed"))
        return
    span.answered(outcome.reply)


def handed_to_client(output: list[dict[str, Any]]) -> None:
    """The calls a turn ends with for the client to run: its final output's function_call items."""
    for item in output:
        if item["type"] == "function_call":
            tool_telemetry.handed_to_client(item["name"], item["call_id"], item["arguments"])
