"""A response's `prompt` (OpenAI's reusable prompts, Llama Stack's Prompts API): the stored template at the
named version (or its default), variables filled in, as the system message that opens the model's
conversation, before `instructions` (Llama Stack: openai_responses.py _prepend_prompt).

Like `instructions`, it applies to this response only: it is not part of what a later response that
continues this one reads. Variables are strings or `input_text` parts. Llama Stack also takes image
and file parts (a "[Image: name]" mark in the text and the media in a user message); the Responses
engine here reads text only, so those are a 400, as they are in input messages.
"""

from __future__ import annotations

from typing import Any

from pocketstack._generated import models
from pocketstack.apis.prompts import PLACEHOLDER, PromptsApi, placeholders
from pocketstack.errors import BadRequestError
from pocketstack.wire.fields import given

_TEXT_PARTS = ("input_text", "text")


def _version(prompt: models.ResponsePrompt) -> int | None:
    """OpenAI sends the version as a string; Llama Stack reads it with int() (an empty one: the default)."""
    version = given(prompt.version)
    if not version:
        return None
    try:
        return int(version)
    except ValueError:
        raise BadRequestError(
            f"Invalid value for 'prompt.version': {version}. Must be a version number.", param="prompt.version"
        ) from None


def _text(name: str, value: str | models.ResponseInputContent) -> str:
    if isinstance(value, str):
        return value
    text = given(value.text)
    if value.type not in _TEXT_PARTS or not isinstance(text, str):
        raise BadRequestError(
            f"Prompt variable '{name}' is '{value.type}'; this build fills prompt variables with text only "
            "(a string or an input_text part).",
            code="unsupported_content",
            param="prompt.variables",
        )
    return text


async def prompt_messages(
    request: models.CreateResponseRequest, prompts: PromptsApi
) -> tuple[list[dict[str, Any]], int | None]:
    """The system message the request's prompt opens with (none without a prompt, or for an empty template),
    and the version of the prompt it used (the default one when the request names none; its telemetry says which).

    A variable the prompt does not declare is Llama Stack's 400; so is, here, a placeholder the template uses
    with no value given (Llama Stack would leave `{{name}}` in the text for the model to read)."""
    prompt = given(request.prompt)
    if prompt is None:
        return [], None
    stored = await prompts.version(prompt.id, _version(prompt))
    if not stored.prompt:
        return [], stored.version
    given_values = given(prompt.variables, {})
    for name in given_values:
        if name not in stored.variables:
            raise BadRequestError(
                f"Invalid value for 'prompt.variables': {name}. Variable not defined in prompt '{prompt.id}'.",
                code="undeclared_variable",
                param="prompt.variables",
            )
    values = {name: _text(name, value) for name, value in given_values.items()}
    missing = sorted(placeholders(stored.prompt) - set(values))
    if missing:
        raise BadRequestError(
            f"Missing value for prompt variables: {', '.join(missing)} (prompt '{prompt.id}' uses them).",
            code="missing_variable",
            param="prompt.variables",
        )
    text = PLACEHOLDER.sub(lambda match: values[match.group(1)], stored.prompt)
    return [{"role": "system", "content": text}], stored.version
