"""Responses in chat terms: input items -> chat messages, a response request -> a chat request, and a
chat answer -> output items. The Responses API runs on the same inference (and guardrails) as chat.
"""

from __future__ import annotations

import uuid
from typing import Any

from pocketstack._generated import models
from pocketstack.apis.inference.guardrails import shield_ids
from pocketstack.errors import BadRequestError
from pocketstack.wire.fields import given, plain

_TEXT_PARTS = ("input_text", "output_text", "text")
# Built-in tools this build does not run yet: refused, never silently dropped.
_NOT_YET = "The {kind} tool is not served by this build yet; function, file_search, web_search and mcp tools are."


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _part_text(part: models.ResponseInputContent, index: int) -> str:
    if part.type == "refusal" and isinstance((part.model_extra or {}).get("refusal"), str):
        return str((part.model_extra or {})["refusal"])  # an earlier answer, as it was said
    if part.type not in _TEXT_PARTS or not isinstance(given(part.text), str):
        raise BadRequestError(
            f"input message content[{index}] is '{part.type}'; this build reads text parts (input_text) only.",
            code="unsupported_content",
            param="input",
        )
    return str(part.text)


def _message_text(content: Any) -> str:
    content = plain(content)
    if isinstance(content, str):
        return content
    return "\n".join(_part_text(part, index) for index, part in enumerate(content))


def input_items(request: models.CreateResponseRequest) -> list[dict[str, Any]]:
    """The request's input as stored items, each with an id (what GET …/input_items lists)."""
    raw = plain(request.input)
    if isinstance(raw, str):
        return [
            {"type": "message", "id": new_id("msg"), "role": "user", "content": [{"type": "input_text", "text": raw}]}
        ]
    return stored_items(raw)


def stored_items(raw: list[Any]) -> list[dict[str, Any]]:
    """Input items as stored (responses' input items, conversations' items): typed, text parts, an id each."""
    items = []
    for item in raw:
        body = item.model_dump(mode="json", exclude_unset=True)
        body["type"] = body.get("type", "message")
        if body["type"] == "message" and isinstance(body.get("content"), str):
            kind = "output_text" if body["role"] == "assistant" else "input_text"
            body["content"] = [{"type": kind, "text": body["content"]}]
        prefixes = {"message": "msg", "function_call": "fc", "mcp_approval_response": "mcpa"}
        body.setdefault("id", new_id(prefixes.get(body["type"], "fco")))
        items.append(body)
    return items


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input or output items as chat messages; consecutive function calls become one assistant turn."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            parsed = models.ResponseInputMessage.model_validate(item)
            messages.append({"role": parsed.role.value, "content": _message_text(parsed.content)})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}  # fmt: skip
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
        elif kind in ("mcp_approval_request", "mcp_call"):  # a conversation's record of the server's own calls
            call_id = item.get("call_id") or item["id"]
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            if kind == "mcp_call":
                messages.append({"role": "tool", "tool_call_id": call_id, "content": mcp_call_text(item)})
        elif kind in _SERVER_ITEMS:
            continue  # the server's bookkeeping (listings, searches, approval answers): no chat turn of its own
        else:
            raise BadRequestError(f"Input items of type '{kind}' are not served by this build yet.", param="input")
    return messages


WEB_SEARCH_TYPES = ("web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26")
# run by the server (response_turn.py); the others are refused
_SERVED_BUILTINS = ("file_search", "mcp", *WEB_SEARCH_TYPES)
_SERVER_ITEMS = ("mcp_list_tools", "file_search_call", "web_search_call", "mcp_approval_response")


def _tools(request: models.CreateResponseRequest) -> list[dict[str, Any]]:
    tools = []
    for tool in given(request.tools) or []:
        if not isinstance(tool, models.ResponseFunctionTool):
            if tool.type in _SERVED_BUILTINS:
                continue
            raise BadRequestError(_NOT_YET.format(kind=tool.type), code="unsupported_tool", param="tools")
        function: dict[str, Any] = {"name": tool.name}
        if given(tool.description) is not None:
            function["description"] = tool.description
        if given(tool.parameters) is not None:
            function["parameters"] = tool.parameters
        if given(tool.strict) is not None:
            function["strict"] = tool.strict
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(request: models.CreateResponseRequest) -> Any:
    choice = plain(given(request.tool_choice))
    if choice is None:
        return None
    if isinstance(choice, models.ResponseToolChoiceFunction):
        offered = {tool.name for tool in given(request.tools) or [] if isinstance(tool, models.ResponseFunctionTool)}
        if choice.name not in offered:
            raise BadRequestError(
                f"tool_choice names '{choice.name}', which is not among the tools.", param="tool_choice"
            )
        return {"type": "function", "function": {"name": choice.name}}
    return str(getattr(choice, "value", choice))


