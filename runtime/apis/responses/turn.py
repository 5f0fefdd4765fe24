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
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

from pocketstack._generated import models
from pocketstack.apis.inference.api import InferenceApi
from pocketstack.apis.responses.failure import truncation_refused
from pocketstack.apis.responses.items import chat_request, new_id, output_items
from pocketstack.apis.responses.stream import StreamEvents
from pocketstack.apis.responses.tools.base import ServerTool
from pocketstack.apis.responses.tools.file_search import Found, citations
from pocketstack.apis.responses.tools.mcp import McpTools
from pocketstack.apis.responses.tracing import handed_to_client, server_tool_call, told
from pocketstack.errors import ServiceUnavailableError
from pocketstack.wire.chat_stream import ChatAssembler
from pocketstack.wire.fields import given

# A model call's answer: whole, or the chunks of its stream.
Answer = models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk]


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
    tools: list[ServerTool] = field(default_factory=list)  # the server's own tools (tools/base.py)
    mcp: McpTools | None = None  # also in `tools`: prepared before the first model call
    found: Found = field(default_factory=Found)  # the files searches returned, for citations
    prelude: list[dict[str, Any]] = field(default_factory=list)  # items made before the first model call
    usage: list[models.Usage] = field(default_factory=list)
    violations: list[models.GuardrailViolation] = field(default_factory=list)
    opening: int = -1  # transcript length when the turn began (its own model calls come after)
    output_shields: list[str] = field(default_factory=list)  # an agent's: judge every model call before it is told
    preamble: list[dict[str, Any]] = field(default_factory=list)  # before instructions, for this turn only
    # An agent's max_tokens bounds each model call (Llama Stack's sampling_params); a response's
    # max_output_tokens, the whole response (OpenAI's).
    tokens_per_call: bool = False

    @property
    def iterations(self) -> int:
        return given(self.request.max_infer_iters) or 10

    @property
    def hidden(self) -> set[str]:
        """The server's own tools, by the function names the model sees."""
        return {function["function"]["name"] for tool in self.tools for function in tool.functions()}

    def __post_init__(self) -> None:
        if self.opening < 0:
            self.opening = len(self.messages)

    async def prepare(self) -> None:
        """Before the first model call: list the MCP servers' tools, run (or decline) the approved calls."""
        if self.mcp is not None:
            items, replies = await self.mcp.prepare()
            self.prelude += items
            self.messages += replies

    async def call(self, *, stream: bool) -> Answer:
        extra = [function for tool in self.tools for function in tool.functions()]
        first = not any(m["role"] == "assistant" for m in self.messages[self.opening :])
        answer = await self.inference.openai_chat_completion(
            chat_request(
                self.request,
                self.messages,
                stream=stream,
                extra_tools=extra,
                first=first,
                preamble=self.preamble,
                max_tokens=self._tokens_left(),
            )
        )
        if not self.output_shields:
            return answer
        rails = self.inference.guardrails
        if rails is None:
            raise ServiceUnavailableError("output shields need the safety API.", code="service_not_enabled")
        return await rails.guard_output(answer, self.output_shields)

    def _tokens_left(self) -> int | None:
        """max_output_tokens bounds the whole response, as OpenAI defines it, not each of its model calls: without
        this, a model that keeps calling the server's tools spends it up to max_infer_iters times over."""
        limit = given(self.request.max_output_tokens)
        return None if limit is None or self.tokens_per_call else limit - sum(u.completion_tokens for u in self.usage)

    def _server_calls(self, message: models.ChatResponseMessage) -> tuple[list[models.ToolCall], bool]:
        calls = given(message.tool_calls, [])
        server = [c for c in calls if c.function.name in self.hidden]
        return server, len(server) < len(calls)

    def _owner(self, call: models.ToolCall) -> ServerTool:
        return next(tool for tool in self.tools if tool.owns(call.function.name))

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

    def _settle(
        self,
        output: list[dict[str, Any]],
        completion: models.ChatCompletion,
        out_of_iterations: bool,
        out_of_tokens: bool = False,
    ) -> None:
        response = self.response
        response["output"] = output
        response["completed_at"] = int(time.time())
        if out_of_iterations:
            # Llama Stack's reason (responses/builtin/responses/streaming.py); OpenAI has none for it.
            response["status"], response["incomplete_details"] = "incomplete", {"reason": "max_iterations_exceeded"}
        elif out_of_tokens or completion.choices[0].finish_reason == models.FinishReason.length:
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
        """The turn, answered whole: every model call after this first one is made whole too."""
        async for _ in self._steps(answer, stream=False):
            pass

    def events(self, chunks: AsyncIterator[models.ChatCompletionChunk]) -> AsyncIterator[models.ResponseStreamEvent]:
        """The turn, streamed: every model call streamed, told in OpenAI's events as it happens."""
        return self._steps(chunks, stream=True)

    async def _steps(self, answer: Answer, *, stream: bool) -> AsyncIterator[models.ResponseStreamEvent]:
        """The one loop behind both: model calls until one answers, the server's tools run in between.

        It always tells its events; a turn answered whole just does not read them.
        """
        sequence, response_id = itertools.count(), self.response.get("id")
        opening = StreamEvents(sequence=sequence, response_id=response_id)
        yield opening.event("response.created", response=dict(self.response))
        yield opening.event("response.in_progress", response=dict(self.response))
        refused = truncation_refused(self.request)
        if refused is not None:  # after the first events, as Llama Stack's streaming.py fails it
            raise refused
        output: list[dict[str, Any]] = []
        for item in self.prelude:  # made before the first model call, told now in order
            for event in _told_item(opening, len(output), item):
                yield event
            output.append(item)
        for iteration in itertools.count(1):
            events = StreamEvents(sequence=sequence, response_id=response_id, items=len(output), hidden=self.hidden)
            if isinstance(answer, models.ChatCompletion):
                completion = answer
            else:
                assembler = ChatAssembler()
                async with aclosing(cast(AsyncGenerator[models.ChatCompletionChunk], answer)) as chunks:
                    async for chunk in chunks:
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
                handed_to_client(final)
                for event in events.finish(final):
                    yield event
                self._settle(output + final, completion, out_of_iterations=bool(server) and not client)
                yield events.event(_closing(self.response), response=self.response)
                return
            said = output_items(message, None, hidden=self.hidden)  # what it said before the tools
            for event in events.finish(said):
                yield event
            output += said
            halted = False
            for call in server:  # told as it happens: added, in_progress (searching), the work, completed, done
                tool = self._owner(call)
                index, item_id = len(output), new_id(tool.prefix)
                at = {"output_index": index, "item_id": item_id}
                pending = {"type": tool.kind, "id": item_id, "status": "in_progress"}
                yield events.event("response.output_item.added", output_index=index, item=pending)
                yield events.event(f"response.{tool.kind}.in_progress", **at)
                if tool.searching:
                    yield events.event(f"response.{tool.kind}.searching", **at)
                with server_tool_call(tool, call) as span:  # current while it runs: its work is under it
                    outcome = await tool.run(call, item_id)
                    told(span, outcome)
                closing = tool.closing_event(outcome.item)
                if closing is not None:
                    yield events.event(f"response.{tool.kind}.{closing}", **at)
                yield events.event("response.output_item.done", output_index=index, item=outcome.item)
                output.append(outcome.item)
                if outcome.reply is not None:
                    self.messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.reply})
                halted = halted or outcome.halts
            left = self._tokens_left()
            if halted or (left is not None and left <= 0):  # nothing left to spend on the next call
                self._settle(output, completion, out_of_iterations=False, out_of_tokens=not halted)
                yield events.event(_closing(self.response), response=self.response)
                return
            answer = await self.call(stream=stream)


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
