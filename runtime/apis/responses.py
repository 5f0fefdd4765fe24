"""Responses (OpenAI's API): one model turn over the conversation so far, stored and threaded.

A response's conversation is its `previous_response_id`'s (the chat messages that response ended
with) plus its own input items; `instructions` apply to this response only, as in OpenAI. The
turn runs as a chat completion through the inference API, so every provider, fallback and
guardrail works here too. Function tools are the client's: their calls end the response as
`function_call` items, and the next request brings `function_call_output` items back.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast

from pocketstack._generated import models
from pocketstack.apis.conversations import ConversationsApi
from pocketstack.apis.inference import InferenceApi
from pocketstack.chat_stream import ChatAssembler
from pocketstack.errors import BadRequestError, ResourceNotFoundError
from pocketstack.fields import given, plain
from pocketstack.response_items import chat_messages, chat_request, input_items, new_id, output_items
from pocketstack.response_stream import StreamEvents
from pocketstack.stack import Stack
from pocketstack.storage.responses import ResponseStore, StoredResponse


def _assistant_message(message: models.ChatResponseMessage) -> dict[str, Any]:
    """The answer as the next turn's context sees it (a refusal reads as what was said)."""
    turn: dict[str, Any] = {"role": "assistant", "content": given(message.content) or given(message.refusal)}
    calls = given(message.tool_calls, [])
    if calls:
        turn["tool_calls"] = [call.model_dump(mode="json") for call in calls]
    return turn


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


