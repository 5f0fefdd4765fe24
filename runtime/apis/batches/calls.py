"""One batch line run through the API it names, in process (the inference router, so remote
offload and fallback apply as to any request), answered as an output-file line.

Embeddings lines are run in groups: their inputs go to the model in a few large calls and the
vectors are split back per line, since one call of many inputs costs little more than one of a
single input. A group the model refuses is run again line by line, so each line gets its own error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from pocketstack._generated import models
from pocketstack.apis.batches.validation import BatchLine
from pocketstack.errors import PocketStackError, error_body
from pocketstack.storage.batches import LineResult, Usage

EMBEDDING_INPUTS_PER_CALL = 256  # inputs per grouped embeddings call


class Endpoints(Protocol):
    """The APIs a batch line may call (the assembled Inference, Responses and Safety APIs)."""

    async def openai_chat_completion(self, request: models.ChatCompletionRequest) -> Any: ...

    async def openai_completion(self, request: models.CompletionRequest) -> Any: ...

    async def openai_embeddings(self, request: models.EmbeddingsRequest) -> models.EmbeddingsResponse: ...


class Responder(Protocol):
    async def create_openai_response(self, request: models.CreateResponseRequest) -> Any: ...


class Moderator(Protocol):
    async def run_moderation(self, request: models.ModerationRequest) -> models.ModerationObject: ...


def _usage(body: dict[str, Any]) -> Usage:
    """Tokens from any endpoint's usage: chat/completions/embeddings (prompt_*) or responses (input_*)."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    prompt_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    return Usage(
        input_tokens=int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0),
        cached_tokens=int(prompt_details.get("cached_tokens", 0) or 0),
        output_tokens=int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens", 0) or 0),
    )


def answered(line: BatchLine, status: int, body: dict[str, Any]) -> tuple[LineResult, Usage]:
    """OpenAI's output line: a 2xx goes to the output file, any other status to the error file."""
    output = {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": line.custom_id,
        "response": {"status_code": status, "request_id": f"req_{uuid.uuid4().hex}", "body": body},
        "error": None,
    }
    ok = 200 <= status < 300
    return LineResult(line.line, ok, output), _usage(body) if ok else Usage()


def not_run(line: BatchLine, code: str, message: str) -> LineResult:
    """A line the batch ended before running (expired, cancelled): the error file's non-HTTP form."""
    output = {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": line.custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }
    return LineResult(line.line, False, output)


def _failure(exc: Exception) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, PocketStackError):
        return exc.status, exc.body()
    if isinstance(exc, ValidationError):
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return 400, error_body(f"Invalid request body: {details}", type="invalid_request_error")
    raise exc


def _json(answer: Any) -> dict[str, Any]:
    if isinstance(answer, BaseModel):
        return json.loads(answer.model_dump_json())  # type: ignore[no-any-return]
    raise TypeError(f"a batch line got a stream ({type(answer).__name__}); streams are refused in validation")


async def _drain(answer: Any) -> Any:
    if isinstance(answer, AsyncIterator):  # never: `stream` is refused in validation
        async for _ in answer:
            pass
        raise TypeError("a batch line got a stream")
    return answer


class LineCaller:
    def __init__(self, inference: Endpoints, responses: Responder, safety: Moderator) -> None:
        self._inference = inference
        self._responses = responses
        self._safety = safety

    async def call(self, endpoint: str, line: BatchLine) -> tuple[LineResult, Usage]:
        """The line's answer; a refused request (any PocketStackError) is its error line, not the batch's."""
        try:
            body = await self._answer(endpoint, line.body)
        except (PocketStackError, ValidationError) as exc:
            return answered(line, *_failure(exc))
        return answered(line, 200, body)

    async def _answer(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        if endpoint == "/v1/chat/completions":
            request = models.ChatCompletionRequest.model_validate({**body, "stream": False})
            return _json(await _drain(await self._inference.openai_chat_completion(request)))
        if endpoint == "/v1/completions":
            text_request = models.CompletionRequest.model_validate({**body, "stream": False})
            return _json(await _drain(await self._inference.openai_completion(text_request)))
        if endpoint == "/v1/embeddings":
            return _json(await self._inference.openai_embeddings(models.EmbeddingsRequest.model_validate(body)))
        if endpoint == "/v1/responses":
            response_request = models.CreateResponseRequest.model_validate({**body, "stream": False})
            return _json(await _drain(await self._responses.create_openai_response(response_request)))
        return _json(await self._safety.run_moderation(models.ModerationRequest.model_validate(body)))

    async def embed_group(self, lines: list[BatchLine]) -> list[tuple[LineResult, Usage]]:
        """Lines sharing a model and options, as few calls as their inputs allow, split back per line."""
        inputs: list[str] = []
        spans: list[tuple[int, int]] = []
        for line in lines:
            given = line.body["input"]
            texts = [given] if isinstance(given, str) else list(given)
            spans.append((len(inputs), len(inputs) + len(texts)))
            inputs += texts
        options = {k: v for k, v in lines[0].body.items() if k != "input"}
        vectors: list[Any] = []
        prompt_tokens = 0
        model = str(options.get("model", ""))
        try:
            for start in range(0, len(inputs), EMBEDDING_INPUTS_PER_CALL):
                request = models.EmbeddingsRequest.model_validate(
                    {**options, "input": inputs[start : start + EMBEDDING_INPUTS_PER_CALL]}
                )
                answer = await self._inference.openai_embeddings(request)
                vectors += [item.embedding for item in answer.data]
                prompt_tokens += answer.usage.prompt_tokens
                model = answer.model
        except (PocketStackError, ValidationError):
            return [await self.call("/v1/embeddings", line) for line in lines]  # each line its own answer
        total_chars = sum(len(text) for text in inputs) or 1
        results = []
        for line, (start, end) in zip(lines, spans, strict=True):
            # The model counts the group's tokens at once; each line gets its share by length.
            share = round(prompt_tokens * sum(len(t) for t in inputs[start:end]) / total_chars)
            body = {
                "object": "list",
                "data": [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors[start:end])],
                "model": model,
                "usage": {"prompt_tokens": share, "total_tokens": share},
            }
            results.append(answered(line, 200, body))
        return results


def groupable(line: BatchLine) -> bool:
    """An embeddings line whose input is text (token arrays go one line per call)."""
    given = line.body.get("input")
    return isinstance(given, str) or (isinstance(given, list) and all(isinstance(t, str) for t in given))


def group_key(line: BatchLine) -> str:
    return json.dumps({k: v for k, v in line.body.items() if k != "input"}, sort_keys=True)
