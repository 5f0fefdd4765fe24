"""`pocketstack traces`: the last requests as trees of spans with their durations, in the terminal.

It reads the local span store of the config's state database (`$POCKETSTACK_HOME`, or `--home`)
read-only, so it works offline and while a server runs (SQLite's WAL lets a reader in beside the
writer; no migration, no lock taken), or, with `--url`, asks a running server's Telemetry API
(GET /v1/telemetry/traces), which shows the key's user their own traces. Lines fit 80 columns:

    2025-06-15 17:07:40  trace 4bf92f3577b34da6a3ce929d0e0e4736
    POST /v1/chat/completions 200                                       412.3 ms
      Inference.openai_chat_completion                                  409.0 ms
        chat SmolLM2-135M-Instruct  in=12 out=40 tokens                 405.1 ms
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from pocketstack.config import StackConfig
from pocketstack.errors import StartupError
from pocketstack.storage.spans import OPEN, SpanReader, SpanRecord, tree_order
from pocketstack.storage.sqlite import open_database_readonly

WIDTH = 80
INDENT = "  "
Trace = tuple[SpanRecord, list[SpanRecord]]  # a trace's root and its spans


def _label(span: SpanRecord) -> str:
    """The span's name and what its attributes say in a few words: a status code, token counts, an error."""
    attributes = span.attributes
    label = span.name
    if "http.response.status_code" in attributes:
        label += f" {attributes['http.response.status_code']}"
    tokens_in, tokens_out = attributes.get("gen_ai.usage.input_tokens"), attributes.get("gen_ai.usage.output_tokens")
    if tokens_in is not None or tokens_out is not None:
        label += (
            f"  in={'?' if tokens_in is None else tokens_in} out={'?' if tokens_out is None else tokens_out} tokens"
        )
    if span.status == "error":
        label += "  ERROR" + (f": {span.status_message}" if span.status_message else "")
    return label


def _line(depth: int, span: SpanRecord) -> str:
    duration = "running" if span.status == OPEN else f"{(span.end_time - span.start_time) * 1000:.1f} ms"
    room = WIDTH - len(duration) - 2
    left = f"{INDENT * depth}{_label(span)}"
    if len(left) > room:
        left = left[: room - 1] + "…"
    return f"{left:<{room}}  {duration}"


def render(traces: list[Trace]) -> str:
    """The traces as the command prints them (newest first, as given)."""
    if not traces:
        return "no traces recorded yet\n"
    blocks = []
    for root, spans in traces:
        began = datetime.fromtimestamp(root.start_time).strftime("%Y-%m-%d %H:%M:%S")
        lines = [f"{began}  trace {root.trace_id}"]
        lines += [_line(depth, span) for depth, span in tree_order(spans or [root])]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


async def local_traces(config: StackConfig, limit: int, trace_id: str | None) -> list[Trace]:
    path = config.storage.metadata_db()
    if not path.exists():
        return []
    database = open_database_readonly(path)
    try:
        reader = SpanReader(database, None)  # the machine's owner reads every trace on it
        if trace_id is not None:
            root = await reader.root_of(trace_id)
            roots = [root] if root is not None else []
            if not roots:
                raise StartupError(f"no trace {trace_id} in {path}")
        else:
            roots = await reader.roots(limit=limit)
        spans = await reader.trace_spans([root.trace_id for root in roots])
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # a state database from before telemetry
        raise StartupError(f"cannot read {path}: {exc}") from exc
    finally:
        database.close()
    return [(root, spans[root.trace_id]) for root in roots]


def _record(span: dict[str, Any], status: str | None = None) -> SpanRecord:
    start = datetime.fromisoformat(span["start_time"]).timestamp()
    end = span.get("end_time")
    return SpanRecord(
        trace_id=span["trace_id"],
        span_id=span.get("span_id") or span["root_span_id"],
        parent_span_id=span.get("parent_span_id"),
        name=span.get("name", "?"),
        kind="internal",
        start_time=start,
        end_time=datetime.fromisoformat(end).timestamp() if end else start,
        status=(status or span.get("status") or "ok") if end else OPEN,
        attributes=span.get("attributes") or {},
    )


async def remote_traces(
    url: str, api_key: str | None, limit: int, trace_id: str | None, headers: Mapping[str, str] | None = None
) -> list[Trace]:
    base = url.rstrip("/")
    headers = {**(headers or {}), **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    path = f"/v1/telemetry/traces/{quote(trace_id, safe='')}" if trace_id else f"/v1/telemetry/traces?limit={limit}"
    try:
        async with aiohttp.ClientSession(headers=headers) as session, session.get(base + path) as answer:
            body = await answer.json(content_type=None)
            if answer.status != 200:
                message = body.get("error", {}).get("message") if isinstance(body, dict) else None
                raise StartupError(f"{base} answered {answer.status}: {message or body}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise StartupError(f"cannot reach {base}: {exc}") from exc
    found = [body] if trace_id else body["data"]
    return [(_record(trace), [_record(span) for span in trace.get("spans", [])]) for trace in found]


def traces(args: argparse.Namespace, load: Callable[[], StackConfig]) -> int:
    if args.limit < 1:
        raise StartupError("--limit must be at least 1")
    if args.url:
        found = asyncio.run(remote_traces(args.url, args.api_key, args.limit, args.trace))
    else:
        found = asyncio.run(local_traces(load(), args.limit, args.trace))
    print(render(found), end="")
    return 0
