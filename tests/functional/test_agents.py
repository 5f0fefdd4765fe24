"""Llama Stack's Agents API over HTTP: agents, sessions, turns (whole and streamed), resume, steps.

The model is the scripted one (set answers and tool calls, through the real provider table); the
server's tools are a real MCP server on loopback registered as a tool group (test_mcp.py's);
shields are the real pii shield. Sessions are read back by a second app on the same state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient
from pocketstack_client import Client
from pocketstack_client.api.agents import create_agent, create_agent_session, get_agents_turn
from pocketstack_client.models import (
    AgentCreateResponse,
    AgentCreation,
    AgentSessionCreateResponse,
    AgentSessionCreation,
    AgentTurn,
    AgentTurnCreation,
)
from pocketstack_client.streaming import astream_create_agent_turn

from pocketstack._generated import models
from pocketstack.app import create_app
from pocketstack.config import StackConfig
from tests.support.config import CHAT_MODEL, edge_providers_with, edge_with, server_allowing
from tests.support.documents import store_of
from tests.support.errors import assert_error_shape
from tests.support.scripted import CHAT, STREAMED, scripted_entry

ADD = "Add 2 and 3."
WEATHER = "Weather in Paris?"
COMET = "What does a comet grow near the sun?"
CALLS = {
    ADD: [{"name": "add", "arguments": '{"a": 2, "b": 3}'}],
    COMET: [{"name": "knowledge_search", "arguments": '{"query": "comet tail near the sun"}'}],
    WEATHER: [{"name": "get_weather", "arguments": '{"city": "Paris"}'}],
}
REPLIES = {
    "capital?": "Paris.",
    "Who writes?": "Write to jane.doe@example.com for that.",
    "Who else writes?": "Ask the office first. Then write to jane.doe@example.com for that. Never send this one.",
}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _config() -> StackConfig:
    return edge_with(
        providers=edge_providers_with(
            inference=[*edge_providers_with()["inference"], scripted_entry(replies=REPLIES, calls=CALLS)]
        ),
        registered_resources={
            "models": [CHAT],
            "shields": [{"shield_id": "pii", "provider_id": "pii"}],
            "tool_groups": [{"toolgroup_id": "builtin::rag", "provider_id": "file-search"}],
        },
        server=server_allowing("127.0.0.1"),  # the MCP server (test_an_mcp_tool_group...) listens there
    )


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(_config()))  # type: ignore[no-any-return]


async def _json(server: TestClient[Any, Any], method: str, path: str, body: Any = None, status: int = 200) -> Any:
    reply = await server.request(method, path, json=body)
    assert reply.status == status, await reply.text()
    return await reply.json() if status == 200 else None


async def _agent(server: TestClient[Any, Any], **config: Any) -> tuple[str, str]:
    agent = await _json(server, "POST", "/v1alpha/agents", {"agent_config": {
        "model": "chat", "instructions": "You are terse.", **config}})  # fmt: skip
    session = await _json(server, "POST", f"/v1alpha/agents/{agent['agent_id']}/session", {"session_name": "s"})
    return agent["agent_id"], session["session_id"]


def _turn_path(agent_id: str, session_id: str) -> str:
    return f"/v1alpha/agents/{agent_id}/session/{session_id}/turn"


async def _stream(server: TestClient[Any, Any], path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    reply = await server.post(path, json={**body, "stream": True})
    assert reply.status == 200 and reply.content_type == "text/event-stream", await reply.text()
    text = await reply.text()
    assert "[DONE]" not in text  # Llama Stack's streams end without OpenAI's terminator (its 0.2 clients choke on it)
    payloads = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            payloads.append(json.loads(line[len("data: ") :])["event"]["payload"])
    return payloads


async def test_agents_and_sessions_are_created_listed_read_and_deleted(server: TestClient[Any, Any]) -> None:
    agent_id, session_id = await _agent(server, name="helper", sampling_params={"strategy": {"type": "greedy"}})
    agent = await _json(server, "GET", f"/v1alpha/agents/{agent_id}")
    assert agent["agent_config"]["name"] == "helper" and agent["agent_config"]["max_infer_iters"] == 10
    other, _ = await _agent(server)
    page = await _json(server, "GET", "/v1alpha/agents?limit=1")
    assert [a["agent_id"] for a in page["data"]] == [agent_id] and page["has_more"] is True
    page = await _json(server, "GET", "/v1alpha/agents?start_index=1&limit=5")
    assert [a["agent_id"] for a in page["data"]] == [other] and page["has_more"] is False
    session = await _json(server, "GET", f"/v1alpha/agents/{agent_id}/session/{session_id}")
    assert (session["session_name"], session["turns"]) == ("s", [])
    sessions = await _json(server, "GET", f"/v1alpha/agents/{agent_id}/sessions")
    assert [s["session_id"] for s in sessions["data"]] == [session_id]
    await _json(server, "DELETE", f"/v1alpha/agents/{agent_id}/session/{session_id}", status=204)
    await _json(server, "GET", f"/v1alpha/agents/{agent_id}/session/{session_id}", status=404)
    await _json(server, "DELETE", f"/v1alpha/agents/{agent_id}", status=204)
    await _json(server, "GET", f"/v1alpha/agents/{agent_id}", status=404)


async def test_a_turn_answers_and_the_next_one_continues_the_session(
    server: TestClient[Any, Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    agent_id, session_id = await _agent(server, sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 50})
    turn = await _json(server, "POST", _turn_path(agent_id, session_id),
                       {"messages": [{"role": "user", "content": "capital?"}]})  # fmt: skip
    assert turn["output_message"] == {"role": "assistant", "content": "Paris.", "stop_reason": "end_of_turn",
                                      "tool_calls": []}  # fmt: skip
    (step,) = turn["steps"]
    assert step["step_type"] == "inference" and step["model_response"]["content"] == "Paris."
    assert turn["input_messages"] == [{"role": "user", "content": "capital?"}] and turn["completed_at"]
    assert scripted[-1].temperature == 0.0 and scripted[-1].max_tokens == 50
    await _json(server, "POST", _turn_path(agent_id, session_id), {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "And Spain?"}]}]})  # fmt: skip
    seen = [(m.role, m.content) for m in scripted[-1].messages]
    assert seen == [("system", "You are terse."), ("user", "capital?"), ("assistant", "Paris."),
                    ("user", "And Spain?")]  # fmt: skip
    session = await _json(server, "GET", f"/v1alpha/agents/{agent_id}/session/{session_id}")
    assert session["turns"][0]["turn_id"] == turn["turn_id"] and len(session["turns"]) == 2
    one = await _json(server, "GET", f"/v1alpha/agents/{agent_id}/session/{session_id}?turn_ids={turn['turn_id']}")
    assert [t["turn_id"] for t in one["turns"]] == [turn["turn_id"]]
    fetched = await _json(server, "GET", f"{_turn_path(agent_id, session_id)}/{turn['turn_id']}")
    assert fetched == turn
    found = await _json(server, "GET", f"{_turn_path(agent_id, session_id)}/{turn['turn_id']}/step/{step['step_id']}")
    assert found == {"step": step}


async def test_an_mcp_tool_group_runs_in_the_turn_as_steps(
    server: TestClient[Any, Any], mcp_url: str, scripted: list[models.ChatCompletionRequest]
) -> None:
    await _json(server, "POST", "/v1/toolgroups", {"toolgroup_id": "mcp::calc", "provider_id": "model-context-protocol",
                                                   "mcp_endpoint": {"uri": mcp_url}}, status=204)  # fmt: skip
    agent_id, session_id = await _agent(server, toolgroups=["mcp::calc/add"])
    turn = await _json(
        server, "POST", _turn_path(agent_id, session_id), {"messages": [{"role": "user", "content": ADD}]}
    )
    kinds = [s["step_type"] for s in turn["steps"]]
    assert kinds == ["inference", "tool_execution", "inference"]
    asked, ran, _ = turn["steps"]
    assert asked["model_response"]["tool_calls"][0]["tool_name"] == "add"
    assert asked["model_response"]["stop_reason"] == "end_of_message"
    assert ran["tool_calls"][0]["arguments"] == '{"a": 2, "b": 3}'
    assert ran["tool_responses"] == [{"call_id": ran["tool_calls"][0]["call_id"], "tool_name": "add", "content": "5"}]
    assert turn["output_message"]["content"] == "The tool said: 5"
    events = await _stream(server, _turn_path(agent_id, session_id), {"messages": [{"role": "user", "content": ADD}]})
    told = [(e["event_type"], e.get("step_type")) for e in events if e["event_type"] != "step_progress"]
    assert told == [
        ("turn_start", None),
        ("step_start", "inference"), ("step_complete", "inference"),
        ("step_start", "tool_execution"), ("step_complete", "tool_execution"),
        ("step_start", "inference"), ("step_complete", "inference"),
        ("turn_complete", None),
    ]  # fmt: skip
    progress = "".join(e["delta"]["text"] for e in events if e["event_type"] == "step_progress"
                       and e["delta"]["type"] == "text")  # fmt: skip
    assert progress == "The tool said: 5"
    final = events[-1]["turn"]
    assert [s["step_id"] for s in final["steps"]] == [
        e["step_id"] for e in events if e["event_type"] == "step_complete"
    ]
    assert final["steps"][1]["tool_responses"][0]["content"] == "5"


async def test_a_client_tool_call_awaits_input_and_the_turn_resumes(
    server: TestClient[Any, Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    agent_id, session_id = await _agent(server, client_tools=[WEATHER_TOOL])
    path = _turn_path(agent_id, session_id)
    events = await _stream(server, path, {"messages": [{"role": "user", "content": WEATHER}]})
    assert events[-1]["event_type"] == "turn_awaiting_input"
    turn = events[-1]["turn"]
    (call,) = turn["output_message"]["tool_calls"]
    assert (call["tool_name"], call["arguments"]) == ("get_weather", '{"city": "Paris"}')
    assert turn["completed_at"] is None
    assert isinstance(scripted[-1].tools, list) and scripted[-1].tools[0].function.name == "get_weather"
    # While it waits, the session takes no new turn (its transcript ends with the model's unanswered call).
    refused = await server.post(path, json={"messages": [{"role": "user", "content": "capital?"}]})
    assert refused.status == 400 and (await refused.json())["error"]["code"] == "turn_awaiting_input"
    resumed = await _json(server, "POST", f"{path}/{turn['turn_id']}/resume", {"tool_responses": [
        {"call_id": call["call_id"], "tool_name": "get_weather", "content": "18 C and sunny"}]})  # fmt: skip
    assert [s["step_type"] for s in resumed["steps"]] == ["inference", "tool_execution", "inference"]
    assert resumed["steps"][1]["tool_responses"][0]["content"] == "18 C and sunny"
    assert resumed["output_message"]["content"] == "The tool said: 18 C and sunny" and resumed["completed_at"]
    again = await server.post(f"{path}/{turn['turn_id']}/resume", json={"tool_responses": [
        {"call_id": call["call_id"], "tool_name": "get_weather", "content": "x"}]})  # fmt: skip
    assert again.status == 400  # nothing awaits any more
    # Not streamed, and resumed as a stream.
    waiting = await _json(server, "POST", path, {"messages": [{"role": "user", "content": WEATHER}]})
    (call,) = waiting["output_message"]["tool_calls"]
    wrong = await server.post(f"{path}/{waiting['turn_id']}/resume", json={"tool_responses": [
        {"call_id": "call_other", "tool_name": "get_weather", "content": "x"}]})  # fmt: skip
    assert wrong.status == 400 and "call_" in (await wrong.json())["error"]["message"]
    events = await _stream(server, f"{path}/{waiting['turn_id']}/resume", {"tool_responses": [
        {"call_id": call["call_id"], "tool_name": "get_weather", "content": "rain"}]})  # fmt: skip
    told = [(e["event_type"], e.get("step_type")) for e in events if e["event_type"] != "step_progress"]
    assert told == [("turn_start", None), ("step_start", "tool_execution"), ("step_complete", "tool_execution"),
                    ("step_start", "inference"), ("step_complete", "inference"), ("turn_complete", None)]  # fmt: skip
    assert events[-1]["turn"]["output_message"]["content"] == "The tool said: rain"


async def test_input_and_output_shields_are_shield_call_steps(server: TestClient[Any, Any]) -> None:
    agent_id, session_id = await _agent(server, input_shields=["pii"], output_shields=["pii"])
    path = _turn_path(agent_id, session_id)
    clean = await _json(server, "POST", path, {"messages": [{"role": "user", "content": "capital?"}]})
    assert [s["step_type"] for s in clean["steps"]] == ["shield_call", "inference", "shield_call"]
    assert clean["steps"][0]["violation"] is None and clean["output_message"]["content"] == "Paris."
    blocked = await _json(server, "POST", path, {"messages": [{"role": "user", "content": "I am jane@example.com"}]})
    (shield,) = blocked["steps"]
    assert shield["step_type"] == "shield_call" and shield["violation"]["violation_level"] == "error"
    assert blocked["output_message"]["content"] == shield["violation"]["user_message"]
    leaked = await _json(server, "POST", path, {"messages": [{"role": "user", "content": "Who writes?"}]})
    assert [s["step_type"] for s in leaked["steps"]] == ["shield_call", "inference", "shield_call"]
    assert leaked["steps"][2]["violation"] is not None
    assert "jane.doe" not in leaked["output_message"]["content"]
    assert "jane.doe" not in json.dumps(leaked)  # nor in the inference step: the shield judged it first
    events = await _stream(server, path, {"messages": [{"role": "user", "content": "Who else writes?"}]})
    told = [(e["event_type"], e.get("step_type")) for e in events if e["event_type"] != "step_progress"]
    assert told[-3:] == [("step_start", "shield_call"), ("step_complete", "shield_call"), ("turn_complete", None)]
    said = "".join(e["delta"]["text"] for e in events if e["event_type"] == "step_progress")
    violation = events[-2]["step_details"]["violation"]  # the output shield's step, told after the answer
    assert violation["violation_level"] == "error" and "jane.doe" not in json.dumps(events)
    assert said == "Ask the office first. " + violation["user_message"]  # the clean sentence, then the refusal
    assert "Never " not in STREAMED  # the generation stopped at the flagged sentence
    assert events[-1]["turn"]["output_message"]["content"] == violation["user_message"]


async def test_sessions_outlive_the_server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> None:
    first = await aiohttp_client(create_app(_config()))
    agent_id, session_id = await _agent(first)
    capital = {"messages": [{"role": "user", "content": "capital?"}]}
    turn = await _json(first, "POST", _turn_path(agent_id, session_id), capital)
    await first.close()
    second = await aiohttp_client(create_app(_config()))
    session = await _json(second, "GET", f"/v1alpha/agents/{agent_id}/session/{session_id}")
    assert session["turns"] == [turn]
    await _json(second, "POST", _turn_path(agent_id, session_id), {"messages": [{"role": "user", "content": "more"}]})
    assert [(m.role, m.content) for m in scripted[-1].messages][1:3] == [("user", "capital?"), ("assistant", "Paris.")]


async def test_agent_errors(server: TestClient[Any, Any]) -> None:
    agent_id, session_id = await _agent(server)
    turn_path = _turn_path(agent_id, session_id)
    cases = [
        ("POST", "/v1alpha/agents", {}, 400),
        ("POST", "/v1alpha/agents", {"agent_config": {"model": "chat"}}, 400),
        ("POST", "/v1alpha/agents", {"agent_config": {"model": "chat", "instructions": "", "toolgroups": ["no::such"]}},
         400),
        ("POST", "/v1alpha/agents", {"agent_config": {"model": "chat", "instructions": "", "input_shields": ["nope"]}},
         404),
        ("POST", "/v1alpha/agents", {"agent_config": {"model": "chat", "instructions": "",
                                                      "response_format": {"type": "grammar", "bnf": {}}}}, 400),
        ("GET", "/v1alpha/agents/nope", None, 404),
        ("POST", "/v1alpha/agents/nope/session", {"session_name": "x"}, 404),
        ("GET", f"/v1alpha/agents/{agent_id}/session/nope", None, 404),
        ("POST", f"/v1alpha/agents/{agent_id}/session/nope/turn", {"messages": [{"role": "user", "content": "x"}]},
         404),
        ("POST", turn_path, {"messages": []}, 400),
        ("POST", turn_path, {}, 400),
        ("GET", f"{turn_path}/nope", None, 404),
        ("GET", f"{turn_path}/nope/step/x", None, 404),
        ("POST", f"{turn_path}/nope/resume", {"tool_responses": [{"call_id": "c", "tool_name": "t", "content": ""}]},
         404),
    ]  # fmt: skip
    for method, path, body, status in cases:
        reply = await server.request(method, path, json=body)
        assert reply.status == status, (method, path, body, await reply.text())
        assert_error_shape(await reply.json())
    done = await _json(server, "POST", turn_path, {"messages": [{"role": "user", "content": "capital?"}]})
    reply = await server.post(f"{turn_path}/{done['turn_id']}/resume", json={"tool_responses": [
        {"call_id": "c", "tool_name": "t", "content": ""}]})  # fmt: skip
    assert reply.status == 400
    unknown_model = await _json(server, "POST", "/v1alpha/agents", {"agent_config": {"model": "nope",
                                                                                     "instructions": ""}})  # fmt: skip
    session = await _json(server, "POST", f"/v1alpha/agents/{unknown_model['agent_id']}/session", {"session_name": "s"})
    reply = await server.post(_turn_path(unknown_model["agent_id"], session["session_id"]),
                              json={"messages": [{"role": "user", "content": "x"}]})  # fmt: skip
    assert reply.status == 404


async def test_the_real_default_model_runs_a_streamed_turn(server: TestClient[Any, Any]) -> None:
    agent = await _json(server, "POST", "/v1alpha/agents", {"agent_config": {
        "model": CHAT_MODEL, "instructions": "Answer in one short sentence.",
        "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 24}}})  # fmt: skip
    session = await _json(server, "POST", f"/v1alpha/agents/{agent['agent_id']}/session", {"session_name": "s"})
    events = await _stream(server, _turn_path(agent["agent_id"], session["session_id"]),
                           {"messages": [{"role": "user", "content": "Say hello."}]})  # fmt: skip
    text = "".join(e["delta"]["text"] for e in events if e["event_type"] == "step_progress")
    turn = events[-1]["turn"]
    assert events[-1]["event_type"] == "turn_complete" and text.strip()
    assert turn["output_message"]["content"] == text and turn["steps"][0]["model_response"]["content"] == text


async def test_llama_stack_0_2_paths_answer_its_clients(server: TestClient[Any, Any]) -> None:
    old = {"X-LlamaStack-Client-Version": "0.2.12"}
    created = await server.post("/v1/agents", json={"agent_config": {"model": "chat", "instructions": ""}}, headers=old)
    assert created.status == 200, await created.text()
    agent_id = (await created.json())["agent_id"]
    session = await server.post(f"/v1/agents/{agent_id}/session", json={"session_name": "s"}, headers=old)
    session_id = (await session.json())["session_id"]
    body = {"messages": [{"role": "user", "content": "capital?"}], "documents": None}  # 0.2 clients send nulls
    turn = await server.post(f"/v1/agents/{agent_id}/session/{session_id}/turn", headers=old, json=body)
    assert turn.status == 200 and (await turn.json())["output_message"]["content"] == "Paris."
    same = await _json(server, "GET", f"/v1alpha/agents/{agent_id}/session/{session_id}")
    assert len(same["turns"]) == 1
    assert (await server.get("/v1/toolgroups", headers=old)).status == 200  # an API 0.7 dropped: old clients only
    assert (await server.get("/v1/models", headers=old)).status == 426  # the rest of the API still checks


async def test_rag_is_knowledge_search_over_the_agents_vector_stores(
    server: TestClient[Any, Any], oai: openai.AsyncOpenAI, stored_embedding: str
) -> None:
    store = await store_of(oai, stored_embedding)
    agent_id, session_id = await _agent(
        server, toolgroups=[{"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": [store]}}]
    )
    asking = {"messages": [{"role": "user", "content": COMET}]}
    turn = await _json(server, "POST", _turn_path(agent_id, session_id), asking)
    asked, searched, answered = turn["steps"]
    assert asked["model_response"]["tool_calls"][0]["tool_name"] == "knowledge_search"
    (found,) = searched["tool_responses"]
    assert found["tool_name"] == "knowledge_search" and "glowing tail of ice and dust" in found["content"]
    assert "glowing tail" in answered["model_response"]["content"]


async def test_the_generated_sdk_streams_a_turn(server: TestClient[Any, Any]) -> None:
    sdk = Client(base_url=str(server.make_url("")).rstrip("/"), raise_on_unexpected_status=True)
    creation = AgentCreation.from_dict({"agent_config": {"model": "chat", "instructions": "Be terse."}})
    agent = await create_agent.asyncio(client=sdk, body=creation)
    assert isinstance(agent, AgentCreateResponse)
    started = await create_agent_session.asyncio(
        agent.agent_id, client=sdk, body=AgentSessionCreation(session_name="sdk")
    )
    assert isinstance(started, AgentSessionCreateResponse)
    body = AgentTurnCreation.from_dict({"messages": [{"role": "user", "content": "capital?"}]})
    chunks = [c async for c in astream_create_agent_turn(agent.agent_id, started.session_id, client=sdk, body=body)]
    payloads = [chunk.event.payload for chunk in chunks]
    kinds = [p.event_type.value for p in payloads]
    assert (kinds[0], kinds[1], kinds[-1]) == ("turn_start", "step_start", "turn_complete")
    turn_id = payloads[-1].additional_properties["turn"]["turn_id"]
    turn = await get_agents_turn.asyncio(agent.agent_id, started.session_id, turn_id, client=sdk)
    assert isinstance(turn, AgentTurn) and turn.output_message.content == "Paris."
