"""An agent turn's steps, read from its chat transcript, and its event stream (Llama Stack's shapes).

The turn runs on the Responses engine (response_turn.py); what it did is in the chat messages it
appended: each assistant message is an inference step (its text and tool calls), each run of
tool messages after it a tool_execution step (the calls the server ran and their results).
Streamed, the same boundaries are found as the transcript grows, so step_start / step_progress /
step_complete come in the order the work happened.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pocketstack._generated import models


def now() -> str:
    return datetime.now(UTC).isoformat()


def content_text(content: Any) -> str:
    """Llama Stack's interleaved content (a string, a part, a list of parts) as text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if content.get("type") == "text":
            return str(content.get("text", ""))
        if "uri" in content:
            return str(content["uri"])
        return "[image]" if content.get("type") == "image" else json.dumps(content)
    if isinstance(content, list):
        return "\n".join(content_text(part) for part in content)
    return str(content)


def tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"call_id": call["id"], "tool_name": call["function"]["name"], "arguments": call["function"]["arguments"]}
        for call in message.get("tool_calls") or []
    ]


def completion(message: dict[str, Any], out_of_tokens: bool = False) -> dict[str, Any]:
    calls = tool_calls(message)
    stop = "out_of_tokens" if out_of_tokens else "end_of_message" if calls else "end_of_turn"
    return {"role": "assistant", "content": message.get("content") or "", "stop_reason": stop, "tool_calls": calls}


def _step(kind: str, turn_id: str, started: str, **details: Any) -> dict[str, Any]:
    return {"step_type": kind, "step_id": str(uuid.uuid4()), "turn_id": turn_id, "started_at": started,
            "completed_at": now(), **details}  # fmt: skip


def inference_step(turn_id: str, message: dict[str, Any], started: str, out_of_tokens: bool = False) -> dict[str, Any]:
    return _step("inference", turn_id, started, model_response=completion(message, out_of_tokens))


def tool_step(turn_id: str, asked: dict[str, Any], answers: list[dict[str, Any]], started: str) -> dict[str, Any]:
    """The calls of `asked` (an assistant message) that `answers` (tool messages) answer."""
    names = {call["id"]: call["function"]["name"] for call in asked.get("tool_calls") or []}
    answered = {answer["tool_call_id"] for answer in answers}
    return _step(
        "tool_execution",
        turn_id,
        started,
        tool_calls=[call for call in tool_calls(asked) if call["call_id"] in answered],
        tool_responses=[
            {"call_id": a["tool_call_id"], "tool_name": names.get(a["tool_call_id"], ""), "content": a["content"]}
            for a in answers
        ],
    )


def shield_step(turn_id: str, violation: dict[str, Any] | None, started: str) -> dict[str, Any]:
    return _step("shield_call", turn_id, started, violation=violation)


