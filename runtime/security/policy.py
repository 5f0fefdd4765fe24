"""Llama Stack 0.7.1's access rules, read and evaluated as it does (core/access_control/).

`server.auth.access_policy` is a list of `AccessRule`s (`permit`/`forbid` a scope of actions on
resources, for a principal or anyone, `when`/`unless` conditions hold); `server.auth.route_policy`
a list of `RouteAccessRule`s over request paths. The YAML of a Llama Stack run config is accepted
verbatim: the same keys, the same condition sentences, the same first-match-wins evaluation, the
same default policy when none is given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

log = logging.getLogger(__name__)


class Action(StrEnum):
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"


class Principal(Protocol):
    """Who asks, or who owns a resource: Llama Stack's User (security/principal.py's, or a stored owner)."""

    @property
    def principal(self) -> str: ...

    @property
    def attributes(self) -> Mapping[str, Sequence[str]] | None: ...


class Protected(Protocol):
    """A resource under access control: its qualified type, its id, its owner (None: unowned)."""

    @property
    def type(self) -> str: ...

    @property
    def identifier(self) -> str: ...

    @property
    def owner(self) -> Principal | None: ...


# Conditions: the sentences of Llama Stack's conditions.py, one class each.


class Condition(Protocol):
    def matches(self, resource: Protected | None, user: Principal) -> bool: ...


def _owner_values(resource: Protected | None, name: str) -> Sequence[str] | None:
    owner = resource.owner if resource is not None else None
    if owner is not None and owner.attributes and name in owner.attributes:
        return owner.attributes[name]
    return None


class UserInOwnersList:
    def __init__(self, name: str, negate: bool = False) -> None:
        self.name, self.negate = name, negate

    def matches(self, resource: Protected | None, user: Principal) -> bool:
        defined = _owner_values(resource, self.name) or ()
        values = (user.attributes or {}).get(self.name) or ()
        found = any(value in values for value in defined)
        return found != self.negate

    def __repr__(self) -> str:
        return f"user {'not in' if self.negate else 'in'} owners {self.name}"


class UserWithValueInList:
    def __init__(self, name: str, value: str, negate: bool = False) -> None:
        self.name, self.value, self.negate = name, value, negate

    def matches(self, resource: Protected | None, user: Principal) -> bool:
        found = bool(user.attributes) and self.value in (user.attributes or {}).get(self.name, ())
        return found != self.negate

    def __repr__(self) -> str:
        return f"user with {self.value} {'not in' if self.negate else 'in'} {self.name}"


class UserIsOwner:
    def __init__(self, negate: bool = False) -> None:
        self.negate = negate

    def matches(self, resource: Protected | None, user: Principal) -> bool:
        owner = resource.owner if resource is not None else None
        if owner is None:
            return self.negate  # "user is not owner" holds for an unowned resource
        return (owner.principal == user.principal) != self.negate

    def __repr__(self) -> str:
        return "user is not owner" if self.negate else "user is owner"


class ResourceIsUnowned:
    def matches(self, resource: Protected | None, user: Principal) -> bool:
        return resource is None or resource.owner is None

    def __repr__(self) -> str:
        return "resource is unowned"


def parse_condition(condition: str) -> Condition:
    """One of Llama Stack's condition sentences; ValueError for anything else."""
    match condition.split():
        case ["user", "is", "owner"]:
            return UserIsOwner()
        case ["user", "is", "not", "owner"]:
            return UserIsOwner(negate=True)
        case ["user", "with", value, "in", name]:
            return UserWithValueInList(name, value)
        case ["user", "with", value, "not", "in", name]:
            return UserWithValueInList(name, value, negate=True)
        case ["user", "in", "owners", name]:
            return UserInOwnersList(name)
        case ["user", "not", "in", "owners", name]:
            return UserInOwnersList(name, negate=True)
        case ["resource", "is", "unowned"]:
            return ResourceIsUnowned()
        case _:
            raise ValueError(f"Invalid condition: {condition}")


def _conditions(value: str | list[str] | None) -> list[Condition]:
    if not value:
        return []
    return [parse_condition(c) for c in (value if isinstance(value, list) else [value])]


# Rules: Llama Stack's datatypes.py.


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    principal: str | None = None
    actions: Action | list[Action]
    resource: str | None = None

    def action_list(self) -> list[Action]:
        return self.actions if isinstance(self.actions, list) else [self.actions]


class RouteScope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: str | list[str]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: str | list[str] | None = None
    unless: str | list[str] | None = None
    description: str | None = None

    def _scopes(self) -> tuple[BaseModel | None, BaseModel | None]:
        raise NotImplementedError

    @model_validator(mode="after")
    def _check(self) -> Self:
        permit, forbid = self._scopes()
        if not permit and not forbid:
            raise ValueError("on of permit or forbid is required")
        if permit and forbid:
            raise ValueError("permit and forbid are mutually exclusive")
        if self.when and self.unless:
            raise ValueError("when and unless are mutually exclusive")
        _conditions(self.when)
        _conditions(self.unless)
        return self

    def applies(self, resource: Protected | None, user: Principal) -> bool:
        """`when`: every condition holds; `unless`: not every condition holds; neither: always."""
        if self.when:
            return all(c.matches(resource, user) for c in _conditions(self.when))
        if self.unless:
            return not all(c.matches(resource, user) for c in _conditions(self.unless))
        return True


