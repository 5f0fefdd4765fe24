"""HTTPS from server.tls_certfile/tls_keyfile, and mutual TLS with tls_cafile, certificates made here."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import trustme

from pocketstack.cli import serve
from pocketstack.errors import StartupError
from tests.support.config import edge_with
from tests.support.process import free_port


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def _files(tmp_path: Path, ca: trustme.CA) -> dict[str, str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "server.pem", tmp_path / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    return {"tls_certfile": str(certfile), "tls_keyfile": str(keyfile)}


async def _serving(server: dict[str, Any]) -> AsyncIterator[int]:
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(edge_with(server={"port": port, **server}), stop))
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def _client(port: int, context: ssl.SSLContext | bool) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"https://127.0.0.1:{port}/v1",
        api_key="unused",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(verify=context),
    )


async def test_https_with_the_official_client(tmp_path: Path, ca: trustme.CA) -> None:
    async for port in _serving(_files(tmp_path, ca)):
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        models = await _client(port, trusting).models.list()
        assert any(m.id == "llama-cpp/SmolLM2-135M-Instruct" for m in models.data)
        with pytest.raises(openai.APIConnectionError):  # a client that does not trust the CA
            await _client(port, ssl.create_default_context()).models.list()
        async with aiohttp.ClientSession() as plain:  # plain HTTP on the HTTPS port gets nowhere
            with pytest.raises(aiohttp.ClientError):
                await plain.get(f"http://127.0.0.1:{port}/v1/health")


async def test_mutual_tls_needs_a_client_certificate(tmp_path: Path, ca: trustme.CA) -> None:
    clients_ca = trustme.CA()
    cafile = tmp_path / "clients-ca.pem"
    clients_ca.cert_pem.write_to_path(str(cafile))
    async for port in _serving({**_files(tmp_path, ca), "tls_cafile": str(cafile)}):
        anonymous = ssl.create_default_context()
        ca.configure_trust(anonymous)
        with pytest.raises(openai.APIConnectionError):
            await _client(port, anonymous).models.list()
        outsider = ssl.create_default_context()  # a certificate from another CA
        ca.configure_trust(outsider)
        trustme.CA().issue_cert("mallory@example.com").configure_cert(outsider)
        with pytest.raises(openai.APIConnectionError):
            await _client(port, outsider).models.list()
        member = ssl.create_default_context()
        ca.configure_trust(member)
        clients_ca.issue_cert("alice@example.com").configure_cert(member)
        assert (await _client(port, member).models.list()).data


async def test_half_a_tls_config_does_not_start(tmp_path: Path, ca: trustme.CA) -> None:
    files = _files(tmp_path, ca)
    with pytest.raises(StartupError, match="go together"):
        await serve(edge_with(server={"port": free_port(), "tls_certfile": files["tls_certfile"]}))
    with pytest.raises(StartupError, match="cannot load"):
        await serve(edge_with(server={"port": free_port(), "tls_certfile": files["tls_keyfile"], "tls_keyfile": "x"}))
