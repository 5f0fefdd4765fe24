"""OpenAI's cursor pagination (`after` / `before` an id, `limit`, `order`) over a table with a `seq` column.

Every listed table keeps an AUTOINCREMENT `seq`: creation order that never repeats, so a cursor
stays valid while rows are added or removed around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pocketstack.errors import BadRequestError
from pocketstack.storage.owners import OWNER_COLUMNS, Visibility, owner_of, restrict
from pocketstack.storage.sqlite import Database, Row

SCAN_BATCH = 200  # rows read at once when a configured access policy decides row by row


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
    visible: Visibility | None = None,
    no_cursor: str | None = None,
) -> Page:
    """One page of rows matching `where` that `visible` lets the request see; `after` pages forward
    in `order`, `before` backward. A cursor the request cannot see is as unknown as a missing one
    (`no_cursor` words the error, else "No <what> '<id>' to page from.")."""
    clauses, values = list(where), list(params)
    where_visible = visible if visible is not None and visible.keep is None else None
    keep = visible.keep if visible is not None else None
    owned = f", seq, {id_column} AS _row_id, {OWNER_COLUMNS}" if keep is not None else ""
    restrict(where_visible, clauses, values)
    if after is not None and before is not None:
        raise BadRequestError("give `after` or `before`, not both", param="before")
    cursor, backward = (after, False) if after is not None else (before, before is not None)
    if cursor is not None:
        found = await database.fetch(
            f"SELECT seq{owned} FROM {table} WHERE {' AND '.join([*clauses, f'{id_column} = ?'])}", (*values, cursor)
        )
        if not found or (keep is not None and not keep(cursor, owner_of(found[0]))):
            message = (no_cursor or "No {what} '{cursor}' to page from.").format(what=what, cursor=cursor)
            raise BadRequestError(message, param="before" if backward else "after")
        # forward in descending order, or backward in ascending order, means older rows
        clauses.append("seq < ?" if descending != backward else "seq > ?")
        values.append(found[0]["seq"])
    scan_descending = descending != backward
    order = "DESC" if scan_descending else "ASC"
    if keep is None:
        condition = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await database.fetch(
            f"SELECT {columns} FROM {table} {condition} ORDER BY seq {order} LIMIT ?", (*values, limit + 1)
        )
    else:
        rows = await _scan(database, f"SELECT {columns}{owned} FROM {table}", clauses, values, order, limit + 1, keep)
    kept = rows[:limit]
    if backward:
        kept.reverse()  # the page just before the cursor, still in the requested order
    return Page(kept, len(rows) > limit)


async def _scan(
    database: Database, select: str, clauses: list[str], values: list[Any], order: str, wanted: int, keep: Any
) -> list[Row]:
    """Rows in `order` that `keep(id, owner)` accepts, read in batches until `wanted` are found."""
    found: list[Row] = []
    last: int | None = None
    while len(found) < wanted:
        batch_clauses, batch_values = list(clauses), list(values)
        if last is not None:
            batch_clauses.append("seq < ?" if order == "DESC" else "seq > ?")
            batch_values.append(last)
        condition = f"WHERE {' AND '.join(batch_clauses)}" if batch_clauses else ""
        rows = await database.fetch(
            f"{select} {condition} ORDER BY seq {order} LIMIT ?", (*batch_values, max(SCAN_BATCH, wanted))
        )
        found += [row for row in rows if keep(row["_row_id"], owner_of(row))]
        if len(rows) < max(SCAN_BATCH, wanted):
            break
        last = rows[-1]["seq"]
    return found
