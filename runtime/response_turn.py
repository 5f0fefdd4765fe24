"""One response's turn: model calls until it answers, the server's own tools run in between.

The model may call `file_search` (the server runs it and calls the model again, up to
`max_infer_iters` calls in all) or the client's function tools (their calls end the turn as
`function_call` items). Streamed, every model call is streamed: its text as it comes, the
server's tool calls as `file_search_call` items with their own events, never as function calls.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

from pocketstack._generated import models
from pocketstack.apis.inference import InferenceApi
from pocketstack.apis.vector_io import VectorIOApi
from pocketstack.chat_stream import ChatAssembler
from pocketstack.fields import given
from pocketstack.file_search import FUNCTION, NAME, FileSearch, Found, citations, query_of, search
from pocketstack.response_items import chat_request, new_id, output_items
from pocketstack.response_stream import StreamEvents


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
    found: Found = field(default_factory=Found)
    usage: list[models.Usage] = field(default_factory=list)
    violations: list[models.GuardrailViolation] = field(default_factory=list)

    @property
    def iterations(self) -> int:
        return given(self.request.max_infer_iters) or 10

    @property
    def hidden(self) -> set[str]:
        return {NAME} if self.tool is not None else set()

    async def call(self, *, stream: bool) -> models.ChatCompletion | AsyncIterator[models.ChatCompletionChunk]:
        extra = [FUNCTION] if self.tool is not None else []
        return await self.inference.openai_chat_completion(
            chat_request(self.request, self.messages, stream=stream, extra_tools=extra)
        )

    def _server_calls(self, message: models.ChatResponseMessage) -> tuple[list[models.ToolCall], bool]:
        calls = given(message.tool_calls, [])
        server = [c for c in calls if c.function.name in self.hidden]
        return server, len(server) < len(calls)

    async def _search(self, call: models.ToolCall, item_id: str | None = None) -> dict[str, Any]:
        """Run one of the server's tool calls; the next model call sees its result."""
        assert self.tool is not None
        with_results = "file_search_call.results" in (given(self.request.include) or [])
        query = query_of(call.function.arguments)
        item, text = await search(self.vector_io, self.tool, query, self.found, with_results)
        if item_id is not None:
            item["id"] = item_id
        self.messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
        return item

    def _account(self, completion: models.ChatCompletion) -> None:
        usage = given(completion.usage)
        if usage is not None:
            self.usage.append(usage)
        self.violations += given(completion.guardrail_violations, [])

    def _final_items(self, message: models.ChatResponseMessage) -> list[dict[str, Any]]:
        items = output_items(message, given(self.request.max_tool_calls), hidden=self.hidden)
        for item in items:
            if item["type"] == "message" and item["content"][0]["type"] == "output_text":
                part = item["content"][0]
                part["annotations"] = citations(self.found, part["text"])
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
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            }
        if self.violations:
            response["guardrail_violations"] = [v.model_dump(mode="json") for v in self.violations]
        self.messages.append(assistant_message(completion.choices[0].message))

    async def run(self, answer: models.ChatCompletion) -> None:
        output: list[dict[str, Any]] = []
        for iteration in itertools.count(1):
            self._account(answer)
            message = answer.choices[0].message
            server, client = self._server_calls(message)
            if not server or client or iteration >= self.iterations:
                self._settle(output + self._final_items(message), answer, out_of_iterations=bool(server) and not client)
                return
            output += output_items(message, None, hidden=self.hidden)  # what it said before searching
            self.messages.append(assistant_message(message))
            output += [await self._search(call) for call in server]
            answer = cast(models.ChatCompletion, await self.call(stream=False))

    async def events(
        self, chunks: AsyncIterator[models.ChatCompletionChunk]
    ) -> AsyncIterator[models.ResponseStreamEvent]:
        sequence = itertools.count()
        opening = StreamEvents(sequence=sequence)
        yield opening.event("response.created", response=dict(self.response))
        yield opening.event("response.in_progress", response=dict(self.response))
        output: list[dict[str, Any]] = []
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
            server, client = self._server_calls(message)
            if not server or client or iteration >= self.iterations:
                final = self._final_items(message)
                for event in events.finish(final):
                    yield event
                self._settle(output + final, completion, out_of_iterations=bool(server) and not client)
                return_event = (
                    "response.incomplete" if self.response["status"] == "incomplete" else "response.completed"
                )
                yield events.event(return_event, response=self.response)
                return
            said = output_items(message, None, hidden=self.hidden)
            for event in events.finish(said):
                yield event
            output += said
            self.messages.append(assistant_message(message))
            for call in server:  # told as it happens: added, in_progress, searching, (the search), completed, done
                index, item_id = len(output), new_id("fs")
                pending = {"type": "file_search_call", "id": item_id, "status": "in_progress",
                           "queries": [query_of(call.function.arguments)], "results": None}  # fmt: skip
                at = {"output_index": index, "item_id": item_id}
                yield events.event("response.output_item.added", output_index=index, item=pending)
                yield events.event("response.file_search_call.in_progress", **at)
                yield events.event("response.file_search_call.searching", **at)
                item = await self._search(call, item_id)
                yield events.event("response.file_search_call.completed", **at)
                yield events.event("response.output_item.done", output_index=index, item=item)
                output.append(item)
            chunks = cast(AsyncIterator[models.ChatCompletionChunk], await self.call(stream=True))