class AccessRule(_Rule):
    permit: Scope | None = None
    forbid: Scope | None = None

    def _scopes(self) -> tuple[BaseModel | None, BaseModel | None]:
        return self.permit, self.forbid


class RouteAccessRule(_Rule):
    permit: RouteScope | None = None
    forbid: RouteScope | None = None

    def _scopes(self) -> tuple[BaseModel | None, BaseModel | None]:
        return self.permit, self.forbid


def default_policy() -> list[AccessRule]:
    """Without an access_policy: the owner, whoever shares one of the owner's roles, teams, projects
    or namespaces, and everyone for what is unowned (Llama Stack's default_policy())."""
    every = Scope(actions=list(Action))
    shared = [AccessRule(permit=every, when=f"user in owners {name}") for name in SHARED_ATTRIBUTES]
    return [
        *shared,
        AccessRule(permit=every, when="user is owner"),
        AccessRule(permit=every, when="resource is unowned"),
    ]


SHARED_ATTRIBUTES = ("roles", "teams", "projects", "namespaces")


def matches_resource(pattern: str, resource: str) -> bool:
    """`type::id` exactly, `type::*`, or `regex:<pattern>` (re.match; an invalid one matches nothing)."""
    if pattern == resource:
        return True
    if pattern.startswith("regex:"):
        try:
            return re.match(pattern[6:], resource) is not None
        except re.error as exc:
            log.warning("Invalid regex pattern in access_policy, treating as non-match: %s (%s)", pattern[6:], exc)
            return False
    return pattern.endswith("::*") and resource.startswith(pattern[:-1])


def _in_scope(scope: Scope, action: Action, resource: str, principal: str) -> bool:
    if scope.resource and not matches_resource(scope.resource, resource):
        return False
    if scope.principal and scope.principal != principal:
        return False
    return action in scope.action_list()


def is_action_allowed(
    policy: Sequence[AccessRule], action: Action, resource: Protected, user: Principal | None
) -> bool:
    """The first rule whose scope and conditions match decides; none matching denies. No user
    (no authentication): allowed. An empty policy is the default policy."""
    if user is None:
        return True
    qualified = f"{resource.type}::{resource.identifier}"
    for rule in policy or default_policy():
        scope = rule.forbid or rule.permit
        if scope is not None and _in_scope(scope, action, qualified, user.principal) and rule.applies(resource, user):
            return rule.permit is not None
    return False


def route_matches(route: str, patterns: str | list[str]) -> bool:
    """`*`, an exact path, a `prefix*`, or `regex:<pattern>` (re.match)."""
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        if pattern == "*" or pattern == route:
            return True
        if pattern.startswith("regex:"):
            try:
                if re.match(pattern[6:], route):
                    return True
            except re.error as exc:
                log.warning("Invalid regex pattern in route_policy: %s (%s); skipped", pattern[6:], exc)
        elif pattern.endswith("*") and route.startswith(pattern[:-1]):
            return True
    return False


def is_route_allowed(policy: Sequence[RouteAccessRule], route: str, user: Principal | None) -> bool:
    """No policy: every route. Else the first rule whose paths and conditions match decides; a rule
    with conditions never matches without a user; none matching denies."""
    if not policy:
        return True
    if route != "/" and route.endswith("/"):
        route = route.rstrip("/")
    for rule in policy:
        scope = rule.permit or rule.forbid
        if scope is None or not route_matches(route, scope.paths):
            continue
        if rule.when or rule.unless:
            if user is None:
                continue
            if rule.when and not rule.applies(None, user):
                continue
            if rule.unless and any(c.matches(None, user) for c in _conditions(rule.unless)):
                continue  # route rules: `unless` holds when none of its conditions does
        return rule.permit is not None
    return False


_R = TypeVar("_R", bound=BaseModel)


def parse_policies(
    access_policy: Sequence[Any], route_policy: Sequence[Any] = ()
) -> tuple[list[AccessRule], list[RouteAccessRule]]:
    """`server.auth`'s access_policy and route_policy as rules (ValueError naming the rule at fault)."""
    rules = [_parsed(AccessRule, "access_policy", i, entry) for i, entry in enumerate(access_policy)]
    routes = [_parsed(RouteAccessRule, "route_policy", i, entry) for i, entry in enumerate(route_policy)]
    return rules, routes


def _parsed(model: type[_R], key: str, index: int, entry: Any) -> _R:
    try:
        return model.model_validate(entry)
    except ValueError as exc:
        raise ValueError(f"server.auth.{key}[{index}]: {_first_error(exc)}") from exc


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors(include_url=False)
        if found:
            where = ".".join(str(part) for part in found[0]["loc"])
            return f"{where + ': ' if where else ''}{found[0]['msg']}"
    return str(exc)
