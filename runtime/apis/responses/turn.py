"""One response's turn: model calls until it answers, the server's own tools run in between.

The model may call the server's tools — `file_search`, and the tools of `mcp` servers — (the
server runs them and calls the model again, up to `max_infer_iters` calls in all), or the
client's function tools (their calls end the turn as `function_call` items). An MCP call that
needs approval ends the turn as an `mcp_approval_request`; the next turn runs it (or not) first.
Streamed, every model call is streamed: its text as it comes, the server's tool calls as their
own items (`file_search_call`, `mcp_call`...) with their own events, never as function calls.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

from pocketstack._generated import models
from pocketstack.apis.inference.api import InferenceApi
from pocketstack.apis.responses.items import chat_request, mcp_call_text, new_id, output_items
from pocketstack.apis.responses.stream import StreamEvents
from pocketstack.apis.responses.tools.file_search import FUNCTION, NAME, FileSearch, Found, citations, query_of, search
from pocketstack.apis.responses.tools.mcp import Approval, McpServer, McpTools, call_tool, list_tools
from pocketstack.apis.responses.tools.web_search import FUNCTION as WEB_FUNCTION
from pocketstack.apis.responses.tools.web_search import NAME as WEB_NAME
from pocketstack.apis.responses.tools.web_search import WebSearch
from pocketstack.apis.responses.tools.web_search import search as web_search
from pocketstack.apis.tools import ToolsApi
from pocketstack.apis.vector_io.api import VectorIOApi
from pocketstack.core.registry import Resource
from pocketstack.providers.tool_runtime import ToolResult, chat_function
from pocketstack.wire.chat_stream import ChatAssembler
from pocketstack.wire.fields import given


def assistant_message(message: models.ChatResponseMessage) -> dict[str, Any]:
    """The answer as the next model call sees it (a refusal reads as what was said)."""
    turn: dict[str, Any] = {"role": "assistant", "content": given(message.content) or given(message.refusal)}
    calls = given(message.tool_calls, [])
    if calls:
        turn["tool_calls"] = [call.model_dump(mode="json") for call in calls]
    return turn


@dataclass
class Turn:
    request: models.CreateResponseRequest
    response: dict[str, Any]  # filled in as the turn runs
    messages: list[dict[str, Any]]  # the conversation so far, this turn's input and tool rounds included
    inference: InferenceApi
    vector_io: VectorIOApi
    tool: FileSearch | None
    servers: list[McpServer] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)  # answers to the previous turn's approval requests
    mcp: McpTools = field(default_factory=McpTools)
    prelude: list[dict[str, Any]] = field(default_factory=list)  # items made before the first model call
    found: Found = field(default_factory=Found)
    usage: list[models.Usage] = field(default_factory=list)
    violations: list[models.GuardrailViolation] = field(default_factory=list)
    web: WebSearch | None = None
    # MCP listings the conversation already holds, by server label: used again, as OpenAI does.
    listed: dict[str, dict[str, Any]] = field(default_factory=dict)
    opening: int = -1  # transcript length when the turn began (its own model calls come after)
    # Agents' tool-group tools (tool runtime), by name: run by the server like the built-in tools.
    runtime: dict[str, tuple[Resource, dict[str, Any]]] = field(default_factory=dict)
    tools_api: ToolsApi | None = None

    @property
    def iterations(self) -> int:
        return given(self.request.max_infer_iters) or 10

    @property
    def hidden(self) -> set[str]:
        """The server's own tools, by the function names the model sees."""
        return (
            ({NAME} if self.tool is not None else set())
            | ({WEB_NAME} if self.web is not None else set())
            | set(self.mcp.by_name)
            | set(self.runtime)
        )

    def __post_init__(self) -> None:
        if self.opening < 0:
            self.opening = len(self.messages)

    async def prepare(self) -> None:
        """Before the first model call: list the MCP servers' tools, run (or decline) the approved calls."""
        for server in self.servers:
            listing = self.listed.get(server.label)
            if listing is None:
                listing = await list_tools(server)
                self.prelude.append(listing)
            for tool in listing["tools"]:
                if server.allowed is not None and tool["name"] not in server.allowed:
                    continue
                self.mcp.by_name.setdefault(tool["name"], (server, tool))
        for approval in self.approvals:
            request = approval.request
            item: dict[str, Any] = {"type": "mcp_call", "id": new_id("mcp"), "server_label": request["server_label"],
                                    "name": request["name"], "arguments": request["arguments"], "output": None,
                                    "error": None, "approval_request_id": request["id"]}  # fmt: skip
            if approval.approve:
                item["output"], item["error"] = await call_tool(approval.server, request["name"], request["arguments"])
            else:
                item["error"] = "The user did not approve this call" + (
                    f": {approval.reason}" if approval.reason else "."
                )
            self.messages.append({"role": "tool", "tool_call_id": request["call_id"], "content": mcp_call_text(item)})
            self.prelude.append(item)

    async def call(self, *, stream: bool) -> models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk]:
        extra = (
            ([FUNCTION] if self.tool is not None else [])
            + ([WEB_FUNCTION] if self.web is not None else [])
            + self.mcp.functions()
            + [chat_function(name, tool) for name, (_, tool) in self.runtime.items()]
        )
        first = not any(m["role"] == "assistant" for m in self.messages[self.opening :])
        return await self.inference.openai_chat_completion(
            chat_request(self.request, self.messages, stream=stream, extra_tools=extra, first=first)
        )

    def _server_calls(self, message: models.ChatResponseMessage) -> tuple[list[models.ToolCall], bool]:
        calls = given(message.tool_calls, [])
        server = [c for c in calls if c.function.name in self.hidden]
        return server, len(server) < len(calls)

    async def _serve(self, call: models.ToolCall, item_id: str | None = None) -> tuple[dict[str, Any], bool]:
        """Run one of the server's tool calls (the next model call sees its result): its item, and whether
        the turn must stop there for the user's approval."""
        name = call.function.name
        if name == NAME and self.tool is not None:
            with_results = "file_search_call.results" in (given(self.request.include) or [])
            item, text = await search(
                self.vector_io, self.tool, query_of(call.function.arguments), self.found, with_results
            )
            item["id"] = item_id or item["id"]
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
            return item, False
        if name in self.runtime and self.tools_api is not None:
            group, _ = self.runtime[name]
            try:
                kwargs = json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError:
                kwargs = None
            if isinstance(kwargs, dict):
                result = await self.tools_api.run(group, name, kwargs)
            else:
                result = ToolResult(error_message="The arguments are not a JSON object.", error_code=400)
            item = {"type": "tool_runtime_call", "id": item_id or new_id("tr"), "call_id": call.id, "name": name,
                    "toolgroup_id": group.identifier, "arguments": call.function.arguments, "output": result.content,
                    "error": result.error_message, "metadata": result.metadata}  # fmt: skip
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": result.text})
            return item, False
        if name == WEB_NAME and self.web is not None:
            item, text = await web_search(self.web, call.function.arguments)
            item["id"] = item_id or item["id"]
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
            return item, False
        server, _ = self.mcp.by_name[name]
        base = {"id": item_id or new_id("mcp"), "server_label": server.label, "name": name,
                "arguments": call.function.arguments}  # fmt: skip
        if server.needs_approval(name):
            return {"type": "mcp_approval_request", **base, "call_id": call.id}, True
        output, error = await call_tool(server, name, call.function.arguments)
        item = {"type": "mcp_call", **base, "output": output, "error": error}
        self.messages.append({"role": "tool", "tool_call_id": call.id, "content": mcp_call_text(item)})
        return item, False

    def _ends(self, server: list[models.ToolCall], client: bool, iteration: int) -> bool:
        """Whether this model call's answer ends the turn: no tools of the server's to run, calls for the client
        to run, or no model call left (then the server's calls go unrun: out of iterations)."""
        return not server or client or iteration >= self.iterations

    def _account(self, completion: models.ChatCompletion) -> None:
        usage = given(completion.usage)
        if usage is not None:
            self.usage.append(usage)
        self.violations += given(completion.guardrail_violations, [])

    def _final_items(self, completion: models.ChatCompletion) -> list[dict[str, Any]]:
        choice = completion.choices[0]
        items = output_items(choice.message, given(self.request.max_tool_calls), hidden=self.hidden)
        for item in items:
            if item["type"] == "message" and item["content"][0]["type"] == "output_text":
                part = item["content"][0]
                part["annotations"] = citations(self.found, part["text"])
                if choice.finish_reason == models.FinishReason.length:
                    item["status"] = "incomplete"  # cut off by max_output_tokens, as OpenAI marks it
        return items

    def _settle(self, output: list[dict[str, Any]], completion: models.ChatCompletion, out_of_iterations: bool) -> None:
        response = self.response
        response["output"] = output
        response["completed_at"] = int(time.time())
        if out_of_iterations:
            response["status"], response["incomplete_details"] = "incomplete", {"reason": "max_infer_iters"}
        elif completion.choices[0].finish_reason == models.FinishReason.length:
            response["status"], response["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
        else:
            response["status"] = "completed"
        if self.usage:
            prompt = sum(u.prompt_tokens for u in self.usage)
            completed = sum(u.completion_tokens for u in self.usage)
            response["usage"] = {
                "input_tokens": prompt,
                "output_tokens": completed,
                "total_tokens": prompt + completed,
                "input_tokens_details": {"cached_tokens": sum(_cached(u) for u in self.usage)},
                "output_tokens_details": {"reasoning_tokens": 0},
            }
        if self.violations:
            response["guardrail_violations"] = [v.model_dump(mode="json") for v in self.violations]

    async def run(self, answer: models.ChatCompletion) -> None:
        output: list[dict[str, Any]] = list(self.prelude)
        for iteration in itertools.count(1):
            self._account(answer)
            message = answer.choices[0].message
            self.messages.append(assistant_message(message))
            server, client = self._server_calls(message)
            if self._ends(server, client, iteration):
                self._settle(output + self._final_items(answer), answer, out_of_iterations=bool(server) and not client)
                return
            output += output_items(message, None, hidden=self.hidden)  # what it said before the tools
            halted = False
            for call in server:
                item, stop = await self._serve(call)
                output.append(item)
                halted = halted or stop
            if halted:
                self._settle(output, answer, out_of_iterations=False)
                return
            answer = cast(models.ChatCompletion, await self.call(stream=False))

    async def events(
        self, chunks: AsyncIterator[models.ChatCompletionChunk]
    ) -> AsyncIterator[models.ResponseStreamEvent]:
        sequence = itertools.count()
        opening = StreamEvents(sequence=sequence)
        yield opening.event("response.created", response=dict(self.response))
        yield opening.event("response.in_progress", response=dict(self.response))
        output: list[dict[str, Any]] = []
        for item in self.prelude:  # made before the first model call, told now in order
            for event in _told_item(opening, len(output), item):
                yield event
            output.append(item)
        for iteration in itertools.count(1):
            events = StreamEvents(sequence=sequence, items=len(output), hidden=self.hidden)
            assembler = ChatAssembler()
            async with aclosing(cast(AsyncGenerator[models.ChatCompletionChunk], chunks)) as stream:
                async for chunk in stream:
                    assembler.add(chunk)
                    for event in events.chunk(chunk):
                        yield event
            completion = assembler.completion(self.request.model)
            self._account(completion)
            message = completion.choices[0].message
            self.messages.append(assistant_message(message))
            server, client = self._server_calls(message)
            if self._ends(server, client, iteration):
                final = self._final_items(completion)
                for event in events.finish(final):
                    yield event
                self._settle(output + final, completion, out_of_iterations=bool(server) and not client)
                yield events.event(_closing(self.response), response=self.response)
                return
            said = output_items(message, None, hidden=self.hidden)
            for event in events.finish(said):
                yield event
            output += said
            halted = False
            for call in server:  # told as it happens: added, in_progress (searching), the work, completed, done
                runtime = ("tool_runtime_call", "tr") if call.function.name in self.runtime else None
                kind, prefix = runtime or _SERVER_KINDS.get(call.function.name, ("mcp_call", "mcp"))
                index, item_id = len(output), new_id(prefix)
                pending = {"type": kind, "id": item_id, "status": "in_progress"}
                at = {"output_index": index, "item_id": item_id}
                yield events.event("response.output_item.added", output_index=index, item=pending)
                yield events.event(f"response.{kind}.in_progress", **at)
                if kind in ("file_search_call", "web_search_call"):
                    yield events.event(f"response.{kind}.searching", **at)
                item, stop = await self._serve(call, item_id)
                if item["type"] == "mcp_approval_request" or kind == "web_search_call":
                    if kind == "web_search_call":  # OpenAI has no failed event for searches: the item says it
                        yield events.event("response.web_search_call.completed", **at)
                elif item.get("error"):
                    yield events.event(f"response.{kind}.failed", **at)
                else:
                    yield events.event(f"response.{kind}.completed", **at)
                yield events.event("response.output_item.done", output_index=index, item=item)
                output.append(item)
                halted = halted or stop
            if halted:
                self._settle(output, completion, out_of_iterations=False)
                yield events.event(_closing(self.response), response=self.response)
                return
            chunks = cast(AsyncIterator[models.ChatCompletionChunk], await self.call(stream=True))


# The server's own tools, by the function name the model calls: their item type and id prefix.
_SERVER_KINDS = {NAME: ("file_search_call", "fs"), WEB_NAME: ("web_search_call", "ws")}


def _cached(usage: models.Usage) -> int:
    details = given(usage.prompt_tokens_details)
    return given(details.cached_tokens, 0) if details is not None else 0


def _closing(response: dict[str, Any]) -> str:
    return "response.incomplete" if response["status"] == "incomplete" else "response.completed"


def _told_item(events: StreamEvents, index: int, item: dict[str, Any]) -> list[models.ResponseStreamEvent]:
    """The events of an item the turn made before its first model call (an MCP listing or approved call)."""
    at = {"output_index": index, "item_id": item["id"]}
    kind = item["type"]
    failed = bool(item.get("error"))
    return [
        events.event("response.output_item.added", output_index=index, item={**item, "status": "in_progress"}),
        events.event(f"response.{kind}.in_progress", **at),
        events.event(f"response.{kind}.{'failed' if failed else 'completed'}", **at),
        events.event("response.output_item.done", output_index=index, item=item),
    ]
