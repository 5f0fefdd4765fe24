"""A batch's input file read and checked, line by line, with Llama Stack's error codes and messages
(providers/inline/batches/reference/batches.py `_validate_input`) and OpenAI's for what it leaves
out (duplicate_custom_id, model_mismatch, too_many_tasks, empty_file). Every error is reported,
each naming its line; a file with any error fails the batch before a request runs."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pocketstack._generated import models

MAX_LINES = 50_000  # OpenAI's limits on one batch's input file
MAX_BYTES = 200 * 1024 * 1024
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations")

# What each endpoint's body must hold (Llama Stack checks the first three; responses and
# moderations are OpenAI's): field -> (accepted types, how the message names them).
_REQUIRED: dict[str, list[tuple[str, tuple[type, ...], str]]] = {
    "/v1/chat/completions": [("model", (str,), "a string"), ("messages", (list,), "an array")],
    "/v1/completions": [("model", (str,), "a string"), ("prompt", (str, list), "a string or array")],
    "/v1/embeddings": [("model", (str,), "a string"), ("input", (str, list), "a string or array of strings")],
    "/v1/responses": [("model", (str,), "a string"), ("input", (str, list), "a string or array")],
    "/v1/moderations": [("input", (str, list), "a string or array of strings")],
}


@dataclass(frozen=True)
class BatchLine:
    line: int  # from 1, as the file numbers its lines
    custom_id: str
    body: dict[str, Any]


def _error(code: str, message: str, *, line: int | None = None, param: str | None = None) -> models.BatchError:
    return models.BatchError(code=code, message=message, line=line, param=param)


async def parse_lines(
    content: bytes, endpoint: str, model_exists: Callable[[str], Awaitable[bool]]
) -> tuple[list[models.BatchError], list[BatchLine]]:
    """The file's requests, or every error found in it."""
    if len(content) > MAX_BYTES:
        too_big = f"The input file is {len(content)} bytes; a batch takes at most {MAX_BYTES}."
        return [_error("file_too_large", too_big, param="input_file_id")], []
    errors: list[models.BatchError] = []
    lines: list[BatchLine] = []
    seen_ids: dict[str, int] = {}
    known_models: dict[str, bool] = {}
    first_model: str | None = None
    numbered = [(n, text) for n, text in enumerate(content.decode("utf-8", "replace").split("\n"), 1) if text.strip()]
    if not numbered:
        return [_error("empty_file", "The batch input file is empty.", param="input_file_id")], []
    if len(numbered) > MAX_LINES:
        many = f"The input file has {len(numbered)} requests; a batch takes at most {MAX_LINES}."
        return [_error("too_many_tasks", many, param="input_file_id")], []
    for number, text in numbered:
        try:
            request = json.loads(text)
        except json.JSONDecodeError:
            errors.append(_error("invalid_json_line", "This line is not parseable as valid JSON.", line=number))
            continue
        if not isinstance(request, dict):
            errors.append(_error("invalid_request", "Each line must be a JSON dictionary object", line=number))
            continue
        found = _line_errors(request, number, endpoint)
        body = request.get("body")
        if isinstance(body, dict) and endpoint != "/v1/moderations":  # a moderation's model is a shield
            model = body.get("model")
            if isinstance(model, str):
                if model not in known_models:
                    known_models[model] = await model_exists(model)
                if not known_models[model]:
                    message = f"Model '{model}' does not exist or is not supported"
                    found.append(_error("model_not_found", message, line=number, param="body.model"))
                elif first_model is None:
                    first_model = model
                elif model != first_model:  # OpenAI: one model per file
                    message = f"This line's model '{model}' differs from the file's first, '{first_model}'."
                    found.append(_error("model_mismatch", message, line=number, param="body.model"))
        custom_id = request.get("custom_id")
        if isinstance(custom_id, str):
            if custom_id in seen_ids:
                message = (
                    f"The custom_id for this request is a duplicate of line {seen_ids[custom_id]}'s. "
                    "The custom_id parameter must be unique for each request in a batch."
                )
                found.append(_error("duplicate_custom_id", message, line=number, param="custom_id"))
            else:
                seen_ids[custom_id] = number
        errors += found
        if not found and isinstance(custom_id, str) and isinstance(body, dict):
            lines.append(BatchLine(number, custom_id, body))
    return errors, lines


def _line_errors(request: dict[str, Any], number: int, endpoint: str) -> list[models.BatchError]:
    errors: list[models.BatchError] = []
    for param, expected, type_string in [
        ("custom_id", str, "string"),
        ("method", str, "string"),
        ("url", str, "string"),
        ("body", dict, "JSON dictionary object"),
    ]:
        if param not in request:
            message = f"Missing required parameter: {param}"
            errors.append(_error("missing_required_parameter", message, line=number, param=param))
        elif not isinstance(request[param], expected):
            name = "URL" if param == "url" else param.capitalize()
            errors.append(_error("invalid_request", f"{name} must be a {type_string}", line=number, param=param))
    method = request.get("method")
    if isinstance(method, str) and method.upper() != "POST":
        errors.append(
            _error("invalid_method", "Only POST is supported in batch requests.", line=number, param="method")
        )
    url = request.get("url")
    if isinstance(url, str) and url != endpoint:
        message = "URL provided for this request does not match the batch endpoint"
        errors.append(_error("invalid_url", message, line=number, param="url"))
    body = request.get("body")
    if isinstance(body, dict):
        if body.get("stream", False):
            message = "Streaming is not supported in batch processing"
            errors.append(_error("streaming_unsupported", message, line=number, param="body.stream"))
        if endpoint == "/v1/responses" and body.get("background", False):
            message = "Background responses are not supported in batch processing"
            errors.append(_error("invalid_request", message, line=number, param="body.background"))
        for param, accepted, type_string in _REQUIRED[endpoint]:
            if param not in body:
                message = f"{param.capitalize()} parameter is required"
                errors.append(_error("invalid_request", message, line=number, param=f"body.{param}"))
            elif not isinstance(body[param], accepted):
                message = f"{param.capitalize()} must be {type_string}"
                errors.append(_error("invalid_request", message, line=number, param=f"body.{param}"))
    return errors
