"""Cursor pagination over the list operations, and errors as exceptions (`PocketStackError`).

Every generated list call answers a page (`data`, `has_more`, `last_id`) or the error shape; these
walk the pages with `after` and raise the error with its body:

    for model in iterate_pages(list_chat_completions.sync_detailed, client=client, limit=50):
        ...
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from .sse import PocketStackError
from .types import UNSET, Response


def checked(response: Response[Any]) -> Any:
    """The parsed answer of a `..._detailed` call; a non-2xx answer raises PocketStackError with the body."""
    status = int(response.status_code)
    if status >= 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = {"error": {"message": response.content.decode("utf-8", "replace")}}
        raise PocketStackError(status, body)
    return response.parsed


def _next_after(page: Any) -> str | None:
    if not getattr(page, "has_more", False) or not page.data:
        return None
    last = getattr(page, "last_id", UNSET)
    if isinstance(last, str) and last:
        return last
    return str(page.data[-1].id)


def iterate_pages(call: Callable[..., Response[Any]], **params: Any) -> Iterator[Any]:
    """Every item of a list, page after page (`call` is an operation's `sync_detailed`)."""
    after = params.pop("after", UNSET)
    while True:
        page = checked(call(after=after, **params))
        yield from page.data
        cursor = _next_after(page)
        if cursor is None:
            return
        after = cursor


async def aiterate_pages(call: Callable[..., Awaitable[Response[Any]]], **params: Any) -> AsyncIterator[Any]:
    """The same, over an operation's `asyncio_detailed`."""
    after = params.pop("after", UNSET)
    while True:
        page = checked(await call(after=after, **params))
        for item in page.data:
            yield item
        cursor = _next_after(page)
        if cursor is None:
            return
        after = cursor