def _unforced(choice: Any) -> Any:
    return "auto" if choice == "required" or isinstance(choice, dict) else choice


def _response_format(request: models.CreateResponseRequest) -> dict[str, Any] | None:
    text = given(request.text)
    fmt = given(text.format) if text is not None else None
    if fmt is None or fmt.type == models.ResponseTextFormatType.text:
        return None
    if fmt.type == models.ResponseTextFormatType.json_object:
        return {"type": "json_object"}
    if given(fmt.schema_) is None:
        raise BadRequestError("text.format json_schema needs a `schema`.", param="text")
    schema = {"name": given(fmt.name) or "output", "schema": fmt.schema_}
    if given(fmt.strict) is not None:
        schema["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": schema}


# llama.cpp's own sampling and cache knobs, taken as extra fields the way chat completions take them.
LLAMA_CPP_KNOBS = ("seed", "top_k", "min_p", "cache_prompt", "grammar")


def chat_request(
    request: models.CreateResponseRequest,
    messages: list[dict[str, Any]],
    *,
    stream: bool,
    extra_tools: list[dict[str, Any]] | None = None,
    first: bool = True,
    preamble: list[dict[str, Any]] | None = None,
    max_tokens: int | None = None,
) -> models.ChatCompletionRequest:
    """The chat request that answers this response request, over the whole conversation `messages`.

    `preamble` (the request's stored prompt, filled in) comes first, then `instructions`, as Llama Stack
    orders them. A forced tool choice (`required`, or a named function) binds the turn's `first` model call
    only: once the model has called a tool, forcing it again would only loop until max_infer_iters. `max_tokens`
    is what is left of the request's max_output_tokens after the turn's earlier calls."""
    instructions = given(request.instructions)
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [
            *(preamble or []),
            *([{"role": "system", "content": instructions}] if instructions else []),
            *messages,
        ],
        "store": False,  # the response is what is stored
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    optional = {
        "temperature": given(request.temperature),
        "top_p": given(request.top_p),
        "max_tokens": max_tokens if max_tokens is not None else given(request.max_output_tokens),
        "parallel_tool_calls": given(request.parallel_tool_calls),
        "tools": _tools(request) + (extra_tools or []) or None,
        "tool_choice": _tool_choice(request) if first else _unforced(_tool_choice(request)),
        "response_format": _response_format(request),
        "guardrails": shield_ids(given(request.guardrails)) or None,
    }
    body |= {key: value for key, value in optional.items() if value is not None}
    extra = request.model_extra or {}
    body |= {key: extra[key] for key in LLAMA_CPP_KNOBS if key in extra}
    if body.get("tool_choice") is not None and not body.get("tools"):
        if body["tool_choice"] != "none":
            raise BadRequestError("tool_choice needs tools to choose from.", param="tool_choice")
        del body["tool_choice"]  # nothing to call: chat completions refuse a tool_choice without tools
    return models.ChatCompletionRequest.model_validate(body)


def output_items(
    message: models.ChatResponseMessage, max_tool_calls: int | None, hidden: set[str] | frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """A chat answer as output items: a message (text or refusal), then its function calls (not the `hidden`
    ones: the server's own tools)."""
    items: list[dict[str, Any]] = []
    text, refusal = given(message.content), given(message.refusal)
    if refusal:
        items.append(message_item([{"type": "refusal", "refusal": refusal}]))
    elif text:
        items.append(message_item([{"type": "output_text", "text": text, "annotations": []}]))
    calls = [call for call in given(message.tool_calls, []) if call.function.name not in hidden]
    for call in calls[:max_tool_calls] if max_tool_calls is not None else calls:
        items.append(function_call_item(call.id, call.function.name, call.function.arguments, "completed"))
    return items


def message_item(
    content: list[dict[str, Any]], status: str = "completed", item_id: str | None = None
) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "role": "assistant",
        "status": status,
        "content": content,
    }


def mcp_call_text(item: dict[str, Any]) -> str:
    """What the model reads of an MCP call: its output, or its error."""
    return str(item.get("output") or "") if item.get("error") is None else f"Error: {item['error']}"


def function_call_item(
    call_id: str, name: str, arguments: str, status: str, item_id: str | None = None
) -> dict[str, Any]:
    return {"type": "function_call", "id": item_id or new_id("fc"), "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}  # fmt: skip
