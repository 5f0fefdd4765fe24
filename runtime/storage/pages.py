"""OpenAI's cursor pagination (`after` / `before` an id, `limit`, `order`) over a table with a `seq` column.

Every listed table keeps an AUTOINCREMENT `seq`: creation order that never repeats, so a cursor
stays valid while rows are added or removed around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pocketstack.errors import BadRequestError
from pocketstack.storage.sqlite import Database, Row


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    has_more: bool


async def page(
    database: Database,
    *,
    table: str,
    columns: str,
    where: Sequence[str] = (),
    params: Sequence[Any] = (),
    id_column: str = "id",
    after: str | None = None,
    before: str | None = None,
    limit: int,
    descending: bool,
    what: str = "item",
) -> Page:
    """One page of rows matching `where`; `after` pages forward in `order`, `before` backward."""
    clauses, values = list(where), list(params)
    if after is not None and before is not None:
        raise BadRequestError("give `after` or `before`, not both", param="before")
    cursor, backward = (after, False) if after is not None else (before, before is not None)
    if cursor is not None:
        found = await database.fetch(
            f"SELECT seq FROM {table} WHERE {' AND '.join([*clauses, f'{id_column} = ?'])}", (*values, cursor)
        )
        if not found:
            raise BadRequestError(f"No {what} '{cursor}' to page from.", param="before" if backward else "after")
        # forward in descending order, or backward in ascending order, means older rows
        clauses.append("seq < ?" if descending != backward else "seq > ?")
        values.append(found[0]["seq"])
    scan_descending = descending != backward
    condition = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = await database.fetch(
        f"SELECT {columns} FROM {table} {condition} ORDER BY seq {'DESC' if scan_descending else 'ASC'} LIMIT ?",
        (*values, limit + 1),
    )
    kept = rows[:limit]
    if backward:
        kept.reverse()  # the page just before the cursor, still in the requested order
    return Page(kept, len(rows) > limit)
