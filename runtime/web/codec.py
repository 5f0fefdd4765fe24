"""What the generated route stubs call: request parsing into models and answer writing.

Kept beside the generated stubs rather than in them so that how JSON, 204s and SSE are written
is decided once, by hand, and every operation shares it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

from aiohttp import BodyPartReader, ClientConnectionResetError, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from pocketstack.errors import (
    BadRequestError,
    PayloadTooLargeError,
    PocketStackError,
    UnsupportedMediaTypeError,
    error_body,
)
from pocketstack.web.uploads import SPOOL, FileBody, Upload

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
BodyMode = Literal["none", "required", "optional"]


class RequestValidationError(BadRequestError):
    """The request did not match its schema; `param` names the first field at fault."""

    @classmethod
    def from_pydantic(cls, exc: ValidationError, sources: dict[str, str]) -> RequestValidationError:
        grouped: dict[str, list[str]] = {}  # a union's members fail at the same field: one line, "or"-ed
        wheres: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            parts = [part for part in error["loc"] if not _union_member(part)]
            loc = ".".join(str(part) for part in parts)
            wheres.setdefault(loc, sources.get(str(parts[0]), "body") if parts else "body")
            if error["msg"] not in grouped.setdefault(loc, []):
                grouped[loc].append(error["msg"])
        problems = [
            f"{wheres[loc]} field '{loc}': {' or '.join(msgs)}" if loc else f"{wheres[loc]}: {' or '.join(msgs)}"
            for loc, msgs in grouped.items()
        ]
        message = "Invalid request: " + "; ".join(problems)
        param = next((loc for loc in grouped if loc), None)
        return cls(message, code="invalid_request", param=param)


_PRIMITIVES = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})
_TYPE_TAGS = frozenset({"list", "dict", "tuple", "set", "frozenset", "literal", "nullable", "union", "chain", "model",
                        "function-after", "function-before", "function-wrap", "function-plain", "json-or-python",
                        "lax-or-strict", "tagged-union", "is-instance", "dataclass", "typed-dict"})  # fmt: skip


def _union_member(part: int | str) -> bool:
    """A location step that names which member of a union was tried, not a field of the request.

    The generated models name union members in CamelCase (`ModerationInputModerationInput1`);
    pydantic names the others by type (`str`, `list[str]`, `function-after[...]`). Fields are
    snake_case (form fields may look like `expires_after[seconds]`) and list positions are ints.
    """
    if not isinstance(part, str):
        return False
    return part[:1].isupper() or part in _PRIMITIVES or (part.split("[", 1)[0] in _TYPE_TAGS and "[" in part)


async def _read_body(request: web.Request, mode: BodyMode) -> dict[str, Any]:
    if mode == "none":
        return {}
    try:
        raw = await request.read()
    except web.HTTPException:
        raise
    except (RequestPayloadError, HttpProcessingError, ValueError) as exc:  # bad Content-Encoding, broken chunks
        raise BadRequestError(f"The request body could not be read: {exc}", code="invalid_body") from exc
    if not raw.strip():
        if mode == "required":
            raise BadRequestError("The request body is required (a JSON object).", code="missing_body")
        return {}
    if not says_json(request):
        # A web page can make a browser POST text/plain, a form or an untyped body to any site without
        # asking first; only JSON needs its permission (CORS). So a body read as JSON must say it is.
        raise UnsupportedMediaTypeError(
            f"The request body must be sent as Content-Type: application/json, not "
            f"{request.headers.get(hdrs.CONTENT_TYPE) or 'none'} "
            "(curl: --json, or -H 'Content-Type: application/json').",
            code="unsupported_media_type",
        )
    try:
        body = _parsed(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, 4300+ digit integers, deep nesting
        raise BadRequestError(f"The request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise BadRequestError("The request body must be a JSON object.", code="invalid_json")
    return body


def _parsed(raw: bytes) -> Any:
    """pydantic-core's JSON parser, 5x faster than json's on big bodies (an insert of 2,000 pre-embedded
    chunks: 16 MB of floats, 280 ms with json.loads, 55 ms). What it refuses (a lone surrogate escape,
    nesting past 200) goes to json.loads, whose answer or error stands: what is accepted is as before."""
    try:
        return from_json(raw)
    except ValueError:
        return json.loads(raw)


def says_json(request: web.Request) -> bool:
    """application/json, or a JSON-based type (application/merge-patch+json...), parameters aside."""
    if hdrs.CONTENT_TYPE not in request.headers:
        return False
    kind = request.content_type
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


async def parse_request(
    request: web.Request,
    model: type[ModelT],
    *,
    path: Iterable[str],
    query: Iterable[str],
    array_query: Iterable[str],
    body: BodyMode,
) -> ModelT:
    """Build the operation's request model from body, query and path, validated in one go."""
    return _validate(request, model, await _read_body(request, body), path, query, array_query)


FORM_FIELD_BYTES = 64 * 1024  # a non-file form field is a short value, never a document


