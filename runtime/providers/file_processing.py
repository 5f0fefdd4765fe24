"""The file_processors contract, and text out of files: the one extractor vector-store ingestion and
POST /v1alpha/file-processors/process both use (apis/vector_io/ingest.py cuts the text into chunks).

PDF through pypdf, HTML without its scripts and styles, JSON and JSON Lines (checked to parse), CSV as
comma-separated lines, and text of every kind (markdown, reStructuredText, code...) as it is.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Protocol

from pocketstack.providers.base import Provider

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".log", ".py", ".js", ".ts", ".java", ".c", ".h",
                           ".cpp", ".go", ".rs", ".sh", ".yaml", ".yml", ".toml", ".ini", ".xml", ".tex"})  # fmt: skip


class UnsupportedFileError(ValueError):
    """The file's type cannot be turned into text (its status becomes failed: unsupported_file)."""


class InvalidFileError(ValueError):
    """The file claims a type its bytes do not have (failed: invalid_file)."""


@dataclass(frozen=True)
class Extracted:
    text: str
    method: str  # how it was read: pypdf, html, json, csv or text
    page_count: int | None = None  # a PDF's


class FileProcessorProvider(Provider, Protocol):
    """A file_processors provider: how files become text for POST /v1alpha/file-processors/process."""

    max_file_size_bytes: int  # larger files are refused (413)

    async def extract(self, path: Path, filename: str, content_type: str) -> Extracted: ...


class _TextOfHtml(HTMLParser):
    SKIPPED = frozenset({"script", "style", "noscript", "template"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1
        elif tag in ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "tr", "section", "article"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _decode(data: bytes, kind: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidFileError(f"the {kind} file is not UTF-8 text: {exc}") from exc


def extract(path: Path, filename: str, content_type: str) -> Extracted:
    """The file's text, read by its name's suffix or else its media type (blocking: run it in a thread)."""
    suffix = Path(filename).suffix.lower()
    media = content_type.split(";")[0].strip().lower()
    if suffix == ".pdf" or media == "application/pdf":
        from pypdf import PdfReader  # loads with the first PDF
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(path)
            pages = [page.extract_text() or "" for page in reader.pages]
        except (PdfReadError, ValueError, KeyError) as exc:
            raise InvalidFileError(f"the PDF cannot be read: {exc}") from exc
        return Extracted("\n\n".join(pages), "pypdf", len(pages))
    data = path.read_bytes()
    if suffix in (".html", ".htm") or media in ("text/html", "application/xhtml+xml"):
        parser = _TextOfHtml()
        parser.feed(_decode(data, "HTML"))
        return Extracted(re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip(), "html")
    if suffix in (".json", ".jsonl") or media in ("application/json", "application/jsonl"):
        text = _decode(data, "JSON")
        try:
            for line in text.splitlines() if suffix == ".jsonl" or media == "application/jsonl" else [text]:
                if line.strip():
                    json.loads(line)
        except ValueError as exc:
            raise InvalidFileError(f"the JSON file does not parse: {exc}") from exc
        return Extracted(text, "json")
    if suffix == ".csv" or media == "text/csv":
        rows = csv.reader(io.StringIO(_decode(data, "CSV")))
        return Extracted("\n".join(", ".join(cell.strip() for cell in row) for row in rows), "csv")
    if suffix in TEXT_SUFFIXES or media.startswith("text/"):
        return Extracted(_decode(data, "text"), "text")
    raise UnsupportedFileError(f"unsupported file type '{suffix or media}' (text, markdown, html, json, csv, pdf)")
