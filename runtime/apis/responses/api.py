"""Responses (OpenAI's API): one model turn over the conversation so far, stored and threaded.

A response's conversation is its `previous_response_id`'s (the chat messages that response ended
with) plus its own input items; `instructions` apply to this response only, as in OpenAI. The
turn runs as a chat completion through the inference API, so every provider, fallback and
guardrail works here too. Function tools are the client's: their calls end the response as
`function_call` items, and the next request brings `function_call_output` items back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from pocketstack._generated import models, protocols
from pocketstack.apis.connectors import ConnectorsApi
from pocketstack.apis.conversations import ConversationsApi, check_conversation_id
from pocketstack.apis.inference.api import InferenceApi
from pocketstack.apis.prompts import PromptsApi
from pocketstack.apis.responses.event_log import EventLog
from pocketstack.apis.responses.failure import response_error, truncation_refused
from pocketstack.apis.responses.items import chat_messages, input_items, new_id
from pocketstack.apis.responses.prompt import prompt_messages
from pocketstack.apis.responses.tools.base import ServerTool
from pocketstack.apis.responses.tools.file_search import FileSearchTool, Found, file_search_tool
from pocketstack.apis.responses.tools.mcp import Approval, McpServer, McpTools, mcp_servers, shown_tool
from pocketstack.apis.responses.tools.web_search import web_search_tool
from pocketstack.apis.responses.tracing import response_run, settle
from pocketstack.apis.responses.turn import Turn
from pocketstack.apis.tools import ToolsApi
from pocketstack.apis.vector_io.api import VectorIOApi
from pocketstack.core.resources import MODEL
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, ConflictError, PocketStackError, ResourceNotFoundError
from pocketstack.security.access import RESPONSE, Action
from pocketstack.storage.responses import ResponseStore, StoredResponse
from pocketstack.telemetry.agents import AgentRun
from pocketstack.wire.fields import given, plain

logger = logging.getLogger(__name__)
MAX_CHAIN_LOOKUPS = 50  # how far back a response looks for its MCP servers' listings


def _approvals(items: list[dict[str, Any]], earlier: list[dict[str, Any]], servers: list[McpServer]) -> list[Approval]:
    """The approval responses among the input, each with the request it answers and that request's server."""
    requests = {item["id"]: item for item in earlier if item.get("type") == "mcp_approval_request"}
    labels = {server.label: server for server in servers}
    approvals = []
    for item in items:
        if item["type"] != "mcp_approval_response":
            continue
        asked = requests.get(item["approval_request_id"])
        if asked is None:
            raise BadRequestError(
                f"No mcp_approval_request '{item['approval_request_id']}' in the previous response or conversation.",
                param="input",
            )
        server = labels.get(asked["server_label"])
        if server is None:
            raise BadRequestError(
                f"Approving a call to '{asked['server_label']}' needs that mcp tool in this request's tools too.",
                param="tools",
            )
        approvals.append(Approval(asked, server, bool(item["approve"]), item.get("reason")))
    return approvals


