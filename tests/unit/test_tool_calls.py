"""Tool calls of inline::llama-cpp, below the model: the schema a call is held to, and where a call ends."""

from __future__ import annotations

import jsonschema
import pytest

from pocketstack._generated import models
from pocketstack.providers.inline.llama_cpp import chat


def _request(tool: dict[str, object]) -> models.ChatCompletionRequest:
    return models.ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [tool], "tool_choice": "required"}
    )


def test_a_function_without_parameters_is_called_with_no_arguments() -> None:
    request = _request({"type": "function", "function": {"name": "get_time"}})
    schema = chat.output_schema(request, chat.tool_plan(request))
    assert isinstance(schema, dict)
    jsonschema.validate({"name": "get_time", "arguments": {}}, schema)
    with pytest.raises(jsonschema.ValidationError):  # the grammar built from it leaves no room to invent any
        jsonschema.validate({"name": "get_time", "arguments": {"city": "Tokyo"}}, schema)
    (described,) = [m for m in chat.template_messages(request, chat.tool_plan(request).tools) if m["role"] == "system"]
    assert '"parameters": {"type": "object", "properties": {}}' in described["content"]


@pytest.mark.parametrize(
    ("text", "ended"),
    [
        ('{"name": "f", "arguments": {', False),
        ('{"name": "f", "arguments": {}}', True),
        ('{"name": "f", "arguments": {"a": "}"}', False),  # a brace inside a string closes nothing
        ('```json\n{"name": "f", "arguments": {}}', True),
        ('{"name": "f", "arguments": {}} and then more', True),
        ("Hello {}", False),
    ],
)
def test_a_held_call_ends_where_its_object_closes(text: str, ended: bool) -> None:
    assert chat.call_ended(text) is ended


def test_text_after_a_call_is_not_part_of_it() -> None:
    request = _request({"type": "function", "function": {"name": "f"}})
    call = chat.parse_tool_call('{"name": "f", "arguments": {"x": 1}}\n{"name": "f"', chat.tool_plan(request))
    assert call is not None and call.function.arguments == '{"x": 1}'
