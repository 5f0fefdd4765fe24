"""A configured `server.auth.access_policy` (evaluated row by row) and `route_policy`, through the
running server: what a user may read but not change is a 403; what they may not read stays a 404
and out of lists; a route the policy does not grant is a 403 before any handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from pocketstack._generated import models
from pocketstack.app import create_app
from pocketstack.config import ConfigError
from tests.functional.conftest import access_config
from tests.support.users import As, with_test_users

# Owners read and change their own; admins read everything, change nothing of others'; the
# config's resources are everyone's to read.
POLICY = yaml.safe_load("""
- permit: {actions: [create]}
- permit: {actions: [read, update, delete]}
  when: user is owner
- permit: {actions: [read]}
  when: user with admin in roles
- permit: {actions: [read]}
  when: resource is unowned
""")

ROUTES = yaml.safe_load("""
- permit: {paths: ["/v1/files*", "/v1/conversations*"]}
  when: user with red in teams
- permit: {paths: "*"}
  when: user with admin in roles
""")


@pytest.fixture
async def server(
    aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]
) -> TestClient[Any, Any]:
    app = create_app(access_config(access_policy=POLICY))
    return await aiohttp_client(with_test_users(app))  # type: ignore[no-any-return]


async def test_read_allowed_change_forbidden_is_a_403(server: TestClient[Any, Any]) -> None:
    alice, bob, admin = As(server, "alice"), As(server, "bob"), As(server, "admin")
    async with alice.openai() as client:
        file = await client.files.create(file=("a.txt", b"alice's"), purpose="assistants")
    conv = (await alice.ok("POST", "/v1/conversations", {"metadata": {"k": "v"}}))["id"]
    assert (await admin.ok("GET", f"/v1/files/{file.id}"))["id"] == file.id
    assert [f["id"] for f in (await admin.ok("GET", "/v1/files"))["data"]] == [file.id]
    assert (await admin.ok("GET", f"/v1/conversations/{conv}"))["id"] == conv
    for method, path, body in (
        ("DELETE", f"/v1/files/{file.id}", None),
        ("POST", f"/v1/conversations/{conv}", {"metadata": {"k": "admin"}}),
        ("POST", f"/v1/conversations/{conv}/items", {"items": [{"type": "message", "role": "user", "content": "x"}]}),
        ("DELETE", f"/v1/conversations/{conv}", None),
    ):
        status, answer = await admin.call(method, path, body)
        assert status == 403 and answer["error"]["code"] == "access_denied", (path, answer)
    # bob may not even read them: they do not exist for him, nor are they listed
    await bob.hidden("GET", f"/v1/files/{file.id}", file.id, "file-missing")
    await bob.hidden("DELETE", f"/v1/conversations/{conv}", conv, "conv_" + "0" * 48)
    assert (await bob.ok("GET", "/v1/files"))["data"] == []
    # the config's model is everyone's to read, nobody's to unregister
    assert (await bob.ok("GET", "/v1/models/chat"))["provider_id"] == "scripted"
    status, _ = await bob.call("DELETE", "/v1/models/chat")
    assert status == 403
    assert (await alice.ok("DELETE", f"/v1/files/{file.id}"))["deleted"] is True


async def test_route_policy(aiohttp_client: Callable[..., Any], scripted: list[models.ChatCompletionRequest]) -> None:
    server = await aiohttp_client(with_test_users(create_app(access_config(route_policy=ROUTES))))
    alice, bob, admin = As(server, "alice"), As(server, "bob"), As(server, "admin")
    assert (await alice.ok("GET", "/v1/files"))["data"] == []
    for user, path in ((alice, "/v1/models"), (bob, "/v1/files"), (As(server, None), "/v1/files")):
        status, answer = await user.call("GET", path)
        assert status == 403 and answer["error"]["code"] == "route_denied", (user.name, path, answer)
    assert (await admin.ok("GET", "/v1/models"))["data"]
    # /metrics (every user's traffic, model and store names) is a route like any other
    status, answer = await alice.call("GET", "/metrics")
    assert status == 403 and answer["error"]["code"] == "route_denied"
    async with server.get("/metrics", headers=admin.headers) as scrape:
        assert scrape.status == 200 and "http_server_request_duration_seconds" in await scrape.text()


def test_a_bad_policy_stops_start_up(scripted: list[models.ChatCompletionRequest]) -> None:
    with pytest.raises(ConfigError, match=r"server.auth.access_policy\[0\].*Invalid condition"):
        create_app(access_config(access_policy=[{"permit": {"actions": ["read"]}, "when": "user is happy"}]))