def _dumped(value: Any) -> Any:
    value = plain(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return getattr(value, "value", value)


def _conversation_id(request: models.CreateResponseRequest) -> str | None:
    conversation = plain(given(request.conversation))
    if conversation is None or isinstance(conversation, str):
        return conversation
    return str(conversation.id)


class ResponsesApi(protocols.Responses):
    def __init__(
        self,
        stack: Stack,
        inference: InferenceApi,
        conversations: ConversationsApi,
        vector_io: VectorIOApi,
        tools: ToolsApi,
        prompts: PromptsApi,
        connectors: ConnectorsApi,
    ) -> None:
        self.stack = stack
        self.connectors = connectors
        self.access = stack.access
        self.tools = tools
        self.inference = inference
        self.conversations = conversations
        self.vector_io = vector_io
        self.prompts = prompts
        self._running: dict[str, asyncio.Task[None]] = {}  # background responses by id
        self._logs: dict[str, EventLog] = {}  # the events of those that stream, while they run

    @property
    def store(self) -> ResponseStore:
        return ResponseStore(self.stack.database)

    async def _context(
        self, request: models.CreateResponseRequest
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
        """The conversation so far as chat messages, the items an approval response may answer, and the
        response before the previous one (where the chain goes on)."""
        previous = given(request.previous_response_id)
        conversation = _conversation_id(request)
        if previous is not None and conversation is not None:
            raise BadRequestError("Give `previous_response_id` or `conversation`, not both.", param="conversation")
        if conversation is not None:
            check_conversation_id(conversation, "conversation")  # Llama Stack: create_openai_response
            # an unknown (or another's) one is a 404, as in Llama Stack; the response adds to it: an update
            earlier = await self.conversations.items(conversation, Action.UPDATE)
            return chat_messages(earlier), earlier, None
        if previous is None:
            return [], [], None
        stored = await self._stored(previous)
        return stored.context, stored.response.get("output", []), stored.response.get("previous_response_id")

    async def _listings(
        self, earlier: list[dict[str, Any]], older: str | None, labels: set[str]
    ) -> dict[str, dict[str, Any]]:
        """The MCP tool listings the conversation already holds (the newest per server), looked for back along
        the previous_response_id chain as far as needed, so a server is listed once per conversation."""
        found: dict[str, dict[str, Any]] = {}

        def take(items: list[dict[str, Any]]) -> None:
            for item in reversed(items):
                if item.get("type") == "mcp_list_tools" and not item.get("error"):
                    found.setdefault(item["server_label"], item)

        take(earlier)  # the conversation's items, or the previous response's output
        response_id, hops = older, 0
        while response_id is not None and not labels <= set(found) and hops < MAX_CHAIN_LOOKUPS:
            stored = await self.store.get(response_id)
            if stored is None or not self.access.visible(RESPONSE, response_id, stored.owner):
                break
            take(stored.response.get("output", []))
            response_id, hops = stored.response.get("previous_response_id"), hops + 1
        return {label: item for label, item in found.items() if label in labels}

    async def _stored(self, response_id: str, action: Action = Action.READ) -> StoredResponse:
        """The stored response, if the request may do `action` to it (its input items and events follow
        it): one it may not see is as unknown as a missing one."""
        stored = await self.store.get(response_id)
        missing = ResourceNotFoundError("response", response_id)
        if stored is None:
            raise missing
        self.access.check(action, RESPONSE, response_id, stored.owner, missing)
        return stored

    async def _sampling(self, request: models.CreateResponseRequest) -> dict[str, Any]:
        """The sampling a response echoes: the request's, else what the model uses when it is left unset
        (its `sampling_defaults`), else 1.0, Llama Stack's echo (streaming.py _snapshot_response)."""
        model = await self.stack.table(MODEL).find(request.model)
        metadata = model.body.get("metadata", {}) if model is not None else {}
        defaults = metadata.get("sampling_defaults", {}) if isinstance(metadata, dict) else {}
        return {
            "temperature": given(request.temperature, defaults.get("temperature", 1.0)),
            "top_p": given(request.top_p, defaults.get("top_p", 1.0)),
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
        }

    def _skeleton(self, request: models.CreateResponseRequest, sampling: dict[str, Any]) -> dict[str, Any]:
        text = given(request.text)
        return {
            "id": new_id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "model": request.model,
            "output": [],
            "error": None,
            "incomplete_details": None,
            "usage": None,
            "instructions": given(request.instructions),
            "previous_response_id": given(request.previous_response_id),
            "conversation": {"id": conversation} if (conversation := _conversation_id(request)) else None,
            **sampling,
            "max_output_tokens": given(request.max_output_tokens),
            "max_tool_calls": given(request.max_tool_calls),
            "prompt": prompt.model_dump(mode="json", exclude_unset=True) if (prompt := given(request.prompt)) else None,
            # Echoed, with Llama Stack's values when absent (streaming.py _snapshot_response).
            "prompt_cache_key": given(request.prompt_cache_key),
            "safety_identifier": given(request.safety_identifier),
            "service_tier": _dumped(given(request.service_tier)) or "default",
            "truncation": _dumped(given(request.truncation)) or "disabled",
            "top_logprobs": given(request.top_logprobs) or 0,
            "parallel_tool_calls": given(request.parallel_tool_calls, True),
            "tool_choice": _dumped(given(request.tool_choice)) or "auto",
            "tools": [
                shown_tool(tool.model_dump(mode="json", exclude_unset=True)) for tool in given(request.tools) or []
            ],
            "text": text.model_dump(mode="json", exclude_unset=True)
            if text is not None
            else {"format": {"type": "text"}},
            "store": given(request.store, True),
            "background": bool(given(request.background, False)),
            "metadata": given(request.metadata),
        }

    async def create_openai_response(
        self, request: models.CreateResponseRequest
    ) -> models.ResponseObject | AsyncIterator[models.ResponseStreamEvent]:
        if given(request.background, False) and given(request.store, True) is False:
            raise BadRequestError("A background response is stored: not with `store` false.", param="background")
        items = input_items(request)
        preamble, prompt_version = await prompt_messages(request, self.prompts)  # unknown ones: before anything
        context, earlier, older = await self._context(request)
        messages = context + chat_messages(items)
        found = Found()
        tools: list[ServerTool] = []
        spec = file_search_tool(request)
        if spec is not None:
            for store_id in spec.vector_store_ids:
                await self.vector_io.usable(store_id)  # an unknown or expired store is a 400 before the model runs
            with_results = "file_search_call.results" in (given(request.include) or [])
            tools.append(FileSearchTool(self.vector_io, spec, found, with_results))
        web = await web_search_tool(request, self.tools)
        if web is not None:
            tools.append(web)
        servers = await mcp_servers(request, self.stack.outbound, self.connectors.url_of)
        mcp = McpTools(servers, _approvals(items, earlier, servers))
        mcp.listed = await self._listings(earlier, older, {server.label for server in servers})
        tools.append(mcp)
        skeleton = self._skeleton(request, await self._sampling(request))
        turn = Turn(request, skeleton, messages, self.inference, tools, mcp=mcp, found=found, preamble=preamble)
        # The run's span: current while it works (its model and tool calls are its children); it ends when
        # the response is answered, when its stream ends, or when its background task does.
        run = response_run(request, skeleton, prompt_version)
        with run.working():
            return await self._run(turn, items, run)

    async def _run(
        self, turn: Turn, items: list[dict[str, Any]], run: AgentRun
    ) -> models.ResponseObject | AsyncIterator[models.ResponseStreamEvent]:
        request = turn.request
        streaming = given(request.stream, False)
        if given(request.background, False):
            return await self._in_background(turn, items, streaming, run)
        refused = truncation_refused(request)
        if refused is not None:  # streamed, the turn fails it after its first events
            if not streaming:  # Llama Stack stores it failed and answers its error (a 500 there, a 400 here)
                turn.response |= {"status": "failed", "error": response_error(refused)}
                await self._keep_failed(turn, items)
                raise refused
            return run.follow(self._events(turn, _no_chunks(), items), lambda: settle(run, turn.response, turn.usage))
        await turn.prepare()
        answer = await turn.call(stream=streaming)  # errors (unknown model...) come before any event
        if isinstance(answer, models.ChatCompletion):
            await turn.run(answer)
            await self._keep(turn, items)
            settle(run, turn.response, turn.usage)
            run.end()
            return models.ResponseObject.model_validate(turn.response)
        return run.follow(self._events(turn, answer, items), lambda: settle(run, turn.response, turn.usage))

    async def _in_background(
        self, turn: Turn, items: list[dict[str, Any]], streaming: bool, run: AgentRun
    ) -> models.ResponseObject | AsyncIterator[models.ResponseStreamEvent]:
        """Store the response `queued` and run it in a task that keeps its row current; answer at once with
        the response, or (when streamed) with its events, which the task logs whether anyone reads."""
        turn.response["status"] = "queued"
        await self.store.add(StoredResponse(turn.response, items, turn.messages, self.access.owner()))
        response_id = turn.response["id"]
        log = EventLog(lambda event: self.store.add_events(response_id, [event])) if streaming else None

        async def work() -> None:
            try:
                turn.response["status"] = "in_progress"
                await self.store.update(StoredResponse(turn.response, items, turn.messages))
                refused = truncation_refused(turn.request)
                if refused is not None and log is None:
                    raise refused
                if refused is None:
                    await turn.prepare()
                if log is None:
                    answer = await turn.call(stream=False)
                    assert isinstance(answer, models.ChatCompletion)
                    await turn.run(answer)
                else:  # the first events are told before the model answers: the response is under way
                    async for event in self._told(turn, _first_call(turn)):
                        await log.append(event)
            except asyncio.CancelledError:
                turn.response["status"] = "cancelled"
                await self._settle_background(turn, items, log)
                raise
            except PocketStackError as exc:
                turn.response["status"], turn.response["error"] = "failed", response_error(exc)
            except Exception as exc:
                logger.exception("background response %s failed", response_id)
                turn.response["status"], turn.response["error"] = "failed", response_error(exc)
            finally:
                self._running.pop(response_id, None)
            await self._settle_background(turn, items, log)

        def ended(_task: asyncio.Task[None]) -> None:  # the run's span ends with its task (its status: cancelled...)
            settle(run, turn.response, turn.usage)
            run.end()

        if log is not None:
            self._logs[response_id] = log
        task = asyncio.create_task(work(), name=f"response-{response_id}")  # the run's span current in it
        task.add_done_callback(ended)
        self._running[response_id] = task
        if log is not None:
            return log.follow(-1)
        return models.ResponseObject.model_validate(turn.response)

    async def _settle_background(self, turn: Turn, items: list[dict[str, Any]], log: EventLog | None) -> None:
        response = turn.response
        try:
            if response["status"] in ("completed", "incomplete"):
                await self._join_conversation(turn, items)
            await self.store.update(StoredResponse(response, items, turn.messages))
            if log is not None:
                told = bool(log.events) and log.events[-1]["type"] == "response.failed"
                if response["status"] == "failed" and not told:  # a stream that ended early says so, once
                    failed = {"type": "response.failed", "sequence_number": len(log.events), "response": dict(response)}
                    await log.append(models.ResponseStreamEvent.model_validate(failed))
        finally:
            if log is not None:  # its readers are told it ended, whatever happened storing it
                await log.finish()
                self._logs.pop(response["id"], None)

    async def cancel_openai_response(self, request: models.CancelOpenaiResponseRequest) -> models.ResponseObject:
        """As Llama Stack's (openai_responses.py cancel_openai_response): a cancelled one is answered as it is; one
        not in the background, or finished, is a 409."""
        response_id = request.response_id
        stored = await self._stored(response_id, Action.UPDATE)
        status = stored.response.get("status")
        if status == "cancelled":
            return models.ResponseObject.model_validate(stored.response)
        if not stored.response.get("background"):
            raise ConflictError(
                f"Cannot cancel response '{response_id}': only background responses can be cancelled",
                code="not_background",
            )
        if status in ("completed", "failed", "incomplete"):
            raise ConflictError(f"Cannot cancel response '{response_id}' with status '{status}'", code="finished")
        task = self._running.get(request.response_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            stored = await self.store.get(request.response_id) or stored
        return models.ResponseObject.model_validate(stored.response)

    async def start(self) -> None:
        """Background responses a stopped server left unfinished are failed: their work is gone. One that
        streams ends its stored events with `response.failed`, as a stream that fails does, for clients
        that follow it again."""
        for stored in await self.store.unfinished():
            response = stored.response
            response["status"] = "failed"
            response["error"] = {"code": "server_error", "message": "The server stopped before it finished."}
            await self.store.update(stored)
            told = await self.store.events(response["id"], -1)
            if told:
                ending = {"type": "response.failed", "sequence_number": told[-1]["sequence_number"] + 1}
                event = models.ResponseStreamEvent.model_validate({**ending, "response": response})
                await self.store.add_events(response["id"], [event.model_dump(mode="json")])

    async def stop(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        for task in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _events(
        self, turn: Turn, chunks: AsyncIterator[models.ChatCompletionChunk], items: list[dict[str, Any]]
    ) -> AsyncIterator[models.ResponseStreamEvent]:
        async with contextlib.aclosing(self._told(turn, chunks)) as events:
            async for event in events:
                if event.type in ("response.completed", "response.incomplete"):
                    await self._keep(turn, items)  # stored before the client hears it is done
                elif event.type == "response.failed":
                    await self._keep_failed(turn, items)
                yield event

    async def _told(
        self, turn: Turn, chunks: AsyncIterator[models.ChatCompletionChunk]
    ) -> AsyncGenerator[models.ResponseStreamEvent]:
        """The turn's events; a failure once they have begun ends them with one `response.failed` event (Llama
        Stack: streaming.py StreamingResponseOrchestrator.create_response). Before the first, it is the HTTP error."""
        told = -1
        async with contextlib.aclosing(cast(AsyncGenerator[models.ResponseStreamEvent], turn.events(chunks))) as events:
            try:
                async for event in events:
                    told = event.sequence_number
                    yield event
            except Exception as exc:
                if told < 0:
                    raise
                if not isinstance(exc, PocketStackError):
                    logger.exception("response %s failed", turn.response["id"])
                turn.response |= {"status": "failed", "error": response_error(exc)}
                failed = {"type": "response.failed", "sequence_number": told + 1, "response": dict(turn.response)}
                yield models.ResponseStreamEvent.model_validate(failed)

    async def _keep_failed(self, turn: Turn, items: list[dict[str, Any]]) -> None:
        """A failed response is stored (if `store`), not added to its conversation, as in Llama Stack."""
        if turn.response["store"]:
            await self.store.add(StoredResponse(turn.response, items, turn.messages, self.access.owner()))

    async def _keep(self, turn: Turn, items: list[dict[str, Any]]) -> None:
        await self._join_conversation(turn, items)  # stored or not, as in OpenAI
        if turn.response["store"]:
            await self.store.add(StoredResponse(turn.response, items, turn.messages, self.access.owner()))

    async def _join_conversation(self, turn: Turn, items: list[dict[str, Any]]) -> None:
        """Add the turn's input and output to its conversation, if it has one."""
        conversation = (turn.response.get("conversation") or {}).get("id")
        if conversation is not None:
            await self.conversations.append(conversation, [*items, *turn.response["output"]])

    async def get_openai_response(
        self, request: models.GetOpenaiResponseRequest
    ) -> models.ResponseObject | AsyncIterator[models.ResponseStreamEvent]:
        stored = await self._stored(request.response_id)
        if not given(request.stream, False):
            return models.ResponseObject.model_validate(stored.response)
        after = given(request.starting_after, -1)
        live = self._logs.get(request.response_id)
        if live is not None:
            return live.follow(after)
        events = await self.store.events(request.response_id, -1)
        if not events:
            raise BadRequestError(
                "Only a background response created with `stream` can be streamed again.", param="stream"
            )
        return _replay([e for e in events if e["sequence_number"] > after])

    async def delete_openai_response(
        self, request: models.DeleteOpenaiResponseRequest
    ) -> models.DeleteResponseResponse:
        await self._stored(request.response_id, Action.DELETE)
        if not await self.store.delete(request.response_id):
            raise ResourceNotFoundError("response", request.response_id)
        return models.DeleteResponseResponse(id=request.response_id, deleted=True)

    async def list_openai_responses(self, request: models.ListOpenaiResponsesRequest) -> models.ListResponsesResponse:
        order = given(request.order, models.SortOrder.desc)
        found, has_more = await self.store.page(
            after=given(request.after),
            limit=request.limit,
            model=given(request.model),
            descending=order == "desc",
            visible=self.access.visibility(RESPONSE),
        )
        # Each with its input, as Llama Stack lists them (OpenAIResponseObjectWithInput).
        data = [models.ResponseObject.model_validate({**s.response, "input": s.input_items}) for s in found]
        return models.ListResponsesResponse(
            data=data, first_id=data[0].id if data else "", last_id=data[-1].id if data else "", has_more=has_more
        )

    async def list_openai_response_input_items(
        self, request: models.ListOpenaiResponseInputItemsRequest
    ) -> models.ResponseInputItemList:
        items = list((await self._stored(request.response_id)).input_items)
        if given(request.order, models.SortOrder.desc) == "desc":
            items.reverse()
        ids = [item["id"] for item in items]
        after, before = given(request.after), given(request.before)
        start, end = 0, len(items)
        for cursor in (after, before):
            if cursor is not None and cursor not in ids:  # Llama Stack: ResponseInputItemNotFoundError, a 404
                raise ResourceNotFoundError("input item", cursor, parent=("response", request.response_id))
        if after is not None:
            start = ids.index(after) + 1
        if before is not None:
            end = ids.index(before)
            start = max(start, end - request.limit)
        page = items[start:end][: request.limit]
        return models.ResponseInputItemList(
            data=page,
            first_id=page[0]["id"] if page else "",
            last_id=page[-1]["id"] if page else "",
            has_more=start + len(page) < end if before is None else start > 0,
        )


async def _first_call(turn: Turn) -> AsyncIterator[models.ChatCompletionChunk]:
    answer = await turn.call(stream=True)
    assert not isinstance(answer, models.ChatCompletion)
    async with contextlib.aclosing(cast(AsyncGenerator[models.ChatCompletionChunk], answer)) as chunks:
        async for chunk in chunks:  # closed with the stream: a cancelled response stops its generation
            yield chunk


async def _no_chunks() -> AsyncIterator[models.ChatCompletionChunk]:
    """The model call of a turn refused before it: never read."""
    none: list[models.ChatCompletionChunk] = []
    for chunk in none:
        yield chunk


async def _replay(events: list[dict[str, Any]]) -> AsyncIterator[models.ResponseStreamEvent]:
    for event in events:
        yield models.ResponseStreamEvent.model_validate(event)


__all__ = ["ResponsesApi"]
