"""Who owns a stored row, and which rows one request may see: plain values, computed above.

Every owned table has two columns (migration 0015): `owner_principal` ('' for an unowned row:
what the run config declared, or what was created while the server ran without authentication)
and `owner_attributes` (the owner's attributes as JSON: roles, teams, projects, namespaces...).
Storage never decides who may see what: security/access.py turns the request's user and the
access policy into a `Visibility`, and the stores apply it to their queries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

OWNER_COLUMNS = "owner_principal, owner_attributes"


@dataclass(frozen=True)
class Owner:
    """Llama Stack's owner of a resource: the principal that created it and its attributes then."""

    principal: str
    attributes: Mapping[str, Sequence[str]] = field(default_factory=dict)


def owner_values(owner: Owner | None) -> tuple[str, str | None]:
    """The two column values of `owner` (unowned: '' and NULL)."""
    if owner is None:
        return "", None
    return owner.principal, json.dumps({k: list(v) for k, v in owner.attributes.items()})


def owner_of(row: Any) -> Owner | None:
    """The owner a row's columns record; None when it is unowned."""
    principal = row["owner_principal"]
    if not principal:
        return None
    attributes = row["owner_attributes"]
    return Owner(principal, json.loads(attributes) if attributes else {})


@dataclass(frozen=True)
class Visibility:
    """Which rows one request may see.

    Nothing set: every row (the server runs without authentication). `principal`: a SQL filter
    (the default policy exactly): unowned rows, the principal's own, and rows whose owner shares one
    of the `shared` attribute values (same attribute name). `keep`: a configured access policy,
    evaluated per row in Python on the row's id and owner (rows are read in batches until a page
    is full).
    """

    principal: str | None = None
    shared: Mapping[str, Sequence[str]] = field(default_factory=dict)
    keep: Callable[[str, Owner | None], bool] | None = None

    def clause(self, prefix: str = "") -> tuple[str | None, list[Any]]:
        """The SQL condition (None: none) and its parameters; `prefix` qualifies the columns ("t.")."""
        if self.principal is None:
            return None, []
        column = f"{prefix}owner_principal"
        terms, params = [f"{column} = ''", f"{column} = ?"], [self.principal]
        for name, values in self.shared.items():
            if values:
                marks = ", ".join("?" for _ in values)
                terms.append(f"EXISTS (SELECT 1 FROM json_each({prefix}owner_attributes, ?) WHERE value IN ({marks}))")
                params += [f'$."{name}"', *values]
        return f"({' OR '.join(terms)})", params

    def sees(self, identifier: str, owner: Owner | None) -> bool:
        """The same decision for one row already read (a child whose parent was looked up)."""
        if self.keep is not None:
            return self.keep(identifier, owner)
        if self.principal is None or owner is None or owner.principal == self.principal:
            return True
        return any(v in self.shared.get(name, ()) for name, values in owner.attributes.items() for v in values)


EVERYONE = Visibility()


def restrict(visible: Visibility | None, clauses: list[str], params: list[Any], prefix: str = "") -> None:
    """Add `visible`'s SQL condition to a query's clauses and parameters (in place)."""
    if visible is None:
        return
    clause, values = visible.clause(prefix)
    if clause is not None:
        clauses.append(clause)
        params.extend(values)
