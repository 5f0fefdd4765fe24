"""OpenAI chat requests -> prompt text and grammar; generated text -> tool calls.

Tool calls are asked for in one JSON shape, `{"name": ..., "arguments": {...}}`: with
`tool_choice` required or a named function a grammar makes that shape (and the declared
parameters) the only possible output, so even a 135M model calls tools validly.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import MISSING

from pocketstack._generated import models
from pocketstack.errors import BadRequestError
from pocketstack.wire.fields import given

# A function that declares no parameters takes none (OpenAI: "Omitting parameters defines a function
# with an empty parameter list"): without `additionalProperties: false` a grammar would let a model
# invent arguments without end.
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
TOOLS_PROMPT = (
    "You can call functions. To call one, reply with only a JSON object of the form "
    '{"name": "<function name>", "arguments": {<arguments>}} and nothing else. '
    "The functions, as JSON Schema:\n"
)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_OPEN_FENCE = re.compile(r"^```(?:json)?\s*")


def _text(content: Any, role: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    parts = []
    for part in content:
        if isinstance(part, models.TextPart):
            parts.append(part.text)
        elif isinstance(part, models.RefusalPart):
            parts.append(part.refusal)
        else:
            raise BadRequestError(
                f"This model reads text only; a {role} message has a '{part.type}' part.",
                code="unsupported_content",
                param="messages",
            )
    return "\n".join(parts)


def _call_text(call: models.ToolCall) -> str:
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError:
        arguments = call.function.arguments
    return json.dumps({"name": call.function.name, "arguments": arguments})


def template_messages(request: models.ChatCompletionRequest, tools: list[models.Tool]) -> list[dict[str, str]]:
    """Messages as plain role/content dicts, the way GGUF chat templates expect them."""
    messages: list[dict[str, str]] = []
    for message in request.messages:
        if isinstance(message, models.AssistantMessage):
            text = _text(message.content if message.content is not MISSING else None, "assistant")
            calls = given(message.tool_calls, [])
            text = "\n".join([t for t in [text, *(_call_text(c) for c in calls)] if t])
            messages.append({"role": "assistant", "content": text})
        else:
            role = "system" if message.role == "developer" else message.role
            messages.append({"role": role, "content": _text(message.content, message.role)})
    if tools:
        functions = [t.function.model_dump(mode="json", exclude={"strict"}) for t in tools]
        for function in functions:  # the model is told a function without parameters takes none
            function.setdefault("parameters", {"type": "object", "properties": {}})
        described = json.dumps(functions)
        instruction = TOOLS_PROMPT + described
        if messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": messages[0]["content"] + "\n\n" + instruction}
        else:
            messages.insert(0, {"role": "system", "content": instruction})
    return messages


@dataclass(frozen=True)
class ToolPlan:
    tools: list[models.Tool]
    forced: bool  # required or named: the grammar admits only a call

    @property
    def active(self) -> bool:
        return bool(self.tools)


def tool_plan(request: models.ChatCompletionRequest) -> ToolPlan:
    tools: list[models.Tool] = given(request.tools, [])
    choice = given(request.tool_choice, "auto")
    if isinstance(choice, models.NamedToolChoice):
        named = [t for t in tools if t.function.name == choice.function.name]
        if not named:
            raise BadRequestError(
                f"tool_choice names '{choice.function.name}', which is not among the tools.", param="tool_choice"
            )
        return ToolPlan(named, forced=True)
    mode = models.ToolChoiceMode(choice)
    if mode == models.ToolChoiceMode.none or not tools:
        if mode == models.ToolChoiceMode.required:
            raise BadRequestError("tool_choice is 'required' but no tools were given.", param="tool_choice")
        return ToolPlan([], forced=False)
    return ToolPlan(tools, forced=mode == models.ToolChoiceMode.required)


def _call_schema(tool: models.Tool) -> dict[str, Any]:
    parameters = given(tool.function.parameters, NO_PARAMETERS)
    return {
        "type": "object",
        "properties": {"name": {"const": tool.function.name}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def output_schema(request: models.ChatCompletionRequest, plan: ToolPlan) -> dict[str, Any] | bool | None:
    """The JSON Schema the output must satisfy; True for any JSON object; None for free text."""
    if plan.forced:
        schemas = [_call_schema(t) for t in plan.tools]
        return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    fmt = given(request.response_format)
    if isinstance(fmt, models.ResponseFormatJsonSchema):
        schema: dict[str, Any] = given(fmt.json_schema.schema_, {"type": "object"})
        return schema
    if isinstance(fmt, models.ResponseFormatJsonObject):
        return True
    return None


def _call_json(text: str) -> str:
    """The JSON of an answer that may be a call: fences taken off (an unclosed one too)."""
    candidate = text.strip()
    fenced = _FENCE.match(candidate)
    if fenced:
        return fenced.group(1)
    return _OPEN_FENCE.sub("", candidate, count=1)


def call_ended(text: str) -> bool:
    """Whether a held answer is one whole JSON object already (a call is nothing more)."""
    candidate = _call_json(text)
    if not candidate.startswith("{"):
        return False
    try:
        json.JSONDecoder().raw_decode(candidate)
    except json.JSONDecodeError:
        return False
    return True


def parse_tool_call(text: str, plan: ToolPlan) -> models.ToolCall | None:
    """The call in the model's answer, or None when the answer is plain text."""
    candidate = _call_json(text)
    if not candidate.startswith("{"):
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(candidate)
    except json.JSONDecodeError:
        return None
    names = {t.function.name for t in plan.tools}
    if not isinstance(data, dict) or data.get("name") not in names:
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    return models.ToolCall(
        id=f"call_{uuid.uuid4().hex[:24]}",
        function=models.FunctionCall(name=data["name"], arguments=json.dumps(arguments)),
    )
