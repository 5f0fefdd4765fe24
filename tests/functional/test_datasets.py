"""Datasets and DatasetIO through the official `llama_stack_client` (0.7.5): register from rows, an
uploaded CSV file and a data: JSONL URI; iterrows pages; append; unregister; another user's dataset
hidden; bad input (unknown dataset, malformed rows, huggingface:// offline)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_stack_client
import openai
import pytest
from aiohttp.test_utils import TestClient

from pocketstack.app import create_app
from pocketstack.config import ConfigError
from tests.support.config import edge_providers_with, edge_with
from tests.support.users import As

pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # Llama Stack marks register/unregister

# The built-in benchmarks' datasets, listed as the datasetio provider's own wherever eval is served.
BUILTIN = ["pocketstack/arithmetic", "pocketstack/multiple-choice"]
QA: list[dict[str, object]] = [{"question": f"What is {n} + {n}?", "answer": str(2 * n)} for n in range(7)]


@pytest.fixture
async def server(aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(edge_with()))  # type: ignore[no-any-return]


async def test_rows_register_page_append_unregister(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    dataset = await lls.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": QA}, dataset_id="sums", metadata={"k": "v"}
    )
    assert dataset.identifier == "sums" and dataset.provider_id == "localfs-datasets" and dataset.type == "dataset"
    assert dataset.purpose == "eval/question-answer" and dataset.metadata == {"k": "v"}
    assert [d.identifier for d in await lls.beta.datasets.list()] == [*BUILTIN, "sums"]
    assert (await lls.beta.datasets.retrieve("sums")).identifier == "sums"

    first = await lls.beta.datasets.iterrows("sums", start_index=0, limit=3)
    assert first.data == QA[:3] and first.has_more
    last = await lls.beta.datasets.iterrows("sums", start_index=6, limit=3)
    assert last.data == QA[6:] and not last.has_more
    everything = await lls.beta.datasets.iterrows("sums")
    assert everything.data == QA and not everything.has_more

    await lls.beta.datasets.appendrows("sums", rows=[{"question": "1 + 1?", "answer": "2"}])
    assert (await lls.beta.datasets.iterrows("sums", start_index=7, limit=-1)).data == [
        {"question": "1 + 1?", "answer": "2"}
    ]
    await lls.beta.datasets.unregister("sums")
    assert [d.identifier for d in await lls.beta.datasets.list()] == BUILTIN
    with pytest.raises(llama_stack_client.NotFoundError):
        await lls.beta.datasets.iterrows("sums")


async def test_uploaded_csv_file_and_data_uri(
    lls: llama_stack_client.AsyncLlamaStackClient, oai: openai.AsyncOpenAI
) -> None:
    lines = ["question,answer"] + [f'"What is {n}, doubled?",{2 * n}' for n in range(1200)]
    uploaded = await oai.files.create(
        file=("qa.csv", io.BytesIO("\n".join(lines).encode()), "text/csv"), purpose="assistants"
    )
    dataset = await lls.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "uri", "uri": uploaded.id}
    )
    assert dataset.identifier.startswith("dataset-") and dataset.source.type == "uri"
    page = await lls.beta.datasets.iterrows(dataset.identifier, start_index=1199, limit=5)
    assert page.data == [{"question": "What is 1199, doubled?", "answer": "2398"}] and not page.has_more

    jsonl = "\n".join(json.dumps(row) for row in QA).encode()
    uri = "data:application/jsonl;base64," + base64.b64encode(jsonl).decode()
    from_uri = await lls.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "uri", "uri": uri}, dataset_id="from-uri"
    )
    assert from_uri.source.type == "uri"
    assert (await lls.beta.datasets.iterrows("from-uri", limit=2)).data == QA[:2]
    csv_uri = "data:text/csv;base64," + base64.b64encode(b"a,b\n1,2\n").decode()
    await lls.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "uri", "uri": csv_uri}, dataset_id="c"
    )
    assert (await lls.beta.datasets.iterrows("c")).data == [{"a": "1", "b": "2"}]


async def test_bad_input(lls: llama_stack_client.AsyncLlamaStackClient) -> None:
    with pytest.raises(llama_stack_client.NotFoundError) as missing:
        await lls.beta.datasets.retrieve("nope")
    assert "Dataset 'nope' not found" in str(missing.value)
    with pytest.raises(llama_stack_client.NotFoundError):
        await lls.beta.datasets.appendrows("nope", rows=[{"a": 1}])
    with pytest.raises(llama_stack_client.BadRequestError) as hf:
        await lls.beta.datasets.register(
            purpose="eval/question-answer", source={"type": "uri", "uri": "huggingface://datasets/x/y?split=train"}
        )
    assert "remote::huggingface" in str(hf.value) and "network" in str(hf.value)
    bad = "\n".join(['{"a": 1}', '{"a": 2}', "not json"]).encode()
    with pytest.raises(llama_stack_client.BadRequestError) as malformed:
        await lls.beta.datasets.register(
            purpose="eval/question-answer",
            source={"type": "uri", "uri": "data:application/jsonl;base64," + base64.b64encode(bad).decode()},
            dataset_id="bad",
        )
    assert "Row 2" in str(malformed.value) and "line 3" in str(malformed.value)
    ragged = base64.b64encode(b"a,b\n1,2\n1,2,3\n").decode()
    with pytest.raises(llama_stack_client.BadRequestError) as short:
        await lls.beta.datasets.register(
            purpose="eval/question-answer", source={"type": "uri", "uri": "data:text/csv;base64," + ragged}
        )
    assert "Row 1" in str(short.value)
    latin1 = base64.b64encode("a\ncaf\u00e9\n".encode("latin-1")).decode()
    with pytest.raises(llama_stack_client.BadRequestError) as undecodable:
        await lls.beta.datasets.register(
            purpose="eval/question-answer", source={"type": "uri", "uri": "data:text/csv;base64," + latin1}
        )
    assert "UTF-8" in str(undecodable.value)
    assert [d.identifier for d in await lls.beta.datasets.list()] == BUILTIN  # nothing half-registered
    await lls.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": QA}, dataset_id="d"
    )
    with pytest.raises(llama_stack_client.ConflictError):
        await lls.beta.datasets.register(
            purpose="eval/question-answer", source={"type": "rows", "rows": QA}, dataset_id="d"
        )
    with pytest.raises(llama_stack_client.BadRequestError) as row:
        await lls.beta.datasets.appendrows("d", rows=[{"a": 1}, 3])  # type: ignore[list-item]
    assert "rows.1" in str(row.value) or "Row 1" in str(row.value)
    assert len((await lls.beta.datasets.iterrows("d")).data) == len(QA)


async def test_config_datasets_load_once(aiohttp_client: Callable[..., Any]) -> None:
    config = edge_with(
        registered_resources={
            "datasets": [
                {"dataset_id": "cfg", "purpose": "eval/messages-answer", "source": {"type": "rows", "rows": QA[:2]}}
            ]
        }
    )
    server = await aiohttp_client(create_app(config))
    as_anyone = As(server, None)
    assert (await as_anyone.ok("GET", "/v1beta/datasetio/iterrows/cfg"))["data"] == QA[:2]
    status, answer = await as_anyone.call("DELETE", "/v1beta/datasets/cfg")
    assert status == 400 and "registered_resources" in answer["error"]["message"]


def test_config_dataset_entry_is_checked() -> None:
    with pytest.raises((ConfigError, ValueError)):
        edge_with(registered_resources={"datasets": [{"dataset_id": "x", "purpose": "nope", "source": {}}]})


async def test_another_users_dataset_is_hidden(alice: As, bob: As) -> None:
    body = {"purpose": "eval/question-answer", "source": {"type": "rows", "rows": QA}, "dataset_id": "alices"}
    await alice.ok("POST", "/v1beta/datasets", body)
    assert [d["identifier"] for d in (await alice.ok("GET", "/v1beta/datasets"))["data"]] == [*BUILTIN, "alices"]
    assert [d["identifier"] for d in (await bob.ok("GET", "/v1beta/datasets"))["data"]] == BUILTIN
    await bob.hidden("GET", "/v1beta/datasets/alices", "alices", "missing")
    await bob.hidden("GET", "/v1beta/datasetio/iterrows/alices", "alices", "missing")
    await bob.hidden("POST", "/v1beta/datasetio/append-rows/alices", "alices", "missing", {"rows": [{"a": 1}]})
    await bob.hidden("DELETE", "/v1beta/datasets/alices", "alices", "missing")
    assert len((await alice.ok("GET", "/v1beta/datasetio/iterrows/alices"))["data"]) == len(QA)
    status, _ = await alice.call("DELETE", "/v1beta/datasets/alices")
    assert status == 204


async def test_local_paths_only_inside_allowed_dirs(aiohttp_client: Callable[..., Any], tmp_path: Path) -> None:
    allowed, elsewhere = tmp_path / "data", tmp_path / "private"
    allowed.mkdir()
    elsewhere.mkdir()
    (allowed / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in QA))
    (elsewhere / "secret.csv").write_text("a,b\n1,2\n")
    (allowed / "link.csv").symlink_to(elsewhere / "secret.csv")
    datasetio = [
        {
            "provider_id": "localfs-datasets",
            "provider_type": "inline::localfs",
            "config": {"allowed_dirs": [str(allowed)]},
        }
    ]
    server = await aiohttp_client(create_app(edge_with(providers=edge_providers_with(datasetio=datasetio))))
    anyone = As(server, None)

    def body(uri: str) -> dict[str, Any]:
        return {"purpose": "eval/question-answer", "source": {"type": "uri", "uri": uri}, "dataset_id": "local"}

    await anyone.ok("POST", "/v1beta/datasets", body(str(allowed / "qa.jsonl")))
    assert (await anyone.ok("GET", "/v1beta/datasetio/iterrows/local"))["data"] == QA
    await anyone.call("DELETE", "/v1beta/datasets/local")
    await anyone.ok("POST", "/v1beta/datasets", body((allowed / "qa.jsonl").as_uri()))
    for refused in (elsewhere / "secret.csv", allowed / "link.csv", allowed / ".." / "private" / "secret.csv"):
        status, answer = await anyone.call("POST", "/v1beta/datasets", body(str(refused)) | {"dataset_id": "x"})
        assert status == 400 and answer["error"]["code"] == "path_not_allowed", answer
    status, answer = await anyone.call("POST", "/v1beta/datasets", body("relative/qa.jsonl") | {"dataset_id": "x"})
    assert status == 400
    default = await aiohttp_client(create_app(edge_with()))
    status, answer = await As(default, None).call("POST", "/v1beta/datasets", body(str(allowed / "qa.jsonl")))
    assert status == 400 and "none configured" in answer["error"]["message"]
