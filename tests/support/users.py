"""Several users against one app, for the access tests. TEST ONLY: never part of runtime/.

Authentication is not on main yet, so the tests say who they are with a header that a middleware,
added here to the app under test, turns into the request's user (security/principal.py) — exactly
what the authentication middleware will do with a credential. Swapping this for real API keys is
one line: `credentials()` returns `{"Authorization": f"Bearer {key}"}` instead, and
`with_test_users` is no longer applied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import openai
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler, Middleware

from pocketstack.security.principal import User, reset_current_user, set_current_user
from pocketstack.web.middlewares import error_middleware

TEST_USER_HEADER = "X-Test-User"

# Two users who share no attribute value (Llama Stack's default policy lets in whoever shares one of
# the owner's roles, teams, projects or namespaces), a third who shares alice's team, an admin.
USERS: dict[str, User] = {
    "alice": User("alice", {"roles": ["writer"], "teams": ["red"]}),
    "bob": User("bob", {"roles": ["reader"], "teams": ["blue"]}),
    "carol": User("carol", {"teams": ["red"]}),
    "admin": User("admin", {"roles": ["admin"]}),
}


def credentials(name: str) -> dict[str, str]:
    """The headers a client of user `name` sends (the one line to change for real credentials)."""
    return {TEST_USER_HEADER: name}


def test_user_middleware(users: Mapping[str, User]) -> Middleware:
    @web.middleware
    async def test_user(request: web.Request, handler: Handler) -> web.StreamResponse:
        name = request.headers.get(TEST_USER_HEADER)
        token = set_current_user(users[name] if name is not None else None)
        try:
            return await handler(request)
        finally:
            reset_current_user(token)

    return test_user


def with_test_users(app: web.Application, users: Mapping[str, User] = USERS) -> web.Application:
    """The app, with the test header setting the user right after the error middleware (where
    authentication sits: before the route policy and every handler)."""
    index = list(app.middlewares).index(error_middleware) + 1
    app.middlewares.insert(index, test_user_middleware(users))
    return app


class As:
    """Requests to the app under test as one user (None: no user, as without authentication)."""

    def __init__(self, server: TestClient[Any, Any], name: str | None) -> None:
        self.server = server
        self.name = name
        self.headers = credentials(name) if name is not None else {}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.server.request(method, path, json=body, headers=self.headers) as answer:
            if answer.content_type == "application/json":
                return answer.status, await answer.json()
            return answer.status, await answer.read()

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        assert status == 200, (self.name, method, path, status, answer)
        return answer

    async def hidden(self, method: str, path: str, real: str, missing: str, body: Any = None) -> None:
        """The request on another's resource `real` answers exactly as on `missing`, an id that
        does not exist: same status (a 4xx), same error code, same message but for the id."""
        other = json.loads(json.dumps(body).replace(real, missing)) if body is not None else None
        status, answer = await self.call(method, path, body)
        expected_status, expected = await self.call(method, path.replace(real, missing), other)
        assert status == expected_status and status in (400, 404), (method, path, status, answer, expected)
        assert answer["error"]["code"] == expected["error"]["code"], (answer, expected)
        assert answer["error"]["message"].replace(real, missing) == expected["error"]["message"], (answer, expected)

    def openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=str(self.server.make_url("/v1")), api_key="unused", max_retries=0, default_headers=self.headers
        )