def output_shield_steps(
    shields: list[str], violations: list[models.GuardrailViolation], turn_id: str
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The output shields' steps and the first blocking violation, from what the shields found as they
    judged the turn's answers before they were told (a shield after a blocking one did not run)."""
    steps: list[dict[str, Any]] = []
    found = [v.model_dump(mode="json") for v in violations]
    for shield in shields:
        own = [v for v in found if v["shield_id"] == shield and v["stage"] == "output"]
        worst = next((v for v in own if v["violation_level"] == "error"), own[-1] if own else None)
        violation = None if worst is None else {k: worst[k] for k in ("violation_level", "user_message", "metadata")}
        steps.append(shield_step(turn_id, violation, now()))
        if violation is not None and violation["violation_level"] == "error":
            return steps, violation
    return steps, None


def steps_of(produced: list[dict[str, Any]], turn_id: str, started: str, out_of_tokens: bool) -> list[dict[str, Any]]:
    """The steps the transcript's `produced` messages (a turn's model and tool rounds) stand for."""
    steps: list[dict[str, Any]] = []
    asked: dict[str, Any] | None = None
    answers: list[dict[str, Any]] = []
    last = max((i for i, m in enumerate(produced) if m["role"] == "assistant"), default=-1)
    for index, message in enumerate(produced):
        if message["role"] == "assistant":
            if asked is not None and answers:
                steps.append(tool_step(turn_id, asked, answers, started))
            steps.append(inference_step(turn_id, message, started, out_of_tokens and index == last))
            asked, answers = message, []
        elif message["role"] == "tool":
            answers.append(message)
    if asked is not None and answers:
        steps.append(tool_step(turn_id, asked, answers, started))
    return steps


def chunk(payload: dict[str, Any]) -> models.AgentTurnResponseStreamChunk:
    return models.AgentTurnResponseStreamChunk.model_validate({"event": {"payload": payload}})


@dataclass
class StepStream:
    """Turns a Responses turn's events, and its growing transcript, into agent step events."""

    turn_id: str
    transcript: list[dict[str, Any]]  # the turn's messages list, appended to as it runs
    seen: int  # transcript messages already told
    steps: list[dict[str, Any]] = field(default_factory=list)
    open_kind: str | None = None
    open_id: str = ""
    open_at: str = ""
    asked: dict[str, Any] | None = None  # the assistant message whose server calls the open tool step runs

    def _start(self, kind: str) -> models.AgentTurnResponseStreamChunk:
        self.open_kind, self.open_id, self.open_at = kind, str(uuid.uuid4()), now()
        return chunk({"event_type": "step_start", "step_type": kind, "step_id": self.open_id, "metadata": {}})

    def _complete(self, step: dict[str, Any]) -> models.AgentTurnResponseStreamChunk:
        step["step_id"] = self.open_id
        step["started_at"] = self.open_at
        self.steps.append(step)
        self.open_kind = None
        return chunk({"event_type": "step_complete", "step_type": step["step_type"], "step_id": self.open_id,
                      "step_details": step})  # fmt: skip

    def _close_tools(self) -> Iterator[models.AgentTurnResponseStreamChunk]:
        if self.open_kind == "tool_execution" and self.asked is not None:
            answers = [m for m in self.transcript[self.seen :] if m["role"] == "tool"]
            self.seen += len(answers)
            yield self._complete(tool_step(self.turn_id, self.asked, answers, self.open_at))

    def begin(self) -> Iterator[models.AgentTurnResponseStreamChunk]:
        yield self._start("inference")

    def _sync(self, out_of_tokens: bool = False) -> Iterator[models.AgentTurnResponseStreamChunk]:
        """Tell what the transcript gained: a model call's answer ends its inference step."""
        while self.seen < len(self.transcript):
            message = self.transcript[self.seen]
            if message["role"] != "assistant":
                return  # tool answers: told when their step closes
            if self.open_kind == "tool_execution":
                yield from self._close_tools()
                yield self._start("inference")
                continue
            self.seen += 1
            yield self._complete(inference_step(self.turn_id, message, self.open_at, out_of_tokens))
            self.asked = message

    async def events(
        self, source: AsyncIterator[models.ResponseStreamEvent]
    ) -> AsyncIterator[models.AgentTurnResponseStreamChunk]:
        async for event in source:
            kind = event.type
            fields = event.model_extra or {}
            if kind in (
                "response.output_text.delta",
                "response.refusal.delta",
                "response.function_call_arguments.delta",
            ):
                if self.open_kind != "inference":
                    for told in self._close_tools():
                        yield told
                    yield self._start("inference")
                delta = (
                    {"type": "text", "text": fields.get("delta", "")}
                    if kind != "response.function_call_arguments.delta"  # a refusal is what the agent says
                    else {"type": "tool_call", "tool_call": fields.get("delta", ""), "parse_status": "in_progress"}
                )
                yield chunk({"event_type": "step_progress", "step_type": "inference", "step_id": self.open_id,
                             "delta": delta})  # fmt: skip
            out_of_tokens = (
                kind == "response.incomplete"
                and ((fields.get("response") or {}).get("incomplete_details") or {}).get("reason")
                == "max_output_tokens"
            )
            for told in self._sync(out_of_tokens):
                yield told
            item = fields.get("item") or {}
            opens_tools = kind == "response.output_item.added" and item.get("type") in SERVER_ITEMS
            if opens_tools and self.open_kind != "tool_execution":
                yield self._start("tool_execution")
        for told in self._close_tools():  # the last tool round, when the turn stopped after it
            yield told


# The output items of calls the server runs (their chat rounds are tool_execution steps).
SERVER_ITEMS = ("file_search_call", "web_search_call", "mcp_call", "tool_runtime_call")
