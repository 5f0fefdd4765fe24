"""Llama Stack 0.7.1's access_policy and route_policy, read and evaluated as it does: the cases of its
tests/unit/server/test_access_control.py and the examples of its AccessRule/RouteAccessRule docs,
against security/policy.py; then Access and Visibility (security/access.py, storage/owners.py)."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from pocketstack.errors import NotFoundError, PermissionDeniedError
from pocketstack.security.access import FILE, MODEL, Access
from pocketstack.security.policy import (
    AccessRule,
    Action,
    RouteAccessRule,
    is_action_allowed,
    is_route_allowed,
    matches_resource,
    parse_condition,
    parse_policies,
)
from pocketstack.security.principal import User, reset_current_user, set_current_user
from pocketstack.storage.owners import Owner, Visibility, owner_values

RULES = TypeAdapter(list[AccessRule])
ROUTES = TypeAdapter(list[RouteAccessRule])


@dataclass(frozen=True)
class Model:
    identifier: str
    owner: Owner | None = None
    type: str = "model"


def policy(text: str) -> list[AccessRule]:
    return RULES.validate_python(yaml.safe_load(text))


def test_permit_when() -> None:
    rules = policy("""
    - permit:
        principal: user-1
        actions: [read]
      when: user in owners namespaces
    """)
    model = Model("mymodel", Owner("testuser", {"namespaces": ["foo"]}))
    assert is_action_allowed(rules, Action.READ, model, User("user-1", {"namespaces": ["foo"]}))
    assert not is_action_allowed(rules, Action.READ, model, User("user-1", {"namespaces": ["bar"]}))
    assert not is_action_allowed(rules, Action.READ, model, User("user-2", {"namespaces": ["foo"]}))


def test_permit_unless() -> None:
    rules = policy("""
    - permit:
        principal: user-1
        actions: [read]
        resource: model::*
      unless:
        - user not in owners namespaces
        - user in owners teams
    """)
    model = Model("mymodel", Owner("testuser", {"namespaces": ["foo"], "teams": ["ml-team"]}))
    assert is_action_allowed(rules, Action.READ, model, User("user-1", {"namespaces": ["foo"]}))
    assert not is_action_allowed(
        rules, Action.READ, model, User("user-1", {"namespaces": ["bar"], "teams": ["ml-team"]})
    )
    assert not is_action_allowed(rules, Action.READ, model, User("user-2", {"namespaces": ["foo"]}))


@pytest.mark.parametrize(("kind", "first", "second"), [("when", False, True), ("unless", True, False)])
def test_forbid_when_and_unless(kind: str, first: bool, second: bool) -> None:
    rules = policy(f"""
    - forbid:
        principal: user-1
        actions: [read]
      {kind}:
        user in owners namespaces
    - permit:
        actions: [read]
    """)
    model = Model("mymodel", Owner("testuser", {"namespaces": ["foo"]}))
    assert is_action_allowed(rules, Action.READ, model, User("user-1", {"namespaces": ["foo"]})) is first
    assert is_action_allowed(rules, Action.READ, model, User("user-1", {"namespaces": ["bar"]})) is second
    assert is_action_allowed(rules, Action.READ, model, User("user-2", {"namespaces": ["foo"]}))


@pytest.mark.parametrize(
    ("text", "owner", "allowed"),
    [
        ("when: user with admin in roles", None, "user-2"),
        ("unless: user with admin not in roles", None, "user-2"),
        ("when: user is owner", Owner("user-2", {"namespaces": ["foo"]}), "user-2"),
        ("unless: user is not owner", Owner("user-2", {"namespaces": ["foo"]}), "user-2"),
    ],
)
def test_attribute_and_owner_conditions(text: str, owner: Owner | None, allowed: str) -> None:
    rules = policy(f"""
    - permit:
        actions: [read]
      {text}
    """)
    model = Model("mymodel", owner)
    users = [
        User("user-1", {"roles": ["basic"]}),
        User("user-2", {"roles": ["admin"]}),
        User("user-3", {"namespaces": ["foo"]}),
        User("user-4", {}),
    ]
    assert [u.principal for u in users if is_action_allowed(rules, Action.READ, model, u)] == [allowed]


@pytest.mark.parametrize(
    "text",
    [
        "- permit: {actions: [read]}\n  forbid: {actions: [create]}",
        "- when: user is owner\n  unless: user with admin in roles",
        "- permit: {actions: [read]}\n  when: user is owner\n  unless: user with admin in roles",
        "- permit: {actions: [read]}\n  when: random words that are not valid",
        "- permit: {actions: [fly]}",
    ],
)
def test_invalid_rules_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        policy(text)


@pytest.mark.parametrize(
    "condition",
    [
        "user is owner",
        "user is not owner",
        "user with dev in teams",
        "user with default not in namespaces",
        "user in owners roles",
        "user not in owners projects",
        "resource is unowned",
    ],
)
def test_condition_reprs(condition: str) -> None:
    assert repr(parse_condition(condition)) == condition


def test_resource_patterns(caplog: pytest.LogCaptureFixture) -> None:
    assert matches_resource("model::llama-3-1b", "model::llama-3-1b")
    assert matches_resource("model::*", "model::llama-3-1b")
    assert matches_resource("regex:model::(llama|mistral)-.*", "model::mistral-7b")
    assert matches_resource("regex:model::llama-3\\.\\d+b", "model::llama-3.1b")
    assert not matches_resource("regex:model::llama-3$", "model::llama-3-1b")
    assert not matches_resource("regex:model::mistral-.*", "model::llama-3-1b")
    with caplog.at_level(logging.WARNING):
        assert not matches_resource("regex:[z-a]", "model::test/model-1")
    assert "Invalid regex pattern in access_policy" in caplog.text


def test_the_documented_model_policy() -> None:
    """Llama Stack's test_access_policy: per-principal grants, then forbid everything else."""
    rules = policy("""
    - permit:
        principal: user-1
        actions: [create, read, delete]
      description: user-1 has full access to all models
    - permit:
        principal: user-2
        actions: [read]
        resource: model::test_provider/model-1
    - forbid:
        actions: [create, read, delete]
    """)
    one, two = Model("test_provider/model-1"), Model("test_provider/model-2")
    user1, user2 = User("user-1", {"roles": ["admin"]}), User("user-2", {"roles": ["user"]})
    assert all(is_action_allowed(rules, a, m, user1) for a in (Action.READ, Action.DELETE) for m in (one, two))
    assert is_action_allowed(rules, Action.READ, one, user2)
    assert not is_action_allowed(rules, Action.READ, two, user2)
    assert not is_action_allowed(rules, Action.DELETE, one, user2)
    assert not is_action_allowed(rules, Action.CREATE, one, user2)
    assert not is_action_allowed(rules, Action.UPDATE, one, user1)  # no rule matches: denied


