"""server.auth: JWTs against a JWKS, RFC 7662 introspection, a custom webhook, and static API keys,
each with an identity provider run by the test on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pocketstack import cli
from pocketstack._generated import models
from pocketstack.apis.inspect import InspectApi
from pocketstack.app import create_app
from pocketstack.config import ConfigError
from pocketstack.security import oauth2
from pocketstack.security.principal import User, current_user
from tests.support.config import edge_with
from tests.support.identity import AUDIENCE, CLIENT_ID, CLIENT_SECRET, ISSUER, Identity, SigningKey

AppFactory = Callable[[dict[str, Any]], Any]


@pytest.fixture
async def identity(aiohttp_server: Callable[..., Any]) -> tuple[Identity, TestServer]:
    state = Identity(keys=[SigningKey.rsa("rsa-1"), SigningKey.ec("ec-1")])
    server = await aiohttp_server(state.app())
    return state, server


@pytest.fixture
def seen_users(monkeypatch: pytest.MonkeyPatch) -> list[User | None]:
    """The User each GET /v1/inspect/routes ran as."""
    seen: list[User | None] = []
    original = InspectApi.list_routes

    async def recording(self: InspectApi, request: models.ListRoutesRequest) -> models.ListRoutesResponse:
        seen.append(current_user())
        return await original(self, request)

    monkeypatch.setattr(InspectApi, "list_routes", recording)
    return seen


@pytest.fixture
def auth_app(aiohttp_client: Callable[..., Any]) -> AppFactory:
    async def make(provider_config: dict[str, Any]) -> TestClient[Any, Any]:
        config = edge_with(server={"auth": {"provider_config": provider_config}})
        return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]

    return make


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _refused(client: TestClient[Any, Any], headers: dict[str, str], why: str) -> None:
    response = await client.get("/v1/inspect/routes", headers=headers)
    assert response.status == 401, await response.text()
    assert response.headers["WWW-Authenticate"] == "Bearer"
    error = (await response.json())["error"]
    assert error["type"] == "authentication_error"
    assert why in error["message"]


def _jwks_config(server: TestServer, **extra: Any) -> dict[str, Any]:
    return {
        "type": "oauth2_token",
        "jwks": {"uri": str(server.make_url("/jwks")), "key_recheck_period": 3600},
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "claims_mapping": {"sub": "roles", "groups": "teams", "scope": "scopes", "realm.roles": "roles"},
        **extra,
    }


async def test_jwt_signed_rs256_and_es256_authenticate_with_their_claims(
    auth_app: AppFactory, identity: tuple[Identity, TestServer], seen_users: list[User | None]
) -> None:
    state, server = identity
    client = await auth_app(_jwks_config(server))
    rsa_key, ec_key = state.keys
    for key in (rsa_key, ec_key):
        token = key.token("alice", groups=["ml"], scope="read write", realm={"roles": ["admin"]})
        response = await client.get("/v1/inspect/routes", headers=_bearer(token))
        assert response.status == 200, await response.text()
    assert (
        seen_users == [User("alice", {"roles": ["admin", "alice"], "teams": ["ml"], "scopes": ["read", "write"]})] * 2
    )
    assert current_user() is None  # reset after the request
    assert state.jwks_fetches == 1  # cached


async def test_bad_jwts_are_refused(auth_app: AppFactory, identity: tuple[Identity, TestServer]) -> None:
    state, server = identity
    client = await auth_app(_jwks_config(server))
    rsa_key = state.keys[0]
    impostor = SigningKey.rsa("rsa-1")  # same kid, another key: a bad signature
    cases = {
        "expired": rsa_key.token(exp=1_000_000),
        "wrong audience": rsa_key.token(aud="another-service"),
        "wrong issuer": rsa_key.token(iss="https://evil.test"),
        "not in the issuer's key set": rsa_key.token(kid="unknown-kid"),
        "Invalid JWT token": impostor.token(),
    }
    for why, token in cases.items():
        await _refused(client, _bearer(token), why)
    import jwt

    unsigned = jwt.encode({"sub": "alice", "aud": AUDIENCE, "iss": ISSUER}, "", algorithm="none")
    await _refused(client, _bearer(unsigned), "unsupported signing algorithm")
    await _refused(client, _bearer("not.a.jwt"), "Invalid JWT token")
    await _refused(client, {}, f"OAuth2 Bearer token from {ISSUER}")
    await _refused(client, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "Invalid Authorization header format")


async def test_open_routes_need_no_token(auth_app: AppFactory, identity: tuple[Identity, TestServer]) -> None:
    _, server = identity
    client = await auth_app(_jwks_config(server))
    for path in ("/v1/health", "/v1/version"):
        assert (await client.get(path)).status == 200
    await _refused(client, {}, "Authentication required")
    assert (await client.get("/v1/models")).status == 401
    assert (await client.get("/v1/no-such-route")).status == 401  # as Llama Stack: auth before routing


async def test_jwks_refetched_for_a_new_kid_at_most_so_often(
    auth_app: AppFactory, identity: tuple[Identity, TestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, server = identity
    client = await auth_app(_jwks_config(server))
    assert (await client.get("/v1/inspect/routes", headers=_bearer(state.keys[0].token()))).status == 200
    rotated = SigningKey.rsa("rsa-2")
    state.keys.append(rotated)
    for _ in range(3):  # a flood of unknown kids does not hammer the issuer
        await _refused(client, _bearer(rotated.token()), "not in the issuer's key set")
    assert state.jwks_fetches == 1
    monkeypatch.setattr(oauth2, "UNKNOWN_KID_REFETCH_S", 0.0)
    assert (await client.get("/v1/inspect/routes", headers=_bearer(rotated.token()))).status == 200
    assert state.jwks_fetches == 2


@pytest.mark.parametrize("in_body", [False, True])
async def test_introspection(
    auth_app: AppFactory, identity: tuple[Identity, TestServer], seen_users: list[User | None], in_body: bool
) -> None:
    state, server = identity
    state.introspected["opaque-good"] = {"active": True, "sub": "bob", "groups": ["ops"]}
    state.introspected["opaque-old"] = {"active": False}
    introspection = {
        "url": str(server.make_url("/introspect")),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "send_secret_in_body": in_body,
    }
    client = await auth_app({"type": "oauth2_token", "introspection": introspection})
    assert (await client.get("/v1/inspect/routes", headers=_bearer("opaque-good"))).status == 200
    assert seen_users == [User("bob", {"roles": ["bob"], "teams": ["ops"]})]
    assert ("client_secret" in state.introspection_forms[0]) is in_body
    await _refused(client, _bearer("opaque-old"), "Token not active")
    await _refused(client, _bearer("never-issued"), "Token not active")
    await _refused(client, {}, "validated by 127.0.0.1")


async def test_custom_endpoint(
    auth_app: AppFactory, identity: tuple[Identity, TestServer], seen_users: list[User | None]
) -> None:
    state, server = identity
    state.custom["good-key"] = (200, {"principal": "carol", "attributes": {"roles": ["reader"]}})
    state.custom["odd-key"] = (200, {"attributes": {}})
    client = await auth_app({"type": "custom", "endpoint": str(server.make_url("/custom"))})
    headers = {**_bearer("good-key"), "X-LlamaStack-Provider-Data": '{"openai_api_key": "sk-x"}', "X-Team": "a"}
    response = await client.get("/v1/inspect/routes?api_filter=v1", headers=headers)
    assert response.status == 200, await response.text()
    assert seen_users == [User("carol", {"roles": ["reader"]})]
    sent = state.custom_requests[0]
    assert sent["api_key"] == "good-key"
    assert sent["request"]["path"] == "/v1/inspect/routes"
    assert sent["request"]["params"] == {"api_filter": ["v1"]}
    assert sent["request"]["headers"]["x-team"] == "a"
    assert "authorization" not in sent["request"]["headers"]
    assert "x-llamastack-provider-data" not in sent["request"]["headers"]  # secrets stay here
    await _refused(client, _bearer("bad-key"), "Authentication failed: 401")
    await _refused(client, _bearer("odd-key"), "Invalid authentication response format")


async def test_unreachable_identity_provider_is_a_401(auth_app: AppFactory) -> None:
    client = await auth_app({"type": "custom", "endpoint": "http://127.0.0.1:9/auth"})
    await _refused(client, _bearer("anything"), "Authentication service error")


async def _cli(*arguments: str) -> int:
    """`pocketstack ...` (its own event loop, in a thread, as from a shell beside the server)."""
    return await asyncio.to_thread(cli.main, list(arguments))


async def _create_key(capsys: pytest.CaptureFixture[str], principal: str, *attributes: str) -> tuple[str, str]:
    """`pocketstack keys create`: (key id, key)."""
    arguments = ["keys", "create", "--principal", principal]
    for attribute in attributes:
        arguments += ["--attribute", attribute]
    assert await _cli(*arguments) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    return lines[0].split()[1], lines[-1]


async def test_api_keys_through_the_official_clients(
    aiohttp_client: Callable[..., Any], capsys: pytest.CaptureFixture[str], seen_users: list[User | None], home: Any
) -> None:
    key_id, key = await _create_key(capsys, "alice", "roles=admin,dev", "teams=ml")
    assert key.startswith("psk-")
    config = edge_with(server={"auth": {"provider_config": {"type": "api_keys", "cache_seconds": 0}}})
    server = await aiohttp_client(create_app(config))
    base = str(server.make_url("")).rstrip("/")

    ai = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    assert {m.id for m in (await ai.models.list()).data} >= {"llama-cpp/SmolLM2-135M-Instruct"}
    ls = llama_stack_client.AsyncLlamaStackClient(base_url=base, api_key=key, max_retries=0)
    assert await ls.models.list()
    await ls.inspect.version()
    assert (await server.get("/v1/inspect/routes", headers=_bearer(key))).status == 200
    assert seen_users == [User("alice", {"roles": ["admin", "dev"], "teams": ["ml"]})]

    with pytest.raises(openai.AuthenticationError) as refused:
        await openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="psk-wrong", max_retries=0).models.list()
    assert refused.value.status_code == 401
    with pytest.raises(llama_stack_client.AuthenticationError):
        await llama_stack_client.AsyncLlamaStackClient(base_url=base, max_retries=0).models.list()

    assert await _cli("keys", "list") == 0
    listed = capsys.readouterr().out
    assert key_id in listed and "alice" in listed and "roles=admin,dev" in listed and "active" in listed
    assert key not in listed
    database = (home / "edge" / "state.db").read_bytes()
    assert key.encode() not in database  # only its hash is kept

    assert await _cli("keys", "revoke", key_id) == 0
    with pytest.raises(openai.AuthenticationError):
        await ai.models.list()
    assert await _cli("keys", "revoke", key_id) == 1  # no longer active
    assert await _cli("keys", "list") == 0
    assert "revoked" in capsys.readouterr().out


async def test_no_token_in_the_logs(
    auth_app: AppFactory, identity: tuple[Identity, TestServer], caplog: pytest.LogCaptureFixture
) -> None:
    state, server = identity
    client = await auth_app(_jwks_config(server))
    caplog.set_level(logging.DEBUG)
    tokens = [state.keys[0].token(exp=1_000_000), state.keys[0].token(kid="nope"), "psk-secret-value"]
    for token in tokens:
        await client.get("/v1/inspect/routes", headers=_bearer(token))
    bad = await auth_app({"type": "custom", "endpoint": "http://127.0.0.1:9/auth"})
    await bad.get("/v1/models", headers=_bearer("psk-secret-value"))
    for token in tokens:
        assert token not in caplog.text


def test_llama_stack_auth_config_is_accepted_verbatim() -> None:
    """A Llama Stack run config's server.auth, policies included (access control reads them)."""
    auth = {
        "provider_config": {
            "type": "oauth2_token",
            "jwks": {"uri": "https://idp.example/jwks", "key_recheck_period": 600, "token": "t"},
            "issuer": "https://idp.example",
            "audience": "llama-stack",
            "verify_tls": True,
            "claims_mapping": {"groups": "teams"},
        },
        "route_policy": [{"permit": {"paths": "/v1/models*"}, "when": "user with admin in roles"}],
        "access_policy": [{"permit": {"principal": "alice", "actions": ["read"]}, "description": "x"}],
    }
    config = edge_with(server={"auth": auth, "host": "0.0.0.0"})
    assert config.server.auth is not None
    assert config.server.auth.route_policy == auth["route_policy"]
    assert config.server.auth.access_policy == auth["access_policy"]
    create_app(config)  # beyond loopback is allowed once authentication is on
    with pytest.raises(ConfigError, match="One of jwks or introspection"):
        edge_with(server={"auth": {"provider_config": {"type": "oauth2_token"}}})
    with pytest.raises(ConfigError, match="no authentication is configured"):
        create_app(edge_with(server={"host": "0.0.0.0", "auth": {"route_policy": []}}))
