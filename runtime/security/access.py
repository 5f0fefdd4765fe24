"""Per-owner access: every stored resource has an owner, and a request sees only what the policy lets it.

One mechanism for every kind of resource (runtime/README.md, "Access control", says how a new
kind plugs in):

- `Access.owner()` is what a resource created now records (None without authentication: unowned);
- `Access.check(action, kind, id, owner, missing)` guards a read, update or delete of one
  resource: one the user may not read is `missing` (the very error an unknown id gets: its
  existence is not revealed); one the user may read but not act on is a 403;
- `Access.visibility(kind)` is what lists and searches apply in SQL (storage/owners.py): with the
  default policy a WHERE clause on the owner columns; with a configured `access_policy`, the policy
  evaluated per row.

Without authentication (`current_user()` is None) every check passes and every row is visible,
as Llama Stack does. Resource types are Llama Stack's, so a policy's `resource: <type>::<id>` reads
the same: `model::*`, `vector_store::vs_1`, `sql_record::openai_files::*`...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from pocketstack.errors import PermissionDeniedError, PocketStackError
from pocketstack.security.policy import (
    SHARED_ATTRIBUTES,
    AccessRule,
    Action,
    RouteAccessRule,
    default_policy,
    is_action_allowed,
    is_route_allowed,
)
from pocketstack.security.principal import User, current_user
from pocketstack.storage.owners import EVERYONE, Owner, Visibility

__all__ = ["Access", "Action", "Kind", "Owner", "Visibility"]


@dataclass(frozen=True)
class Kind:
    """A kind of owned resource: Llama Stack's resource type (what policies name) and how messages name one."""

    type: str
    noun: str


# Registered resources (core/resources.py) and stored records, with Llama Stack's type names
# (routing tables' ResourceType; AuthorizedSqlStore's `sql_record::<table>`).
MODEL = Kind("model", "model")
SHIELD = Kind("shield", "shield")
TOOL_GROUP = Kind("tool_group", "tool group")
VECTOR_STORE = Kind("vector_store", "vector store")
FILE = Kind("sql_record::openai_files", "file")
RESPONSE = Kind("sql_record::openai_responses", "response")
CONVERSATION = Kind("sql_record::openai_conversations", "conversation")
CHAT_COMPLETION = Kind("sql_record::chat_completions", "chat completion")
AGENT = Kind("sql_record::agents", "agent")
AGENT_SESSION = Kind("sql_record::agent_sessions", "session")
EVAL_JOB = Kind("sql_record::eval_jobs", "eval job")
# Llama Stack keeps prompts in a KVStore with no owner (every user sees every prompt); PocketStack gives
# them one like its other records, named as AuthorizedSqlStore would name the table.
PROMPT = Kind("sql_record::prompts", "prompt")
BATCH = Kind("sql_record::batches", "batch")
# Recorded spans (the Telemetry API): a trace is its requester's, as AuthorizedSqlStore would name the table.
TRACE = Kind("sql_record::spans", "trace")


@dataclass(frozen=True)
class Record:
    """One resource as the policy sees it (policy.Protected)."""

    type: str
    identifier: str
    owner: Owner | None


class Access:
    """The server's access policy applied to the request's user (security/principal.py)."""

    def __init__(self, policy: Sequence[AccessRule] = (), routes: Sequence[RouteAccessRule] = ()) -> None:
        self.policy = list(policy)
        self.routes = list(routes)
        self._default = not self.policy or self.policy == default_policy()

    @staticmethod
    def owner() -> Owner | None:
        """The owner of a resource created now: the request's user, or none without authentication."""
        user = current_user()
        return None if user is None else Owner(user.principal, {k: list(v) for k, v in user.attributes.items()})

    def allowed(self, action: Action, kind: Kind, identifier: str, owner: Owner | None) -> bool:
        return is_action_allowed(self.policy, action, Record(kind.type, identifier, owner), current_user())

    def check(
        self, action: Action, kind: Kind, identifier: str, owner: Owner | None, missing: PocketStackError
    ) -> None:
        """Raise `missing` when the user may not read the resource, a 403 when they may read it but
        not do `action` to it; pass otherwise."""
        user = current_user()
        if user is None:
            return
        if not self.allowed(Action.READ, kind, identifier, owner):
            raise missing
        if action is not Action.READ and not self.allowed(action, kind, identifier, owner):
            raise self.denied(action, kind, identifier, user)

    def check_create(self, kind: Kind, identifier: str) -> None:
        """A 403 when the policy forbids creating it (judged, as Llama Stack does, before it has an owner)."""
        user = current_user()
        if user is not None and not self.allowed(Action.CREATE, kind, identifier, None):
            raise self.denied(Action.CREATE, kind, identifier, user)

    def visible(self, kind: Kind, identifier: str, owner: Owner | None) -> bool:
        return self.allowed(Action.READ, kind, identifier, owner)

    def visibility(self, kind: Kind) -> Visibility:
        """Which rows of `kind` the request may list or search (storage applies it)."""
        user = current_user()
        if user is None:
            return EVERYONE
        if self._default:
            shared = {name: list(user.attributes[name]) for name in SHARED_ATTRIBUTES if user.attributes.get(name)}
            return Visibility(principal=user.principal, shared=shared)
        policy = self.policy

        def keep(identifier: str, owner: Owner | None) -> bool:
            return is_action_allowed(policy, Action.READ, Record(kind.type, identifier, owner), user)

        return Visibility(keep=keep)

    @staticmethod
    def denied(action: Action, kind: Kind, identifier: str, user: User) -> PermissionDeniedError:
        return PermissionDeniedError(
            f"User '{user.principal}' cannot perform action '{action.value}' on resource '{kind.type}::{identifier}'",
            code="access_denied",
        )

    def route_middleware(self) -> Middleware:
        """`server.auth.route_policy`: a route the user may not use is a 403 before its handler runs.
        It runs after authentication (it reads the request's user)."""
        routes = self.routes

        @web.middleware
        async def route_policy(request: web.Request, handler: Handler) -> web.StreamResponse:
            if routes and not is_route_allowed(routes, request.path, current_user()):
                route = request.path.rstrip("/") or "/"
                raise PermissionDeniedError(
                    f"Access denied: insufficient permissions for route {route}", code="route_denied"
                )
            return await handler(request)

        return route_policy
