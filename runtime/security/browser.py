"""What a web page can make its visitor's browser send to the server, refused.

Any page can have the browser send a "simple" request to any address without asking that server
first (a form post, or a fetch with a text/plain or untyped body), and a page whose name is
re-pointed at 127.0.0.1 (DNS rebinding) talks to a local server as if it were its own origin:
the attacks that hit other local LLM servers. So, before any handler runs:

- the Host header must be a name this server answers to (`server.allowed_hosts`; on loopback, by
  default, only loopback names), which a rebound name is not;
- a request whose Origin is neither the server's own nor allowed by `server.cors` is refused;
- a JSON body must be labelled JSON (web/codec.py, 415), which no simple request can be.

The SDKs, the official clients and curl send no Origin and label their JSON: they pass unchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from pocketstack.errors import PermissionDeniedError
from pocketstack.security.config import CorsConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """A loopback address or name (`localhost`, `*.localhost`, 127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """`example.com:8321` -> `example.com`, `[::1]:8321` -> `::1`."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@dataclass(frozen=True)
class BrowserGuard:
    allowed_hosts: frozenset[str] | None  # None: any Host (a server beyond loopback, its auth in front)
    cors: CorsConfig | None

    @classmethod
    def for_server(cls, bind_host: str, allowed_hosts: list[str] | None, cors: CorsConfig | None) -> BrowserGuard:
        if allowed_hosts is not None:
            names = [host_name(name) for name in allowed_hosts]
            return cls(None if "*" in names else frozenset(names), cors)
        return cls(frozenset(LOOPBACK_NAMES) if is_loopback(bind_host) else None, cors)

    def host_allowed(self, host_header: str) -> bool:
        if self.allowed_hosts is None:
            return True
        name = host_name(host_header)
        return name in self.allowed_hosts or ("localhost" in self.allowed_hosts and name.endswith(".localhost"))

    def origin_allowed(self, origin: str, request: web.Request) -> bool:
        if origin == f"{request.scheme}://{request.host}":
            return True  # the server's own pages (same origin)
        return self.cors is not None and origin != "null" and self.cors.allows(origin)

    def middleware(self) -> Middleware:
        @web.middleware
        async def browser_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not self.host_allowed(request.host):
                raise PermissionDeniedError(
                    f"This server does not answer to the host name '{host_name(request.host)}' "
                    "(server.allowed_hosts lists the names it answers to).",
                    code="host_not_allowed",
                )
            origin = request.headers.get(hdrs.ORIGIN)
            if origin is not None and not self.origin_allowed(origin, request):
                raise PermissionDeniedError(
                    f"Requests from the web origin '{origin}' are not allowed (server.cors.allow_origins lists "
                    "the origins that may call this server).",
                    code="origin_not_allowed",
                )
            if (
                origin is not None
                and request.method == "OPTIONS"
                and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
            ):
                return self._preflight(request)
            return await handler(request)

        return browser_guard

    def _preflight(self, request: web.Request) -> web.StreamResponse:
        """A browser asking whether its page may send this request (CORS preflight): yes, as configured."""
        cors = self.cors or CorsConfig()  # (without one, only the server's own origin got here)
        method = request.headers[hdrs.ACCESS_CONTROL_REQUEST_METHOD].upper()
        allowed_methods = {m.upper() for m in cors.allow_methods} | {"OPTIONS"}
        if "*" not in cors.allow_methods and method not in allowed_methods:
            raise PermissionDeniedError(
                f"Web pages may not send {method} requests here (server.cors.allow_methods).", code="method_not_allowed"
            )
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
        wanted = [h.strip() for h in asked.split(",") if h.strip()]
        allowed_headers = {h.lower() for h in cors.allow_headers}
        if "*" not in cors.allow_headers and any(h.lower() not in allowed_headers for h in wanted):
            raise PermissionDeniedError(
                f"Web pages may not send the headers {asked} here (server.cors.allow_headers).",
                code="headers_not_allowed",
            )
        response = web.Response(status=200)
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = ", ".join(sorted(allowed_methods))
        if wanted:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ", ".join(wanted)
        response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = str(cors.max_age)
        return response

    async def add_cors_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """on_response_prepare: an allowed cross-origin page may read the answer (streams too)."""
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or self.cors is None or not self.cors.allows(origin):
            return
        wildcard = "*" in self.cors.allow_origins and not self.cors.allow_credentials
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*" if wildcard else origin
        if not wildcard:
            response.headers.add(hdrs.VARY, "Origin")
        if self.cors.allow_credentials:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
        if self.cors.expose_headers:
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = ", ".join(self.cors.expose_headers)
