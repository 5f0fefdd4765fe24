"""Where a URL a user supplies may lead: the one guard every such outbound call goes through.

A user can hand the server a URL to fetch (an MCP `server_url`, a tool group's `mcp_endpoint`,
`list-tools?mcp_endpoint=`...). Unguarded, that makes the server a proxy into wherever it stands:
its own loopback services, the cloud metadata address (169.254.169.254), the private network.
So, unless `server.outbound.allow` (security/config.py) lets it through:

- a URL is refused, before anything is sent, when its host is or resolves to a loopback,
  link-local, private, shared, unspecified, multicast or reserved address (any one of them);
- the connection goes to the very addresses that were checked (the transports here pin them), so
  a name that re-resolves elsewhere between the check and the connect (DNS rebinding) gains nothing;
- every redirect is checked again as a new URL;
- what one exchange reads, and how long it takes, is bounded.

URLs the operator writes in the run config are trusted as written and never come here.
The httpx side (the `mcp` extra's client) is security/outbound_httpx.py; `fetch` is the aiohttp one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from pocketstack.errors import BadRequestError
from pocketstack.security.config import OutboundConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], Awaitable[list[str]]]
SETTING = "server.outbound.allow"
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}


class OutboundRefused(BadRequestError):
    """A URL the guard does not let the server reach (a 400 naming the setting)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, code="outbound_url_refused", param=param)


@dataclass(frozen=True)
class _Prefix:
    scheme: str
    host: str
    port: int
    path: str

    def covers(self, scheme: str, host: str, port: int, path: str) -> bool:
        if (scheme, host, port) != (self.scheme, self.host, self.port):
            return False
        base = self.path.rstrip("/")
        return not base or path == base or path.startswith(base + "/")


def _host_key(host: str) -> str:
    """A host as the transports see it: lower case, IDNA-encoded, no brackets."""
    name = host.strip("[]").rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        return name


def parse_allow_entry(entry: str) -> _Prefix | IPNetwork | str:
    """One `server.outbound.allow` entry: a URL prefix, a network (an address is a /32 or /128), or a
    host name pattern (`*` or `*.example.com` or `example.com`). ValueError names a bad one."""
    text = entry.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"server.outbound.allow: '{entry}' is not an http(s) URL prefix")
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        return _Prefix(parts.scheme, _host_key(parts.hostname), port, parts.path)
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        pass
    name = _host_key(text)
    label = name.removeprefix("*.")
    if name != "*" and (not label or any(not part or part == "*" for part in label.split("."))):
        raise ValueError(
            f"server.outbound.allow: '{entry}' is neither a host name, an address or network, nor a URL prefix"
        )
    return name


