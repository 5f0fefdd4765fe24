"""Agents (Llama Stack's Agents API): agents, sessions, turns and steps, on the Responses engine.

An agent is a stored config: model, instructions, sampling, tool groups, client tools, shields.
A session keeps the chat transcript its turns continue. A turn runs input shields (shield_call
steps), then the Responses turn loop (response_turn.py) with the agent's tools — tool-group tools
run by the server through the tool runtime, client tools ending the turn `awaiting_input` until
`resume` brings their results — with the output shields judging every model call's answer before
any of it is told (a stream a sentence at a time, as chat guardrails hold one). Its steps are read
from the transcript (agent_steps.py). Everything is in SQLite, so sessions outlive restarts.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pocketstack._generated import models, protocols
from pocketstack.apis.agents import tracing
from pocketstack.apis.agents.steps import (
    StepStream,
    chunk,
    completion,
    content_text,
    now,
    output_shield_steps,
    shield_step,
    steps_of,
    tool_step,
)
from pocketstack.apis.inference.api import InferenceApi
from pocketstack.apis.responses.tools.tool_groups import ToolGroupTools
from pocketstack.apis.responses.turn import Turn
from pocketstack.apis.safety import SafetyApi
from pocketstack.apis.tools import ToolsApi
from pocketstack.apis.vector_io.api import VectorIOApi
from pocketstack.core.registry import Resource
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, ResourceNotFoundError
from pocketstack.providers.tool_runtime import HEADERS_REFUSED
from pocketstack.security.access import AGENT, AGENT_SESSION, Action
from pocketstack.storage.agents import AgentStore, StoredAgent, StoredSession, StoredTurn
from pocketstack.wire.fields import given, plain

Chunks = AsyncIterator[models.AgentTurnResponseStreamChunk]


def _config(agent_config: models.AgentConfig) -> dict[str, Any]:
    return agent_config.model_dump(mode="json", exclude_unset=True) | {"max_infer_iters": agent_config.max_infer_iters}


def _sampling(config: dict[str, Any]) -> dict[str, Any]:
    """Llama Stack's sampling_params as response request fields (llama.cpp's top_k as an extra)."""
    params = config.get("sampling_params") or {}
    strategy = params.get("strategy") or {}
    kind = strategy.get("type", "greedy" if "strategy" in params else None)
    fields: dict[str, Any] = {}
    if kind == "greedy":
        fields["temperature"] = 0.0
    elif kind == "top_p":
        fields |= {k: strategy[k] for k in ("temperature", "top_p") if strategy.get(k) is not None}
    elif kind == "top_k":
        fields["top_k"] = strategy.get("top_k")
    if params.get("max_tokens"):
        fields["max_output_tokens"] = params["max_tokens"]
    return fields


# Llama Stack 0.2's clients name parameter types as Python does.
_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array",
               "dict": "object"}  # fmt: skip


def _client_tool(tool: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("input_schema")
    if schema is None:  # Llama Stack 0.2's parameter list
        parameters = tool.get("parameters") or []
        schema = {
            "type": "object",
            "properties": {
                p["name"]: {"type": _JSON_TYPES.get(p.get("parameter_type") or "str", p.get("parameter_type")),
                            "description": p.get("description", "")}
                for p in parameters
            },
            "required": [p["name"] for p in parameters if p.get("required", True)],
        }  # fmt: skip
    return {"type": "function", "name": tool["name"], "description": tool.get("description") or "",
            "parameters": schema}  # fmt: skip


def _text_format(config: dict[str, Any]) -> dict[str, Any] | None:
    """Llama Stack's response_format as a response request's `text` (only json_schema is served)."""
    response_format = config.get("response_format") or {}
    if not response_format:
        return None
    if response_format.get("type") != "json_schema":
        raise BadRequestError("response_format is {type: json_schema, json_schema}.", param="response_format")
    return {"format": {"type": "json_schema", "name": "answer", "schema": response_format.get("json_schema") or {}}}


def _chat_messages(messages: list[dict[str, Any]], documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    chat = []
    for message in messages:
        text = content_text(message.get("content"))
        if message["role"] == "tool":
            chat.append({"role": "tool", "tool_call_id": message.get("call_id", ""), "content": text})
            continue
        if message.get("context"):
            text += "\n\n" + content_text(message["context"])
        chat.append({"role": "user", "content": text})
    if documents and chat:
        given_docs = "\n\n".join(
            f"[document {n}]\n{content_text(d.get('content'))}" for n, d in enumerate(documents, 1)
        )
        chat[-1] = {**chat[-1], "content": f"{chat[-1]['content']}\n\n{given_docs}"}
    return chat


def _told(steps: list[dict[str, Any]]) -> list[models.AgentTurnResponseStreamChunk]:
    """Steps that ran before (or after) the streamed model calls, told as a start and a complete each."""
    told = []
    for step in steps:
        kind, step_id = step["step_type"], step["step_id"]
        told.append(chunk({"event_type": "step_start", "step_type": kind, "step_id": step_id, "metadata": {}}))
        told.append(chunk({"event_type": "step_complete", "step_type": kind, "step_id": step_id, "step_details": step}))
    return told


class AgentsApi(protocols.Agents):
    def __init__(
        self, stack: Stack, inference: InferenceApi, vector_io: VectorIOApi, tools: ToolsApi, safety: SafetyApi
    ) -> None:
        self.stack = stack
        self.inference = inference
        self.vector_io = vector_io
        self.tools = tools
        self.safety = safety
        self.access = stack.access

    @property
    def store(self) -> AgentStore:
        return AgentStore(self.stack.database)

    async def _agent(self, agent_id: str, action: Action = Action.READ) -> tuple[str, dict[str, Any]]:
        """The agent's creation time and config, if the request may do `action` to it: one it may not
        see is as unknown as a missing one."""
        found = await self.store.agent(agent_id)
        missing = ResourceNotFoundError("agent", agent_id)
        if found is None:
            raise missing
        self.access.check(action, AGENT, agent_id, found.owner, missing)
        return found.created_at, found.config

    async def _session(self, agent_id: str, session_id: str, action: Action = Action.READ) -> StoredSession:
        """A session of a visible agent that the request may do `action` to (its turns follow it)."""
        await self._agent(agent_id)
        session = await self.store.session(agent_id, session_id)
        missing = ResourceNotFoundError("session", session_id)
        if session is None:
            raise missing
        self.access.check(action, AGENT_SESSION, session_id, session.owner, missing)
        return session

    # -- agents and sessions -----------------------------------------------------------------

    async def create_agent(self, request: models.AgentCreation) -> models.AgentCreateResponse:
        config = _config(request.agent_config)
        await self._runtime_tools(config, [])  # unknown tool groups are a 400 now, not at the first turn
        _text_format(config)  # and a response_format the engine cannot serve
        for shield in [*config.get("input_shields", []), *config.get("output_shields", [])]:
            await self.safety.shields.lookup(shield)
        agent_id = str(uuid.uuid4())
        await self.store.add_agent(StoredAgent(agent_id, now(), config, self.access.owner()))
        return models.AgentCreateResponse(agent_id=agent_id)

    async def get_agent(self, request: models.GetAgentRequest) -> models.Agent:
        created, config = await self._agent(request.agent_id)
        return models.Agent.model_validate(
            {"agent_id": request.agent_id, "agent_config": config, "created_at": created}
        )

    async def list_agents(self, request: models.ListAgentsRequest) -> models.AgentList:
        found = await self.store.agents(request.start_index, request.limit + 1, self.access.visibility(AGENT))
        data = [
            {"agent_id": a.id, "agent_config": a.config, "created_at": a.created_at} for a in found[: request.limit]
        ]
        return models.AgentList.model_validate({"data": data, "has_more": len(found) > request.limit})

    async def delete_agent(self, request: models.DeleteAgentRequest) -> None:
        await self._agent(request.agent_id, Action.DELETE)
        if not await self.store.delete_agent(request.agent_id):
            raise ResourceNotFoundError("agent", request.agent_id)

    async def create_agent_session(
        self, request: models.CreateAgentSessionRequest
    ) -> models.AgentSessionCreateResponse:
        await self._agent(request.agent_id)
        session = StoredSession(
            str(uuid.uuid4()), request.agent_id, request.session_name, now(), [], self.access.owner()
        )
        await self.store.add_session(session)
        return models.AgentSessionCreateResponse(session_id=session.id)

    async def _session_body(self, session: StoredSession, turn_ids: list[str] | None = None) -> dict[str, Any]:
        turns = [t.turn for t in await self.store.turns(session.id)]
        if turn_ids is not None:
            turns = [t for t in turns if t["turn_id"] in turn_ids]
        return {"session_id": session.id, "session_name": session.name, "turns": turns,
                "started_at": session.started_at}  # fmt: skip

    async def get_agents_session(self, request: models.GetAgentsSessionRequest) -> models.AgentSession:
        session = await self._session(request.agent_id, request.session_id)
        return models.AgentSession.model_validate(await self._session_body(session, given(request.turn_ids)))

    async def list_agent_sessions(self, request: models.ListAgentSessionsRequest) -> models.AgentSessionList:
        await self._agent(request.agent_id)
        visible = self.access.visibility(AGENT_SESSION)
        found = await self.store.sessions(request.agent_id, request.start_index, request.limit + 1, visible)
        data = [await self._session_body(s) for s in found[: request.limit]]
        return models.AgentSessionList.model_validate({"data": data, "has_more": len(found) > request.limit})

    async def delete_agents_session(self, request: models.DeleteAgentsSessionRequest) -> None:
        await self._session(request.agent_id, request.session_id, Action.DELETE)
        if not await self.store.delete_session(request.agent_id, request.session_id):
            raise ResourceNotFoundError("session", request.session_id)

    async def _turn(self, agent_id: str, session_id: str, turn_id: str) -> StoredTurn:
        await self._session(agent_id, session_id)
        stored = await self.store.turn(session_id, turn_id)
        if stored is None:
            raise ResourceNotFoundError("turn", turn_id)
        return stored

    async def get_agents_turn(self, request: models.GetAgentsTurnRequest) -> models.AgentTurn:
        stored = await self._turn(request.agent_id, request.session_id, request.turn_id)
        return models.AgentTurn.model_validate(stored.turn)

    async def get_agents_step(self, request: models.GetAgentsStepRequest) -> models.AgentStepResponse:
        stored = await self._turn(request.agent_id, request.session_id, request.turn_id)
        for step in stored.turn["steps"]:
            if step["step_id"] == request.step_id:
                return models.AgentStepResponse.model_validate({"step": step})
        raise ResourceNotFoundError("step", request.step_id)

    # -- turns -------------------------------------------------------------------------------

    async def _runtime_tools(
        self, config: dict[str, Any], extra: list[Any]
    ) -> dict[str, tuple[Resource, dict[str, Any]]]:
        """The agent's (and this turn's) tool groups' tools, by name: `group` or `group/tool`, with args."""
        found: dict[str, tuple[Resource, dict[str, Any]]] = {}
        for entry in [*config.get("toolgroups", []), *extra]:
            name, args = (entry, {}) if isinstance(entry, str) else (entry["name"], entry.get("args") or {})
            group_id, _, only = name.partition("/")
            resource = await self.tools.table.find(group_id)
            if resource is None:  # "builtin::rag/knowledge_search" names one tool of a group
                raise BadRequestError(f"No tool group '{group_id}' is registered.", param="toolgroups")
            if "headers" in args:  # credentials: per request (mcp_headers), never kept with an agent or turn
                raise BadRequestError(f"Tool group '{group_id}': {HEADERS_REFUSED}", code="secret_not_stored",
                                      param="toolgroups")  # fmt: skip
            if args:
                body = {**resource.body, "args": {**(resource.body.get("args") or {}), **args}}
                resource = dataclasses.replace(resource, body=body)
            for tool in await self.tools.tools_of(resource):
                if not only or tool.name == only:
                    found[tool.name] = (resource, tool.model_dump(mode="json", exclude_unset=True))
        return found

    async def _shields(
        self, shields: list[str], messages: list[dict[str, Any]], turn_id: str
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Run the input shields over the messages: their steps, and the first blocking violation."""
        steps, blocked = [], None
        checked = [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] in ("user", "assistant")]
        for shield in shields:
            started = now()
            with tracing.shield_call(shield) as span:
                answer = await self.safety.run_shield(models.RunShieldRequest.model_validate(
                    {"shield_id": shield, "messages": checked}))  # fmt: skip
                violation = plain(given(answer.violation))
                dumped = violation.model_dump(mode="json") if violation is not None else None
                if dumped is not None and span.is_recording():
                    span.set_attribute(tracing.VIOLATION_LEVEL, dumped["violation_level"])
            steps.append(shield_step(turn_id, dumped, started))
            if dumped is not None and dumped["violation_level"] == "error" and blocked is None:
                blocked = dumped
        return steps, blocked

    def _engine(
        self,
        config: dict[str, Any],
        messages: list[dict[str, Any]],
        runtime: dict[str, tuple[Resource, dict[str, Any]]],
        tool_config: dict[str, Any],
    ) -> Turn:
        # The turn's tool_config overrides the agent's; the deprecated top-level tool_choice comes last.
        tool_choice = (tool_config or config.get("tool_config") or {}).get("tool_choice") or config.get("tool_choice")
        tools = [_client_tool(t) for t in config.get("client_tools", [])]
        # The turn's messages are given to the engine whole: the request only carries the settings.
        body: dict[str, Any] = {"model": config["model"], "input": "(the session's messages)", "store": False,
                                "max_infer_iters": config.get("max_infer_iters", 10), **_sampling(config)}  # fmt: skip
        if config.get("instructions"):
            body["instructions"] = config["instructions"]
        if tools:
            body["tools"] = tools
        if tool_choice in ("auto", "required", "none") and (tools or runtime):
            body["tool_choice"] = tool_choice
        text = _text_format(config)
        if text is not None:
            body["text"] = text
        # An agent's max_tokens may be below the 16 a Responses request must ask for: it is set past the check.
        max_tokens = body.pop("max_output_tokens", None)
        request = models.CreateResponseRequest.model_validate(body)
        if max_tokens is not None:
            request.max_output_tokens = max_tokens
        skeleton = {"id": f"turn-{uuid.uuid4().hex}", "status": "in_progress", "output": []}
        turn = Turn(request, skeleton, messages, self.inference, [ToolGroupTools(self.tools, runtime)])
        turn.output_shields = list(config.get("output_shields") or [])  # every answer judged before it is told
        turn.tokens_per_call = True  # sampling_params.max_tokens, as Llama Stack's agents apply it
        return turn

    async def create_agent_turn(self, request: models.CreateAgentTurnRequest) -> models.AgentTurn | Chunks:
        _, config = await self._agent(request.agent_id)
        session = await self._session(request.agent_id, request.session_id, Action.UPDATE)
        earlier = await self.store.turns(session.id)
        if earlier and earlier[-1].pending is not None:  # its model asked for tool results: the transcript waits
            raise BadRequestError(
                f"Turn {earlier[-1].turn['turn_id']} awaits its tool results: resume it before a new turn.",
                code="turn_awaiting_input",
            )
        body = request.model_dump(mode="json", exclude_unset=True)
        messages = body["messages"]
        turn: dict[str, Any] = {"turn_id": str(uuid.uuid4()), "session_id": session.id, "input_messages": messages,
                                "steps": [], "output_attachments": [], "started_at": now()}  # fmt: skip
        # The turn's span: current while it works (listing its tools, its shields, model and tool calls).
        run = tracing.turn_run(request.agent_id, config, session.id, turn["turn_id"])
        with run.working():
            runtime = await self._runtime_tools(config, body.get("toolgroups") or [])
            new = _chat_messages(messages, body.get("documents") or [])
            shield_steps, blocked = await self._shields(config.get("input_shields", []), new, turn["turn_id"])
            turn["steps"] += shield_steps
            turn["_extras"] = {"toolgroups": body.get("toolgroups") or [],
                               "tool_config": body.get("tool_config") or {}}  # fmt: skip
            engine = self._engine(config, session.transcript + new, runtime, turn["_extras"]["tool_config"])
            answer = await self._drive(config, session, turn, engine, blocked, bool(given(request.stream, False)))
            return tracing.traced(run, answer, turn, engine)

    async def resume_agent_turn(self, request: models.ResumeAgentTurnRequest) -> models.AgentTurn | Chunks:
        _, config = await self._agent(request.agent_id)
        session = await self._session(request.agent_id, request.session_id, Action.UPDATE)
        stored = await self._turn(request.agent_id, request.session_id, request.turn_id)
        if stored.pending is None:
            raise BadRequestError("This turn is not awaiting tool results.", code="turn_not_awaiting_input")
        asked = session.transcript[-1]
        waiting = {call["call_id"] for call in stored.pending["client_calls"]}
        answers = [r.model_dump(mode="json") for r in request.tool_responses]
        if {a["call_id"] for a in answers} != waiting:
            raise BadRequestError(
                f"Give one tool response per awaited call: {', '.join(sorted(waiting))}.", param="tool_responses"
            )
        tool_messages = [
            {"role": "tool", "tool_call_id": a["call_id"], "content": content_text(a["content"])} for a in answers
        ]
        turn = stored.turn
        turn["steps"].append(tool_step(turn["turn_id"], asked, tool_messages, now()))
        turn["_extras"] = extras = stored.pending.get("extras") or {}
        turn["_told"] = len(turn["steps"]) - 1  # a resumed stream tells the client's tool step, not the earlier ones
        run = tracing.turn_run(request.agent_id, config, session.id, turn["turn_id"])  # the resumed part's span
        with run.working():
            runtime = await self._runtime_tools(config, extras.get("toolgroups", []))
            engine = self._engine(config, session.transcript + tool_messages, runtime, extras.get("tool_config", {}))
            engine.opening = len(session.transcript) - 1  # the turn's model already called: no forced choice
            answer = await self._drive(config, session, turn, engine, None, bool(given(request.stream, False)))
            return tracing.traced(run, answer, turn, engine)

    async def _drive(
        self,
        config: dict[str, Any],
        session: StoredSession,
        turn: dict[str, Any],
        engine: Turn,
        blocked: dict[str, Any] | None,
        stream: bool,
    ) -> models.AgentTurn | Chunks:
        """Run the model (unless an input shield blocked the turn), as a whole turn or as its events."""
        start = len(engine.messages)
        if blocked is not None:
            refusal = {"role": "assistant", "content": blocked.get("user_message") or "I can't help with that."}
            engine.messages.append(refusal)
            if not stream:
                return await self._finish(config, session, turn, engine, start, steps=[], refused=True)

            async def refused() -> Chunks:
                yield chunk({"event_type": "turn_start", "turn_id": turn["turn_id"]})
                for told in _told(turn["steps"]):
                    yield told
                done = await self._finish(config, session, turn, engine, start, steps=[], refused=True)
                yield chunk({"event_type": "turn_complete", "turn": done.model_dump(mode="json")})

            return refused()
        answer = await engine.call(stream=stream)  # an unknown model is an error before any event
        if isinstance(answer, models.ChatCompletion):
            await engine.run(answer)
            return await self._finish(config, session, turn, engine, start, steps=None)
        return self._events(config, session, turn, engine, start, answer)

    async def _events(
        self,
        config: dict[str, Any],
        session: StoredSession,
        turn: dict[str, Any],
        engine: Turn,
        start: int,
        chunks: AsyncIterator[models.ChatCompletionChunk],
    ) -> Chunks:
        yield chunk({"event_type": "turn_start", "turn_id": turn["turn_id"]})
        for told in _told(turn["steps"][turn.get("_told", 0) :]):  # input shields, or the client's tool results
            yield told
        steps = StepStream(turn["turn_id"], engine.messages, start)
        for told in steps.begin():
            yield told
        async for told in steps.events(engine.events(chunks)):
            yield told
        before = len(turn["steps"]) + len(steps.steps)
        done = await self._finish(config, session, turn, engine, start, steps=steps.steps)
        for told in _told(turn["steps"][before:]):  # output shields, run on the whole answer
            yield told
        kind = "turn_awaiting_input" if turn["awaiting"] else "turn_complete"
        yield chunk({"event_type": kind, "turn": done.model_dump(mode="json")})

    async def _finish(
        self,
        config: dict[str, Any],
        session: StoredSession,
        turn: dict[str, Any],
        engine: Turn,
        start: int,
        steps: list[dict[str, Any]] | None,
        refused: bool = False,
    ) -> models.AgentTurn:
        """Steps, output shields, the output message; the turn and the session's transcript stored.
        A turn an input shield `refused` is answered by the refusal, which no output shield judges."""
        produced = engine.messages[start:]
        out_of_tokens = (engine.response.get("incomplete_details") or {}).get("reason") == "max_output_tokens"
        if steps is None:
            steps = steps_of(produced, turn["turn_id"], turn["started_at"], out_of_tokens)
        turn["steps"] += steps
        last: dict[str, Any] = next((m for m in reversed(engine.messages) if m["role"] == "assistant"), {"content": ""})
        client = [c for c in last.get("tool_calls") or [] if c["function"]["name"] not in engine.hidden]
        pending = None
        if client and produced:
            pending = {"client_calls": [{"call_id": c["id"], "tool_name": c["function"]["name"]} for c in client],
                       "extras": turn.get("_extras") or {}}  # fmt: skip
        elif config.get("output_shields") and last.get("content") and not refused:
            shield_steps, blocked = output_shield_steps(config["output_shields"], engine.violations, turn["turn_id"])
            turn["steps"] += shield_steps
            if blocked is not None:
                last["content"] = blocked.get("user_message") or "I can't help with that."
        turn["output_message"] = completion(last, out_of_tokens)
        if pending is not None:
            turn["output_message"]["tool_calls"] = [
                call for call in turn["output_message"]["tool_calls"] if call["call_id"] in
                {c["call_id"] for c in pending["client_calls"]}
            ]  # fmt: skip
        turn["awaiting"] = pending is not None
        turn["completed_at"] = None if pending is not None else now()
        session.transcript = engine.messages
        served = {k: v for k, v in turn.items() if k != "awaiting" and not k.startswith("_")}
        await self.store.save_turn(session, StoredTurn(served, pending))
        return models.AgentTurn.model_validate(served)


__all__ = ["AgentsApi"]