class ResponsesApi:
    def __init__(self, stack: Stack, inference: InferenceApi, conversations: ConversationsApi) -> None:
        self.stack = stack
        self.inference = inference
        self.conversations = conversations

    @property
    def store(self) -> ResponseStore:
        return ResponseStore(self.stack.database)

    async def _context(self, request: models.CreateResponseRequest) -> list[dict[str, Any]]:
        """The conversation so far: the previous response's, or the conversation's items."""
        previous = given(request.previous_response_id)
        conversation = _conversation_id(request)
        if previous is not None and conversation is not None:
            raise BadRequestError("Give `previous_response_id` or `conversation`, not both.", param="conversation")
        if given(request.background, False):
            raise BadRequestError("Background responses are not served by this build yet.", param="background")
        if conversation is not None:
            if await self.conversations.store.get(conversation) is None:
                raise BadRequestError(
                    f"No conversation '{conversation}'.", code="conversation_not_found", param="conversation"
                )
            return await self.conversations.context(conversation)
        if previous is None:
            return []
        stored = await self.store.get(previous)
        if stored is None:
            raise ResourceNotFoundError("response", previous)
        return stored.context

    def _skeleton(self, request: models.CreateResponseRequest) -> dict[str, Any]:
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
            "temperature": given(request.temperature),
            "top_p": given(request.top_p),
            "max_output_tokens": given(request.max_output_tokens),
            "max_tool_calls": given(request.max_tool_calls),
            "parallel_tool_calls": given(request.parallel_tool_calls, True),
            "tool_choice": _dumped(given(request.tool_choice)) or "auto",
            "tools": [tool.model_dump(mode="json", exclude_unset=True) for tool in given(request.tools) or []],
            "text": text.model_dump(mode="json", exclude_unset=True)
            if text is not None
            else {"format": {"type": "text"}},
            "store": given(request.store, True),
            "metadata": given(request.metadata),
        }

    @staticmethod
    def _finished(response: dict[str, Any], completion: models.ChatCompletion, max_tool_calls: int | None) -> None:
        choice = completion.choices[0]
        response["output"] = output_items(choice.message, max_tool_calls)
        response["completed_at"] = int(time.time())
        if choice.finish_reason == models.FinishReason.length:
            response["status"], response["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
        else:
            response["status"] = "completed"
        usage = given(completion.usage)
        if usage is not None:
            response["usage"] = {
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            }
        violations = given(completion.guardrail_violations, [])
        if violations:
            response["guardrail_violations"] = [v.model_dump(mode="json") for v in violations]

    async def create_openai_response(
        self, request: models.CreateResponseRequest
    ) -> models.ResponseObject | AsyncIterator[models.ResponseStreamEvent]:
        items = input_items(request)
        messages = await self._context(request) + chat_messages(items)
        streaming = given(request.stream, False)
        chat = chat_request(request, messages, stream=streaming)
        response = self._skeleton(request)
        answer = await self.inference.openai_chat_completion(chat)  # errors (unknown model...) come before any event
        if isinstance(answer, models.ChatCompletion):
            self._finished(response, answer, given(request.max_tool_calls))
            await self._keep(response, answer, items, messages)
            return models.ResponseObject.model_validate(response)
        return self._events(request, response, answer, items, messages)

    async def _keep(
        self,
        response: dict[str, Any],
        completion: models.ChatCompletion,
        items: list[dict[str, Any]],
        messages: list[dict[str, Any]],
    ) -> None:
        conversation = (response.get("conversation") or {}).get("id")
        if conversation is not None:  # the turn joins the conversation, stored or not, as in OpenAI
            await self.conversations.append(conversation, [*items, *response["output"]])
        if response["store"]:
            context = [*messages, _assistant_message(completion.choices[0].message)]
            await self.store.add(StoredResponse(response, items, context))

    async def _events(
        self,
        request: models.CreateResponseRequest,
        response: dict[str, Any],
        chunks: AsyncIterator[models.ChatCompletionChunk],
        items: list[dict[str, Any]],
        messages: list[dict[str, Any]],
    ) -> AsyncIterator[models.ResponseStreamEvent]:
        events = StreamEvents()
        assembler = ChatAssembler()
        yield events.event("response.created", response=dict(response))
        yield events.event("response.in_progress", response=dict(response))
        async with aclosing(cast(AsyncGenerator[models.ChatCompletionChunk], chunks)) as stream:
            async for chunk in stream:
                assembler.add(chunk)
                for event in events.chunk(chunk):
                    yield event
        completion = assembler.completion(request.model)
        self._finished(response, completion, given(request.max_tool_calls))
        for event in events.finish(response["output"]):  # gives the output the ids the stream used
            yield event
        await self._keep(response, completion, items, messages)
        final = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        yield events.event(final, response=response)

    async def get_openai_response(self, request: models.GetOpenaiResponseRequest) -> models.ResponseObject:
        stored = await self.store.get(request.response_id)
        if stored is None:
            raise ResourceNotFoundError("response", request.response_id)
        return models.ResponseObject.model_validate(stored.response)

    async def delete_openai_response(
        self, request: models.DeleteOpenaiResponseRequest
    ) -> models.DeleteResponseResponse:
        if not await self.store.delete(request.response_id):
            raise ResourceNotFoundError("response", request.response_id)
        return models.DeleteResponseResponse(id=request.response_id, deleted=True)

    async def list_openai_responses(self, request: models.ListOpenaiResponsesRequest) -> models.ListResponsesResponse:
        order = given(request.order, models.SortOrder.desc)
        found, has_more = await self.store.page(
            after=given(request.after), limit=request.limit, model=given(request.model), descending=order == "desc"
        )
        data = [models.ResponseObject.model_validate(s.response) for s in found]
        return models.ListResponsesResponse(
            data=data, first_id=data[0].id if data else "", last_id=data[-1].id if data else "", has_more=has_more
        )

    async def list_openai_response_input_items(
        self, request: models.ListOpenaiResponseInputItemsRequest
    ) -> models.ResponseInputItemList:
        stored = await self.store.get(request.response_id)
        if stored is None:
            raise ResourceNotFoundError("response", request.response_id)
        items = list(stored.input_items)
        if given(request.order, models.SortOrder.desc) == "desc":
            items.reverse()
        ids = [item["id"] for item in items]
        after, before = given(request.after), given(request.before)
        start, end = 0, len(items)
        for cursor, param in ((after, "after"), (before, "before")):
            if cursor is not None and cursor not in ids:
                raise BadRequestError(f"No input item '{cursor}' in this response to page from.", param=param)
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


__all__ = ["ResponsesApi"]
