"""The datasetio contract: a provider stores a dataset's rows once and pages through them.

Rows reach a provider as a lazy iterator (`read_rows` over a binary stream: CSV, JSONL or a
JSON array), so a large file is read a batch at a time and never held whole. A row that is not
a JSON object, or a CSV line that does not fit its header, is a BadRequestError naming the row.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from pocketstack.errors import BadRequestError
from pocketstack.providers.base import Provider

RowFormat = Literal["csv", "jsonl", "json"]
Row = dict[str, Any]


class DatasetIOProvider(Provider, Protocol):
    async def append(self, dataset_id: str, rows: Iterator[Row]) -> int:
        """Store `rows` after the dataset's last (all of them or, on an error, none); how many were stored."""
        ...

    async def page(self, dataset_id: str, start_index: int, limit: int | None) -> tuple[list[Row], bool]:
        """Rows from `start_index` (at most `limit`, every one when None) and whether more follow."""
        ...

    async def count(self, dataset_id: str) -> int: ...

    def local_file(self, uri: str) -> Path:
        """The file an absolute path or file:// URI names, when it lies in a folder the provider allows."""
        ...

    async def drop(self, dataset_id: str) -> None: ...


def _malformed(index: int, why: str) -> BadRequestError:
    return BadRequestError(f"Row {index} is malformed: {why}.", param="rows", code="malformed_row")


def checked_rows(rows: list[Any]) -> Iterator[Row]:
    """Rows given in a request, each a JSON object."""
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise _malformed(index, f"expected a JSON object, got {type(row).__name__}")
        yield row


def _csv_rows(stream: BinaryIO) -> Iterator[Row]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    index = 0
    try:
        header = next(reader, None)
        if header is None:
            return
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise _malformed(index, f"line {reader.line_num} has {len(fields)} fields, the header {len(header)}")
            yield dict(zip(header, fields, strict=True))
            index += 1
    except (csv.Error, UnicodeDecodeError) as exc:
        raise _malformed(index, f"not readable as UTF-8 CSV near line {reader.line_num} ({exc})") from None


def _jsonl_rows(stream: BinaryIO) -> Iterator[Row]:
    index = 0
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _malformed(index, f"line {number} is not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise _malformed(index, f"line {number} is not a JSON object")
        yield row
        index += 1


def _json_rows(stream: BinaryIO) -> Iterator[Row]:
    try:
        data = json.load(stream)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"The dataset is not valid JSON: {exc}.", param="source") from None
    if isinstance(data, dict) and isinstance(data.get("rows", data.get("data")), list):
        data = data.get("rows", data.get("data"))
    if not isinstance(data, list):
        raise BadRequestError("A JSON dataset is an array of row objects.", param="source")
    yield from checked_rows(data)


def read_rows(stream: BinaryIO, row_format: RowFormat) -> Iterator[Row]:
    """The rows of a CSV, JSONL or JSON stream, read lazily (JSON, one document, is read whole)."""
    if row_format == "csv":
        return _csv_rows(stream)
    if row_format == "jsonl":
        return _jsonl_rows(stream)
    return _json_rows(stream)


def format_of(name: str, media_type: str | None = None) -> RowFormat | None:
    """The row format a file name or media type says, if any."""
    media = (media_type or "").split(";", 1)[0].strip().lower()
    lowered = name.lower()
    if media in {"text/csv", "csv"} or lowered.endswith(".csv"):
        return "csv"
    if media in {"application/jsonl", "application/x-ndjson", "application/ndjson", "application/x-jsonlines", "jsonl"}:
        return "jsonl"
    if lowered.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if media in {"application/json", "json"} or lowered.endswith(".json"):
        return "json"
    return None
