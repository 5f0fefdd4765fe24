"""Files through the official `openai` client and raw HTTP: upload, list, get, content, delete, expiry."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import openai
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from pocketstack.app import create_app
from tests.support.config import edge_with
from tests.support.errors import assert_error_shape


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with(server={"max_upload_bytes": 1024 * 1024})))  # type: ignore[no-any-return]


async def test_upload_then_read_back(oai: openai.AsyncOpenAI, home: Path) -> None:
    content = b"The lighthouse keeper counts ships.\n" * 100
    uploaded = await oai.files.create(file=("notes.txt", io.BytesIO(content), "text/plain"), purpose="assistants")
    assert uploaded.id.startswith("file-") and uploaded.object == "file"
    assert uploaded.bytes == len(content) and uploaded.filename == "notes.txt" and uploaded.purpose == "assistants"
    assert uploaded.expires_at is None and abs(uploaded.created_at - time.time()) < 60
    assert (await oai.files.retrieve(uploaded.id)).model_dump() == uploaded.model_dump()
    assert (await oai.files.content(uploaded.id)).content == content
    assert (home / "files" / uploaded.id).read_bytes() == content
    assert not list((home / "files" / ".incoming").iterdir())  # the spool is empty: the upload was moved


async def test_list_pages_by_cursor_and_filters_by_purpose(oai: openai.AsyncOpenAI) -> None:
    ids = []
    for index in range(5):
        purpose: Literal["batch", "assistants"] = "batch" if index == 2 else "assistants"
        created = await oai.files.create(file=(f"f{index}.txt", io.BytesIO(b"x" * (index + 1))), purpose=purpose)
        ids.append(created.id)
    first = await oai.files.list(limit=2)
    assert [f.id for f in first.data] == [ids[4], ids[3]] and first.has_more
    everything = [f.id async for f in await oai.files.list(limit=2)]  # the SDK follows the cursor
    assert everything == ids[::-1]
    ascending = await oai.files.list(order="asc", limit=10)
    assert [f.id for f in ascending.data] == ids and not ascending.has_more
    batch = await oai.files.list(purpose="batch")
    assert [f.id for f in batch.data] == [ids[2]]


async def test_delete_removes_metadata_and_bytes(oai: openai.AsyncOpenAI, home: Path) -> None:
    uploaded = await oai.files.create(file=("gone.txt", io.BytesIO(b"bye")), purpose="assistants")
    deleted = await oai.files.delete(uploaded.id)
    assert deleted.id == uploaded.id and deleted.deleted and deleted.object == "file"
    assert not (home / "files" / uploaded.id).exists()
    with pytest.raises(openai.NotFoundError):
        await oai.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        await oai.files.delete(uploaded.id)


async def test_expires_after_is_kept_and_enforced(
    oai: openai.AsyncOpenAI, server: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    uploaded = await oai.files.create(
        file=("soon.txt", io.BytesIO(b"soon")),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert uploaded.expires_at == uploaded.created_at + 3600
    later = time.time() + 7200
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(openai.NotFoundError):
        await oai.files.retrieve(uploaded.id)
    listed = await oai.files.list()
    assert uploaded.id not in [f.id for f in listed.data]
    assert not (home / "files" / uploaded.id).exists()  # the sweep removed the bytes too


async def test_oversize_upload_is_413_and_leaves_nothing(server: TestClient[Any, Any], home: Path) -> None:
    form = FormData()
    form.add_field("purpose", "assistants")
    form.add_field("file", b"x" * (1024 * 1024 + 1), filename="big.bin")
    response = await server.post("/v1/files", data=form)
    assert response.status == 413
    assert "server.max_upload_bytes" in assert_error_shape(await response.json())["message"]
    assert not list((home / "files" / ".incoming").iterdir())
    listed = await server.get("/v1/files")
    assert (await listed.json())["data"] == []


@pytest.mark.parametrize(
    ("form", "needle"),
    [
        ({"purpose": "assistants"}, "form field 'file': a file is required"),
        ({"file": ("a.txt", b"abc")}, "purpose"),
        ({"file": ("a.txt", b"abc"), "purpose": "nonsense"}, "purpose"),
        ({"file": ("a.txt", b"abc"), "purpose": "assistants", "expires_after[seconds]": "5"}, "expires_after"),
    ],
)
async def test_bad_uploads_are_400(server: TestClient[Any, Any], form: dict[str, Any], needle: str) -> None:
    data = FormData()
    for name, value in form.items():
        if isinstance(value, tuple):
            data.add_field(name, value[1], filename=value[0])
        else:
            data.add_field(name, value)
    response = await server.post("/v1/files", data=data)
    assert response.status == 400
    assert needle in assert_error_shape(await response.json())["message"]


async def test_json_body_instead_of_a_form_is_400(server: TestClient[Any, Any]) -> None:
    response = await server.post("/v1/files", json={"purpose": "assistants"})
    assert response.status == 400
    assert "multipart/form-data" in assert_error_shape(await response.json())["message"]


async def test_unknown_file_is_404_in_the_error_shape(server: TestClient[Any, Any]) -> None:
    for method, path in (("GET", "/v1/files/file-nope"), ("GET", "/v1/files/file-nope/content")):
        response = await server.request(method, path)
        assert response.status == 404
        assert "file-nope" in assert_error_shape(await response.json())["message"]


async def test_files_survive_a_restart(aiohttp_client: Callable[..., Any]) -> None:
    first = await aiohttp_client(create_app(edge_with()))
    form = FormData()
    form.add_field("purpose", "batch")
    form.add_field("file", b'{"a": 1}\n', filename="in.jsonl", content_type="application/jsonl")
    uploaded = await (await first.post("/v1/files", data=form)).json()
    await first.close()
    second = await aiohttp_client(create_app(edge_with()))
    content = await second.get(f"/v1/files/{uploaded['id']}/content")
    assert content.status == 200 and await content.read() == b'{"a": 1}\n'
    assert content.headers["Content-Type"].startswith("application/jsonl")
