"""The span store's reads (storage/spans.py): traces by their roots (a parent the store lacks makes a root),
attribute filters, order, paging, subtrees to a depth, visibility; retention keeps trees whole; the
queries use the indexes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pocketstack.errors import BadRequestError
from pocketstack.storage import Database, open_database
from pocketstack.storage.owners import Owner, Visibility
from pocketstack.storage.spans import AttributeFilter, SpanReader, SpanStore, tree_order
from tests.support.traces import chat_request, new_span_id

ALICE, BOB = Owner("alice", {"teams": ["red"]}), Owner("bob", {"teams": ["blue"]})
NOW = 1_750_000_000.0


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "state.db")
    yield database
    database.close()


async def test_traces_newest_first_filtered_and_paged(database: Database) -> None:
    store = SpanStore(database)
    old = chat_request(NOW, ALICE, model="a/one", tokens=(5, 6))
    new = chat_request(NOW + 10, ALICE, model="a/two", tokens=(50, 60))
    store.add_spans_blocking([*old, *new])
    reader = SpanReader(database, None)
    roots = await reader.roots()
    assert [r.span_id for r in roots] == [new[0].span_id, old[0].span_id]
    assert [r.span_id for r in await reader.roots(order_by=["start_time"])] == [old[0].span_id, new[0].span_id]
    assert [r.span_id for r in await reader.roots(limit=1, offset=1)] == [old[0].span_id]
    # a trace matches when one of its spans satisfies every filter
    by_model = await reader.roots([AttributeFilter("gen_ai.request.model", "eq", "a/one")])
    assert [r.trace_id for r in by_model] == [old[0].trace_id]
    many = await reader.roots([AttributeFilter("gen_ai.usage.input_tokens", "gt", 10)])
    assert [r.trace_id for r in many] == [new[0].trace_id]
    both = [AttributeFilter("gen_ai.usage.input_tokens", "lt", 10), AttributeFilter("http.route", "ne", "x")]
    assert await reader.roots(both) == []  # not on one span
    assert len(await reader.roots([AttributeFilter("missing", "eq", None)])) == 2
    with pytest.raises(BadRequestError, match="cannot order traces by 'name'"):
        await reader.roots(order_by=["name"])


async def test_a_missing_parent_makes_a_root_and_subtrees_stop_at_depth(database: Database) -> None:
    client_span = new_span_id()  # the caller's traceparent: only the caller has that span
    spans = chat_request(NOW, None, client_parent=client_span)
    SpanStore(database).add_spans_blocking(spans)
    reader = SpanReader(database, None)
    root = await reader.root_of(spans[0].trace_id)
    assert root is not None and root.span_id == spans[0].span_id and root.parent_span_id == client_span
    whole = await reader.subtree(root)
    assert [(depth, span.span_id) for depth, span in whole] == [(1, s.span_id) for s in spans[:1]] + [
        (2, spans[1].span_id),
        (3, spans[2].span_id),
    ]
    assert [span.span_id for _, span in await reader.subtree(root, max_depth=2)] == [s.span_id for s in spans[:2]]
    below = await reader.subtree(spans[1])
    assert [(depth, span.span_id) for depth, span in below] == [(1, spans[1].span_id), (2, spans[2].span_id)]
    assert [depth for depth, _ in tree_order(spans)] == [0, 1, 2]


async def test_each_user_sees_their_own(database: Database) -> None:
    alices, bobs = chat_request(NOW, ALICE), chat_request(NOW + 1, BOB)
    SpanStore(database).add_spans_blocking([*alices, *bobs])
    for visible in (Visibility(principal="alice"), Visibility(keep=lambda _id, owner: owner == ALICE)):
        reader = SpanReader(database, visible)
        assert [r.trace_id for r in await reader.roots()] == [alices[0].trace_id]
        assert await reader.root_of(bobs[0].trace_id) is None
        assert await reader.span(bobs[2].span_id) is None
        assert (await reader.span(alices[2].span_id)) is not None
        assert len(await reader.metric_spans(NOW - 1, NOW + 5, ["gen_ai.usage.input_tokens"])) == 1
        with_bobs_model = [AttributeFilter("gen_ai.request.model", "eq", bobs[2].attributes["gen_ai.request.model"])]
        assert [r.trace_id for r in await reader.roots(with_bobs_model)] == [alices[0].trace_id]
    shared = SpanReader(database, Visibility(principal="carol", shared={"teams": ["red"]}))
    assert [r.trace_id for r in await shared.roots()] == [alices[0].trace_id]


def test_retention_drops_whole_trees(database: Database) -> None:
    store = SpanStore(database)
    old, kept = chat_request(NOW - 3600, ALICE), chat_request(NOW, ALICE)
    # the old trace's last span arrives later and starts after the cutoff: it goes with its root
    late = replace(old[-1], start_time=NOW - 1, end_time=NOW)
    store.add_spans_blocking([*old[:-1], late, *kept])
    assert store.trim_blocking(max_age_s=60, max_spans=1000, now=NOW) == 3
    rows = database.transaction_blocking([("SELECT DISTINCT trace_id FROM spans", ())])
    assert [row["trace_id"] for row in rows] == [kept[0].trace_id]
    third = chat_request(NOW + 1, ALICE)
    store.add_spans_blocking(third)
    assert store.trim_blocking(max_age_s=3600, max_spans=4, now=NOW + 2) == 3  # the oldest whole trace
    rows = database.transaction_blocking([("SELECT DISTINCT trace_id FROM spans", ())])
    assert [row["trace_id"] for row in rows] == [third[0].trace_id]


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("SELECT * FROM spans WHERE span_id = ?", "spans_by_span"),
        ("SELECT * FROM spans WHERE trace_id = ?", "spans_by_trace"),
        ("SELECT 1 FROM spans p WHERE p.trace_id = ? AND p.span_id = ?", "sqlite_autoindex_spans_1"),
        ("SELECT * FROM spans WHERE start_time >= ? AND start_time <= ?", "spans_by_start"),
    ],
)
def test_reads_use_an_index(database: Database, query: str, index: str) -> None:
    marks = query.count("?")
    plan = database.transaction_blocking([(f"EXPLAIN QUERY PLAN {query}", ("x",) * marks)])
    assert any(index in row["detail"] for row in plan), [row["detail"] for row in plan]
