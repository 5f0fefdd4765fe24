"""The outbound guard itself (security/outbound.py, outbound_httpx.py): which addresses it refuses, the
allow-list's forms, the address it checked being the one connected to (no DNS rebinding), redirects
checked again, and bounded reads."""

from __future__ import annotations

import ipaddress
import re

import httpx
import pytest

from pocketstack.config import ConfigError, parse_config
from pocketstack.security.config import OutboundConfig
from pocketstack.security.outbound import OutboundGuard, OutboundRefused, forbidden_kind
from pocketstack.security.outbound_httpx import guarded_client
from tests.support.listener import Answer, listening


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "fe80::1",
     "fc00::1", "fd12:3456::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "240.0.0.1", "100.64.0.1",
     "::ffff:127.0.0.1", "::ffff:169.254.169.254", "2002:7f00:1::1", "192.0.2.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert forbidden_kind(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_kind(ipaddress.ip_address(address)) is None


def test_the_allow_list_is_checked_when_the_config_loads() -> None:
    good = "version: 2\nserver:\n  outbound:\n    allow: [localhost, '*.corp.example', 10.0.0.0/8, '::1', 'http://h:81/x']\n"
    assert parse_config(good, "run.yaml").server.outbound.allow[0] == "localhost"
    for bad in ("ftp://files.example/", "*.*.example", "a..b", "http:///nohost"):
        with pytest.raises(ConfigError, match=re.escape("server.outbound.allow")):
            parse_config(f"version: 2\nserver:\n  outbound:\n    allow: ['{bad}']\n", "run.yaml")


async def test_only_http_urls_with_a_host_pass() -> None:
    guard = OutboundGuard()
    for url in ("file:///etc/passwd", "gopher://x/", "http:///path", "unix:/run/x.sock"):
        with pytest.raises(OutboundRefused):
            await guard.check(url)
    checked = await guard.check("https://8.8.8.8/mcp")
    assert (checked.host, checked.port, checked.addresses) == ("8.8.8.8", 443, ("8.8.8.8",))


async def test_a_name_is_refused_if_any_of_its_addresses_is() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "10.0.0.7"]

    with pytest.raises(OutboundRefused, match=re.escape("resolves to 10.0.0.7, a private address")):
        await OutboundGuard(resolve=resolve).check("http://mixed.example/mcp")
    allowed = OutboundGuard(OutboundConfig(allow=["10.0.0.0/24"]), resolve=resolve)
    assert (await allowed.check("http://mixed.example/mcp")).addresses == ("8.8.8.8", "10.0.0.7")


async def test_the_address_checked_is_the_address_connected_to() -> None:
    """DNS rebinding: the name answers an allowed address to the check, then a forbidden one. The
    connection goes to the address that was checked; the name is not asked again."""
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.2"] if len(asked) == 1 else ["127.0.0.1"]

    with listening(host="127.0.0.2") as allowed, listening(host="127.0.0.1", port=allowed.port) as forbidden:
        guard = OutboundGuard(OutboundConfig(allow=["127.0.0.2/32"]), resolve=rebinding)
        async with guarded_client(guard) as client:
            reply = await client.get(f"http://rebind.example:{allowed.port}/mcp")
        assert reply.status_code == 200 and allowed.paths == ["/mcp"]
        assert forbidden.connections == 0 and asked == ["rebind.example"]


async def test_httpx_redirects_are_checked_again_and_reads_bounded() -> None:
    with listening(Answer(body=b"x" * 4096)) as target:
        with listening(Answer(302, b"", location=target.url("/big"))) as redirector:
            guard = OutboundGuard(OutboundConfig(allow=[f"http://127.0.0.1:{redirector.port}/"]))
            async with guarded_client(guard) as client:
                with pytest.raises(OutboundRefused, match=re.escape("127.0.0.1 is a loopback address")):
                    await client.get(redirector.url())
            assert redirector.paths == ["/mcp"] and target.connections == 0
        small = OutboundGuard(OutboundConfig(allow=["127.0.0.1"], max_response_bytes=1024))
        async with guarded_client(small) as client:
            with pytest.raises(httpx.ReadError, match="max_response_bytes"):
                await client.get(target.url("/big"))


async def test_fetch_follows_checked_redirects_and_bounds_the_body() -> None:
    with (
        listening(Answer(body=b'{"ok": true}')) as target,
        listening(Answer(301, b"", location=target.url("/data.json"))) as redirector,
    ):
        only_redirector = OutboundGuard(OutboundConfig(allow=[f"http://127.0.0.1:{redirector.port}/"]))
        with pytest.raises(OutboundRefused, match=re.escape("server.outbound.allow")):
            await only_redirector.fetch(redirector.url("/d"))
        assert target.connections == 0
        both = OutboundGuard(OutboundConfig(allow=["127.0.0.1"]))
        status, _, body = await both.fetch(redirector.url("/d"))
        assert (status, body, target.paths) == (200, b'{"ok": true}', ["/data.json"])
        tiny = OutboundGuard(OutboundConfig(allow=["127.0.0.1"], max_response_bytes=4))
        with pytest.raises(OutboundRefused, match="max_response_bytes"):
            await tiny.fetch(target.url())


async def test_fetch_pins_the_checked_address() -> None:
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.2"] if len(asked) == 1 else ["127.0.0.1"]

    with listening(host="127.0.0.2") as allowed, listening(host="127.0.0.1", port=allowed.port) as forbidden:
        guard = OutboundGuard(OutboundConfig(allow=["127.0.0.2/32"]), resolve=rebinding)
        status, _, _ = await guard.fetch(f"http://rebind.example:{allowed.port}/x")
        assert status == 200 and allowed.paths == ["/x"] and forbidden.connections == 0
