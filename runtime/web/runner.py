"""The aiohttp runner PocketStack serves with: JSON errors even from the HTTP parser.

Requests that aiohttp rejects before any middleware runs (a malformed request line, an
oversized header, broken chunking) would get its plain-text page; the handler below answers
them in the spec's error shape instead.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from pocketstack.errors import error_body
from pocketstack.web.middlewares import INTERNAL_MESSAGE

# Long enough for any model id or query a client sends; aiohttp's default is 8 KiB.
MAX_LINE_BYTES = 64 * 1024


class _JsonErrorHandler(RequestHandler):
    __slots__ = ()

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs, and refuses once bytes went out
        if status >= 500:
            text, kind = INTERNAL_MESSAGE, "internal_server_error"
        else:
            reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Bad Request"
            detail = str(message or exc or "")[:200]  # the parser quotes the offending bytes, maybe 64 KiB of them
            text, kind = f"Malformed HTTP request ({reason}): {detail}".strip(), "invalid_request_error"
        body = json.dumps(error_body(text, type=kind))
        response = web.Response(status=status, text=body, content_type="application/json")
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", MAX_LINE_BYTES)
        # A client that hangs up cancels its handler, which closes its stream and so stops the
        # llama.cpp work behind it, also for answers that are not streamed or are held back.
        kwargs.setdefault("handler_cancellation", True)
        kwargs.setdefault("max_field_size", MAX_LINE_BYTES)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # same layout, one method more: aiohttp builds Server itself
        return server
