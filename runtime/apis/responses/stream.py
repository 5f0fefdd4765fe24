"""A chat stream told as a Responses stream: OpenAI's event types, in OpenAI's order.

created, in_progress; per output item: output_item.added, then for a message content_part.added,
output_text.delta (or refusal.delta) ..., output_text.annotation.added (citations), output_text.done,
content_part.done, and for a function call function_call_arguments.delta ..., .done;
output_item.done; and last completed (or incomplete). When a guardrail stops a message whose first
sentences it let through, their output_text part is closed and a refusal part follows it. Every
event has its sequence_number; item events their output_index and item_id.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pocketstack._generated import models
from pocketstack.apis.responses.items import function_call_item, message_item, new_id
from pocketstack.wire.chat_stream import argument_fragment
from pocketstack.wire.fields import given


@dataclass
class _Call:
    output_index: int
    item_id: str
    call_id: str
    name: str
    arguments: str = ""


# The events Llama Stack's carry the response's id on (llama_stack_api/openai_responses.py: OutputItemAdded,
# OutputItemDone, ContentPartAdded, ContentPartDone; its text, refusal and call events have none).
WITH_RESPONSE_ID = frozenset(
    {"response.output_item.added", "response.output_item.done", "response.content_part.added",
     "response.content_part.done"}
)  # fmt: skip


@dataclass
class StreamEvents:
    """Feed it chat chunks; it returns the response events each one makes."""

    sequence: Iterator[int] = field(default_factory=itertools.count)
    response_id: str | None = None  # told on the events of WITH_RESPONSE_ID, as Llama Stack does
    items: int = 0  # output items opened so far
    message_id: str | None = None
    message_index: int = 0
    part: str | None = None  # "output_text" or "refusal", once the message's part is open
    part_index: int = 0  # its content_index: a refusal after text a guardrail let through is a second part
    text: str = ""  # the output_text told so far
    calls: dict[int, _Call] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)  # the server's own tools: their calls are not told as such
    hidden_calls: set[int] = field(default_factory=set)

    def event(self, kind: str, **fields: Any) -> models.ResponseStreamEvent:
        if kind in WITH_RESPONSE_ID and self.response_id is not None:
            fields["response_id"] = self.response_id
        return models.ResponseStreamEvent.model_validate(
            {"type": kind, "sequence_number": next(self.sequence), **fields}
        )

    def _open_message(self, part: str) -> list[models.ResponseStreamEvent]:
        events = []
        if self.message_id is None:
            self.message_id, self.message_index = new_id("msg"), self.items
            self.items += 1
            item = message_item([], "in_progress", self.message_id)
            events.append(self.event("response.output_item.added", output_index=self.message_index, item=item))
        if self.part == "output_text" and part == "refusal":  # a guardrail stopped the text it let begin
            done = {"type": "output_text", "text": self.text, "annotations": []}
            events.append(self._item_event("response.output_text.done", text=self.text, logprobs=[]))
            events.append(self._item_event("response.content_part.done", part=done))
            self.part, self.part_index = None, self.part_index + 1
        if self.part is None:
            self.part = part
            empty = {"type": "output_text", "text": "", "annotations": []} if part == "output_text" else {
                "type": "refusal", "refusal": ""}  # fmt: skip
            events.append(self._item_event("response.content_part.added", part=empty))
        return events

    def _item_event(self, kind: str, **fields: Any) -> models.ResponseStreamEvent:
        return self.event(
            kind, item_id=self.message_id, output_index=self.message_index, content_index=self.part_index, **fields
        )

    def chunk(self, chunk: models.ChatCompletionChunk) -> list[models.ResponseStreamEvent]:
        events: list[models.ResponseStreamEvent] = []
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            content, refusal = given(delta.content), given(delta.refusal)
            if content:
                events += self._open_message("output_text")
                events.append(self._item_event("response.output_text.delta", delta=content, logprobs=[]))
                self.text += content
            if refusal:
                events += self._open_message("refusal")
                events.append(self._item_event("response.refusal.delta", delta=refusal))
            for call in given(delta.tool_calls, []):
                events += self._call_delta(call)
        return events

    def _call_delta(self, call: models.ChunkToolCall) -> list[models.ResponseStreamEvent]:
        function = given(call.function)
        events = []
        if call.index in self.hidden_calls:
            return []
        current = self.calls.get(call.index)
        if current is None:
            name = given(function.name, "") if function is not None else ""
            if name in self.hidden:
                self.hidden_calls.add(call.index)
                return []
            current = _Call(self.items, new_id("fc"), given(call.id, "") or new_id("call"), name)
            self.calls[call.index] = current
            self.items += 1
            item = function_call_item(current.call_id, current.name, "", "in_progress", current.item_id)
            events.append(self.event("response.output_item.added", output_index=current.output_index, item=item))
        fragment = argument_fragment(call)
        if fragment:
            current.arguments += fragment
            events.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=current.item_id,
                    output_index=current.output_index,
                    delta=fragment,
                )
            )
        return events

    def finish(self, output: list[dict[str, Any]]) -> list[models.ResponseStreamEvent]:
        """The closing events of every open item; `output` is the final output (their ids are taken from here)."""
        events: list[models.ResponseStreamEvent] = []
        if self.message_id is not None:
            message = next(item for item in output if item["type"] == "message")
            message["id"] = self.message_id
            part = message["content"][0]
            if self.part_index:  # the text told before the refusal stays the message's first part
                message["content"] = [{"type": "output_text", "text": self.text, "annotations": []}, part]
            if self.part == "output_text":
                for number, annotation in enumerate(part.get("annotations", [])):
                    events.append(
                        self._item_event(
                            "response.output_text.annotation.added", annotation_index=number, annotation=annotation
                        )
                    )
                events.append(self._item_event("response.output_text.done", text=part["text"], logprobs=[]))
            else:
                events.append(self._item_event("response.refusal.done", refusal=part["refusal"]))
            events.append(self._item_event("response.content_part.done", part=part))
            events.append(self.event("response.output_item.done", output_index=self.message_index, item=message))
        calls = [item for item in output if item["type"] == "function_call"]
        for current, item in zip(sorted(self.calls.values(), key=lambda c: c.output_index), calls, strict=False):
            item["id"] = current.item_id
            events.append(
                self.event(
                    "response.function_call_arguments.done",
                    item_id=current.item_id,
                    output_index=current.output_index,
                    arguments=item["arguments"],
                )
            )
            events.append(self.event("response.output_item.done", output_index=current.output_index, item=item))
        return events