def test_default_policy_and_no_user() -> None:
    owned = Model("m", Owner("alice", {"teams": ["red"]}))
    assert is_action_allowed([], Action.DELETE, owned, User("alice", {}))
    assert is_action_allowed([], Action.READ, owned, User("carol", {"teams": ["red", "x"]}))
    assert not is_action_allowed([], Action.READ, owned, User("bob", {"teams": ["blue"], "other": ["red"]}))
    assert is_action_allowed([], Action.READ, Model("m"), User("bob", {}))  # unowned
    assert is_action_allowed(policy("- forbid: {actions: [read]}"), Action.READ, owned, None)  # no auth


def test_route_policy() -> None:
    routes = ROUTES.validate_python(
        yaml.safe_load("""
    - permit:
        paths: "/v1/chat/completions"
      when: user with developer in roles
    - permit:
        paths: ["/v1/files*", "/v1/models*"]
      when: user with user in roles
    - forbid:
        paths: "regex:/v1/(vector_stores|responses).*"
      unless: user with admin in roles
    - permit:
        paths: "*"
      when: user with admin in roles
    - permit:
        paths: /v1/health
    """)
    )
    dev, user, admin = (
        User("d", {"roles": ["developer"]}),
        User("u", {"roles": ["user"]}),
        User("a", {"roles": ["admin"]}),
    )
    assert is_route_allowed(routes, "/v1/chat/completions/", dev)  # the trailing slash is dropped
    assert not is_route_allowed(routes, "/v1/files", dev)
    assert is_route_allowed(routes, "/v1/files/file-1/content", user)
    assert not is_route_allowed(routes, "/v1/vector_stores", user)
    assert is_route_allowed(routes, "/v1/vector_stores", admin)
    assert is_route_allowed(routes, "/v1/health", None)
    assert not is_route_allowed(routes, "/v1/models", None)  # conditions never hold without a user
    assert is_route_allowed([], "/anything", None)


def test_policies_from_server_auth() -> None:
    rules, routes = parse_policies([{"permit": {"actions": ["read"]}}], [])
    assert len(rules) == 1 and routes == []
    with pytest.raises(ValueError, match=r"server.auth.access_policy\[0\]"):
        parse_policies([{"permit": {"actions": ["read"]}, "when": "user is happy"}])
    with pytest.raises(ValueError, match=r"server.auth.route_policy\[1\]"):
        parse_policies([], [{"permit": {"paths": "*"}}, {"permit": {"paths": "*"}, "forbid": {"paths": "*"}}])


def test_access_checks_hide_then_forbid() -> None:
    access = Access(policy("- permit: {actions: [read]}\n- permit: {actions: [delete]}\n  when: user is owner"))
    missing = NotFoundError("no such file")
    owner = Owner("alice", {})
    token = set_current_user(User("bob", {}))
    try:
        access.check(Action.READ, FILE, "file-1", owner, missing)
        with pytest.raises(PermissionDeniedError, match="cannot perform action 'delete'"):
            access.check(Action.DELETE, FILE, "file-1", owner, missing)
        assert access.owner() == Owner("bob", {})
    finally:
        reset_current_user(token)
    hidden = Access(policy("- permit: {actions: [read]}\n  when: user is owner"))
    token = set_current_user(User("bob", {}))
    try:
        with pytest.raises(NotFoundError):
            hidden.check(Action.DELETE, MODEL, "m", owner, missing)
    finally:
        reset_current_user(token)
    Access().check(Action.DELETE, FILE, "file-1", owner, missing)  # no user: no check
    assert Access().owner() is None


def test_visibility_in_sql_matches_the_default_policy() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (id TEXT, owner_principal TEXT NOT NULL DEFAULT '', owner_attributes TEXT)")
    rows = {
        "free": None,
        "alice": Owner("alice", {"teams": ["red"]}),
        "bob": Owner("bob", {"teams": ["blue"], "roles": ["x"]}),
    }
    for name, owner in rows.items():
        db.execute("INSERT INTO t VALUES (?, ?, ?)", (name, *owner_values(owner)))
    for user, seen in (
        (User("alice", {}), {"free", "alice"}),
        (User("carol", {"teams": ["red"]}), {"free", "alice"}),
        (User("dan", {"roles": ["x"], "other": ["blue"]}), {"free", "bob"}),
    ):
        token = set_current_user(user)
        try:
            visible = Access().visibility(FILE)
        finally:
            reset_current_user(token)
        clause, params = visible.clause()
        found = {r[0] for r in db.execute(f"SELECT id FROM t WHERE {clause}", params)}
        assert found == seen == {name for name, owner in rows.items() if visible.sees(name, owner)}
    assert Visibility().clause() == (None, [])
