"""The outbound guard (security/outbound.py) for httpx, the HTTP client of the `mcp` extra.

`guarded_client` is an httpx.AsyncClient whose every request, redirects included, is checked by
the guard before it is sent (an event hook), and whose connections go only to the addresses that
check pinned (a network backend under httpx's connection pool that connects to them by number, the
TLS name still the host's). No proxy from the environment is used (a proxy resolves names itself),
and what one connection reads is bounded.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from pocketstack.security.outbound import OutboundGuard

Pins = dict[tuple[str, int], list[str]]


class _BoundedStream(httpcore.AsyncNetworkStream):
    """A connection that stops reading past the guard's max_response_bytes."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, limit: int, read: list[int] | None = None) -> None:
        self._stream = stream
        self._limit = limit
        self._read = read if read is not None else [0]

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._stream.read(max_bytes, timeout)
        self._read[0] += len(data)
        if self._read[0] > self._limit:
            raise httpcore.ReadError(
                f"the server sent more than server.outbound.max_response_bytes ({self._limit} bytes)"
            )
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        secured = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return _BoundedStream(secured, self._limit, self._read)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects a host only to the addresses the guard checked for it (pinned by the request's check,
    else checked now): the address checked is the address connected to."""

    def __init__(self, guard: OutboundGuard, pins: Pins) -> None:
        self._guard = guard
        self._pins = pins
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        key = (host.lower(), port)
        addresses = self._pins[key] if key in self._pins else await self._guard.addresses(host, port)
        if not addresses:
            raise httpcore.ConnectError(f"the name {host} does not resolve")
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _BoundedStream(stream, self._guard.max_response_bytes)
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the outbound guard connects to TCP addresses only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(
    guard: OutboundGuard,
    *,
    headers: dict[str, Any] | None = None,
    timeout: httpx.Timeout | None = None,
    auth: httpx.Auth | None = None,
) -> httpx.AsyncClient:
    """An httpx client that reaches only what the guard allows (the signature of mcp's client factory)."""
    pins: Pins = {}

    async def check(request: httpx.Request) -> None:  # every request, each redirect too
        checked = await guard.check(str(request.url))
        pins[(checked.host, checked.port)] = list(checked.addresses)

    transport = httpx.AsyncHTTPTransport(trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=_PinnedBackend(guard, pins)
    )
    return httpx.AsyncClient(
        headers=headers,
        timeout=timeout or httpx.Timeout(guard.timeout_s),
        auth=auth,
        transport=transport,
        trust_env=False,
        follow_redirects=True,
        max_redirects=5,
        event_hooks={"request": [check]},
    )


def trusted_client(
    headers: dict[str, Any] | None = None, timeout: httpx.Timeout | None = None, auth: httpx.Auth | None = None
) -> httpx.AsyncClient:
    """For a URL the operator wrote in the run config: as mcp's own factory makes it."""
    return httpx.AsyncClient(headers=headers, timeout=timeout or httpx.Timeout(30.0), auth=auth, follow_redirects=True)
