"""Quotas (`server.quota`): requests, and model tokens, per client and period; over a limit, a 429.

A client is the authenticated principal, else the client's address (Llama Stack's rule). Each
request is admitted by one conditional upsert in SQLite (storage/quota.py), so concurrent requests
cannot overrun a limit. Model tokens are counted from the usage the models report (a stream that
reports none counts one token per chunk) and charged when the request ends; a client whose tokens
reached the limit is refused until the window turns. Answers carry OpenAI's `x-ratelimit-*` headers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from pocketstack.errors import TooManyRequestsError
from pocketstack.security.auth import PUBLIC_PATHS, USER_KEY
from pocketstack.security.config import QuotaConfig
from pocketstack.storage import Database
from pocketstack.storage.quota import QuotaCounters

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")
HEADERS_KEY = web.RequestKey("ratelimit_headers", dict[str, str])


class TokenMeter:
    """The model tokens one request used; charged to its client when the request ends (or later, for
    work the request left running in the background)."""

    def __init__(self, charge: Callable[[int], Coroutine[Any, Any, None]]) -> None:
        self._charge = charge
        self.total = 0
        self._settled = False
        self._late: set[asyncio.Task[None]] = set()

    def add(self, tokens: int) -> None:
        if tokens <= 0:
            return
        if not self._settled:
            self.total += tokens
            return
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._charge(tokens))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def settle(self) -> None:
        self._settled = True
        await self._charge(self.total)


_METER: ContextVar[TokenMeter | None] = ContextVar("pocketstack_token_meter", default=None)


def record_tokens(tokens: int) -> None:
    """Count model tokens against the current request's client (nothing without quotas)."""
    meter = _METER.get()
    if meter is not None:
        meter.add(tokens)


def _usage_tokens(value: Any) -> int | None:
    usage = getattr(value, "usage", None)
    total = getattr(usage, "total_tokens", None)
    return total if isinstance(total, int) else None


def record_usage(result: Any) -> None:
    """A model's answer: its reported usage counted."""
    tokens = _usage_tokens(result)
    if tokens is not None:
        record_tokens(tokens)


async def metered(stream: AsyncIterator[T]) -> AsyncIterator[T]:
    """A model's stream, passed through; its usage (else one token per chunk) counted when it ends."""
    if _METER.get() is None:
        async for item in stream:
            yield item
        return
    reported: int | None = None
    chunks = 0
    try:
        async for item in stream:
            chunks += 1
            tokens = _usage_tokens(item)
            if tokens is not None:
                reported = tokens
            yield item
    finally:
        record_tokens(reported if reported is not None else chunks)


def _duration(seconds: float) -> str:
    """OpenAI's reset format: `59s`, `6m0s`, `1h2m3s`."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class Quota:
    def __init__(self, config: QuotaConfig, database: Callable[[], Database]) -> None:
        self._config = config
        self._database = database
        self._last_expired = 0

    def _limits(self, request: web.Request) -> tuple[str, int, int | None]:
        user = request.get(USER_KEY)
        if user is not None:
            return (
                f"user:{user.principal}",
                self._config.authenticated_max_requests,
                self._config.authenticated_max_tokens,
            )
        return (
            f"addr:{request.remote or 'unknown'}",
            self._config.anonymous_max_requests,
            self._config.anonymous_max_tokens,
        )

    def middleware(self) -> Middleware:
        period = self._config.period_seconds

        @web.middleware
        async def quota(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path in PUBLIC_PATHS:
                return await handler(request)
            client, max_requests, max_tokens = self._limits(request)
            now = time.time()
            window = int(now // period) * period
            counters = QuotaCounters(self._database())
            if window != self._last_expired:
                self._last_expired = window
                await counters.expire(window - period)
            taken = await counters.take(client, window, max_requests, max_tokens)
            reset = window + period - now
            headers = {"x-ratelimit-limit-requests": str(max_requests), "x-ratelimit-reset-requests": _duration(reset)}
            if taken is None:
                used = await counters.peek(client, window)
                headers["x-ratelimit-remaining-requests"] = str(max(0, max_requests - used.requests))
                if max_tokens is not None:
                    headers |= self._token_headers(max_tokens, used.tokens, reset)
                request[HEADERS_KEY] = headers
                over_tokens = max_tokens is not None and used.tokens >= max_tokens and used.requests < max_requests
                what = "tokens" if over_tokens else "requests"
                error = TooManyRequestsError(
                    f"Quota exceeded: {what} for this {self._config.period}; retry after {_duration(reset)}.",
                    code="quota_exceeded",
                    retry_after=max(1, int(reset + 0.999)),
                )
                error.headers.update(headers)
                raise error
            headers["x-ratelimit-remaining-requests"] = str(max(0, max_requests - taken.requests))
            if max_tokens is not None:
                headers |= self._token_headers(max_tokens, taken.tokens, reset)
            request[HEADERS_KEY] = headers

            async def charge(tokens: int) -> None:
                await counters.charge_tokens(client, window, tokens)

            meter = TokenMeter(charge)
            token = _METER.set(meter)
            try:
                return await handler(request)
            finally:
                _METER.reset(token)
                try:
                    await meter.settle()
                except Exception:
                    log.exception("could not count the tokens of %s %s", request.method, request.path)

        return quota

    @staticmethod
    def _token_headers(limit: int, used: int, reset: float) -> dict[str, str]:
        return {
            "x-ratelimit-limit-tokens": str(limit),
            "x-ratelimit-remaining-tokens": str(max(0, limit - used)),
            "x-ratelimit-reset-tokens": _duration(reset),
        }

    @staticmethod
    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        """on_response_prepare: the client's standing, on every answer (streams and errors too)."""
        for name, value in request.get(HEADERS_KEY, {}).items():
            response.headers[name] = value