def forbidden_kind(address: IPAddress) -> str | None:
    """Why the server does not reach `address` for a user (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return forbidden_kind(embedded)
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved (non-public) address"
    return None


async def system_resolve(host: str, port: int) -> list[str]:
    """The host's addresses (getaddrinfo), in the order the system prefers them."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class Checked:
    """A URL the guard let through, and the addresses a transport may connect to for it."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]  # empty: the name did not resolve (the transport's connect says so)


def shown(url: str) -> str:
    """A URL as errors show it: no user, password, query or fragment (they may hold credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass
class OutboundGuard:
    config: OutboundConfig = field(default_factory=OutboundConfig)
    resolve: Resolve = system_resolve

    def __post_init__(self) -> None:
        entries = [parse_allow_entry(entry) for entry in self.config.allow]
        self._everything = "*" in entries
        self._prefixes = [e for e in entries if isinstance(e, _Prefix)]
        self._networks = [e for e in entries if isinstance(e, ipaddress.IPv4Network | ipaddress.IPv6Network)]
        names = [e for e in entries if isinstance(e, str) and e != "*"]
        self._names = frozenset(n for n in names if not n.startswith("*."))
        self._suffixes = tuple(n[1:] for n in names if n.startswith("*."))

    @property
    def max_response_bytes(self) -> int:
        return self.config.max_response_bytes

    @property
    def timeout_s(self) -> float:
        return self.config.timeout_s

    def _host_allowed(self, host: str) -> bool:
        return self._everything or host in self._names or host.endswith(self._suffixes)

    def _address_allowed(self, address: IPAddress) -> bool:
        return any(address in network for network in self._networks if network.version == address.version)

    def _refuse(self, url: str, why: str, param: str | None) -> OutboundRefused:
        return OutboundRefused(
            f"The URL {shown(url)} is refused: {why}. The server reaches loopback, link-local (metadata), private "
            f"and other non-public addresses for a request only when {SETTING} lists the host, address or URL.",
            param=param,
        )

    async def addresses(self, host: str, port: int, *, url: str | None = None, param: str | None = None) -> list[str]:
        """The addresses of `host` a connection may use: all of them checked (or the host allowed by name).
        OutboundRefused if any one is not allowed; empty if the name does not resolve."""
        host = _host_key(host)
        where = url or f"http://{host}:{port}"
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            found = [str(literal)]
        else:
            try:
                found = await self.resolve(host, port)
            except OSError:
                return []  # not a refusal: the connect fails on its own, and says the name did not resolve
        if self._host_allowed(host):
            return found
        for address in found:
            parsed = ipaddress.ip_address(address.split("%", 1)[0])
            why = forbidden_kind(parsed)
            if why is not None and not self._address_allowed(parsed):
                named = f"{host} is {why}" if literal is not None else f"{host} resolves to {address}, {why}"
                raise self._refuse(where, named, param)
        return found

    async def check(self, url: str, *, param: str | None = None) -> Checked:
        """The URL, checked (OutboundRefused if the server may not reach it), with the addresses to use."""
        if not url.strip():
            raise OutboundRefused("The URL is empty.", param=param)
        try:
            parts = urlsplit(url)
            port = parts.port
            hostname = parts.hostname
        except ValueError as exc:
            raise OutboundRefused(f"The URL is not valid: {exc}.", param=param) from exc
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not hostname:
            raise OutboundRefused(f"The URL {shown(url)} is not an http or https URL with a host.", param=param)
        host = _host_key(hostname)
        try:  # what the resolver does with the name first: an empty or over-long label, a character IDNA refuses
            host.encode("idna")
        except UnicodeError as exc:
            raise OutboundRefused(f"The URL {shown(url)} has no valid host name: {exc}.", param=param) from None
        port = port or _DEFAULT_PORTS[scheme]
        if any(prefix.covers(scheme, host, port, parts.path or "/") for prefix in self._prefixes):
            try:
                literal = ipaddress.ip_address(host)
                trusted = [str(literal)]
            except ValueError:
                try:
                    trusted = await self.resolve(host, port)
                except OSError:
                    trusted = []
            return Checked(url, scheme, host, port, tuple(trusted))
        found = await self.addresses(host, port, url=url, param=param)
        return Checked(url, scheme, host, port, tuple(found))

    async def fetch(
        self, url: str, *, headers: dict[str, str] | None = None, param: str | None = None
    ) -> tuple[int, str, bytes]:
        """GET a user's URL over aiohttp, through the guard: (status, content type, body). Redirects are
        followed (at most MAX_REDIRECTS), each checked anew; the body is bounded by max_response_bytes."""
        pins: dict[tuple[str, int], list[str]] = {}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        connector = aiohttp.TCPConnector(resolver=_PinnedResolver(self, pins), use_dns_cache=False)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector, trust_env=False) as session:
            for _ in range(MAX_REDIRECTS + 1):
                checked = await self.check(url, param=param)
                pins[(checked.host, checked.port)] = list(checked.addresses)
                async with session.get(url, headers=headers, allow_redirects=False) as answer:
                    location = answer.headers.get("Location")
                    if answer.status in (301, 302, 303, 307, 308) and location:
                        url = urljoin(url, location)
                        continue
                    body = bytearray()
                    async for chunk in answer.content.iter_chunked(64 * 1024):
                        body += chunk
                        if len(body) > self.max_response_bytes:
                            raise OutboundRefused(
                                f"The answer of {shown(url)} is larger than server.outbound.max_response_bytes "
                                f"({self.max_response_bytes} bytes).",
                                param=param,
                            )
                    return answer.status, answer.content_type, bytes(body)
        raise OutboundRefused(f"{shown(url)} redirects more than {MAX_REDIRECTS} times.", param=param)


class _PinnedResolver(AbstractResolver):
    """aiohttp's resolver for the guard: a name resolves only to addresses the guard checked (those a
    URL check just pinned, else checked now), so aiohttp connects to nothing else."""

    def __init__(self, guard: OutboundGuard, pins: dict[tuple[str, int], list[str]]) -> None:
        self._guard = guard
        self._pins = pins

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        key = (_host_key(host), port)
        addresses = self._pins[key] if key in self._pins else await self._guard.addresses(host, port)
        if not addresses:
            raise OSError(f"{host} did not resolve")
        return [
            {"hostname": host, "host": address, "port": port, "proto": 0, "flags": socket.AI_NUMERICHOST,
             "family": socket.AF_INET6 if ":" in address else socket.AF_INET}
            for address in addresses
        ]  # fmt: skip

    async def close(self) -> None:
        return None