@asynccontextmanager
async def parse_form(
    request: web.Request,
    model: type[ModelT],
    *,
    path: Iterable[str],
    query: Iterable[str],
    array_query: Iterable[str],
    uploads: Iterable[str],
    optional_uploads: Iterable[str] = (),
) -> AsyncIterator[tuple[ModelT, dict[str, Upload]]]:
    """A multipart/form-data request: file fields spooled to disk, the others into the model. The `uploads`
    must be there (a 400 names the first missing); the `optional_uploads` may be left out."""
    if request.content_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise BadRequestError(
            f"The request must be multipart/form-data, not {request.content_type or 'empty'}.", code="invalid_body"
        )
    required = tuple(uploads)
    wanted = required + tuple(optional_uploads)
    fields: dict[str, Any] = {}
    files: dict[str, Upload] = {}
    try:
        try:
            if request.content_type == "multipart/form-data":
                await _read_multipart(request, wanted, fields, files)
            else:  # no file can come this way: the fields are read so the error names what is missing
                fields.update((await request.post()).items())
        except (RequestPayloadError, HttpProcessingError, ValueError, AssertionError) as exc:
            raise BadRequestError(f"The multipart body could not be read: {exc}", code="invalid_body") from exc
        missing = [name for name in required if name not in files]
        parsed = _validate(request, model, fields, path, query, array_query)
        if missing:
            raise BadRequestError(
                f"Invalid request: form field '{missing[0]}': a file is required",
                code="invalid_request",
                param=missing[0],
            )
        yield parsed, files
    finally:
        for upload in files.values():
            upload.path.unlink(missing_ok=True)
            upload.release()


async def _read_multipart(
    request: web.Request, wanted: tuple[str, ...], fields: dict[str, Any], files: dict[str, Upload]
) -> None:
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            raise BadRequestError("Nested or unnamed multipart parts are not accepted.", code="invalid_body")
        if part.name in wanted:
            if part.name in files:
                raise BadRequestError(f"The form has more than one '{part.name}'.", code="invalid_body")
            files[part.name] = await request.app[SPOOL].receive(part)
            continue
        value = bytearray()
        while chunk := await part.read_chunk(8192):
            value += chunk
            if len(value) > FORM_FIELD_BYTES:
                raise PayloadTooLargeError(f"The form field '{part.name}' is too long.", code="field_too_large")
        fields[part.name] = value.decode(part.get_charset("utf-8"), errors="replace")


def _validate(
    request: web.Request,
    model: type[ModelT],
    data: dict[str, Any],
    path: Iterable[str],
    query: Iterable[str],
    array_query: Iterable[str],
) -> ModelT:
    sources: dict[str, str] = {}
    for name in query:
        # Llama Stack types a URL query parameter (list-tools' mcp_endpoint) as an object {uri}, which its
        # Stainless clients send as `name[uri]=...`; read that as the URL rather than ignore it.
        for key in (name, f"{name}[uri]"):
            if key in request.query:
                data[name] = request.query[key]
                sources[name] = "query"
                break
    for name in array_query:
        values = request.query.getall(name, []) or request.query.getall(f"{name}[]", [])
        if values:
            data[name] = values
            sources[name] = "query"
    for name in path:
        data[name] = request.match_info[name]
        sources[name] = "path"
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError.from_pydantic(exc, sources) from exc


async def respond_file(request: web.Request, body: FileBody) -> web.StreamResponse:
    headers = {"Content-Type": body.media_type}
    if body.filename:
        quoted = body.filename.replace("\\", "_").replace('"', "_")
        headers["Content-Disposition"] = f'attachment; filename="{quoted}"'
    return web.FileResponse(body.path, headers=headers)


def dump(model: BaseModel) -> str:
    return model.model_dump_json(by_alias=True)


async def respond(request: web.Request, result: object, *, status: int, done: bool = True) -> web.StreamResponse:
    if result is None:
        return web.Response(status=204)
    if isinstance(result, BaseModel):
        return web.Response(status=status, text=dump(result), content_type="application/json")
    if isinstance(result, AsyncIterator):
        return await _stream(request, result, done)
    raise TypeError(f"an API returned {type(result).__name__}, not a model, None or a stream")


async def _stream(request: web.Request, chunks: AsyncIterator[BaseModel], done: bool) -> web.StreamResponse:
    """Server-sent events: `data: <json>` frames, an error frame on failure, then `[DONE]` (if `done`).

    The first chunk is awaited before the 200 goes out, so errors found while preparing (an
    overflowing prompt, a busy model) still get their own status and the normal error body.
    """
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = None
    response = web.StreamResponse(
        status=200,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    try:
        await response.prepare(request)
        if first is not None:
            await response.write(b"data: " + dump(first).encode() + b"\n\n")
            async for chunk in chunks:
                await response.write(b"data: " + dump(chunk).encode() + b"\n\n")
    except (ConnectionResetError, ClientConnectionResetError):
        # The client left: closing the chunks (below) stops the work; there is nobody to answer.
        log.info("client went away during a stream of %s", request.path)
        return response
    except PocketStackError as exc:
        await response.write(_error_frame(exc.message, exc.type, str(exc.status)))
    except Exception:
        log.exception("stream of %s failed", request.path)
        await response.write(_error_frame("Internal server error: An unexpected error occurred.", None, "500"))
    else:
        if done:
            await response.write(b"data: [DONE]\n\n")
    finally:
        close = getattr(chunks, "aclose", None)  # generators: stop the work behind the stream now
        if close is not None:
            await close()
    await response.write_eof()
    return response


def _error_frame(message: str, type: str | None, code: str) -> bytes:
    return f"data: {json.dumps(error_body(message, type=type, code=code))}\n\n".encode()
