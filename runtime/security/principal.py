"""Who is asking: the authenticated user of the request being served, as Llama Stack names it.

The authentication middleware sets it once per request (none when the server runs without
`server.auth`); everything that records an owner or checks access reads `current_user()`. Tasks
a request starts (background ingestion, a background response) inherit it with the context.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class User:
    """Llama Stack's `User`: a principal and its access attributes (roles, teams, projects, namespaces)."""

    principal: str
    attributes: dict[str, list[str]] = field(default_factory=dict)


_CURRENT_USER: ContextVar[User | None] = ContextVar("pocketstack_user", default=None)


def current_user() -> User | None:
    """The request's user; None without authentication (or outside a request)."""
    return _CURRENT_USER.get()


def set_current_user(user: User | None) -> object:
    """Set the request's user; returns the token `reset_current_user` takes."""
    return _CURRENT_USER.set(user)


def reset_current_user(token: object) -> None:
    _CURRENT_USER.reset(token)  # type: ignore[arg-type]
