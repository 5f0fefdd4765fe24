"""An identity provider for the auth tests: keys made in the test, a JWKS endpoint, RFC 7662
introspection and a Llama Stack `custom` auth webhook, on an aiohttp server on loopback."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import BasicAuth, hdrs, web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://issuer.test"
AUDIENCE = "llama-stack"
CLIENT_ID, CLIENT_SECRET = "pocketstack", "s3cret"


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        if self.algorithm.startswith("RS"):
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def token(self, subject: str = "alice", *, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300} | claims
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, self.private, algorithm=self.algorithm, headers={"kid": kid or self.kid})


@dataclass
class Identity:
    """What the endpoints serve and what they were sent."""

    keys: list[SigningKey] = field(default_factory=list)
    jwks_fetches: int = 0
    # introspection: token -> the answer's fields
    introspected: dict[str, dict[str, Any]] = field(default_factory=dict)
    introspection_forms: list[dict[str, str]] = field(default_factory=list)
    # custom webhook: api_key -> (status, body)
    custom: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    custom_requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/jwks", self._jwks)
        app.router.add_post("/introspect", self._introspect)
        app.router.add_post("/custom", self._custom)
        return app

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response({"keys": [key.jwk() for key in self.keys]})

    async def _introspect(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.introspection_forms.append({k: str(v) for k, v in form.items()})
        header = request.headers.get(hdrs.AUTHORIZATION)
        basic = BasicAuth.decode(header) if header else None
        client = (basic.login, basic.password) if basic else (form.get("client_id"), form.get("client_secret"))
        if client != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response(self.introspected.get(str(form["token"]), {"active": False}))

    async def _custom(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.custom_requests.append(body)
        status, answer = self.custom.get(body["api_key"], (401, {"message": "unknown key"}))
        return web.json_response(answer, status=status)
