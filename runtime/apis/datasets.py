"""Datasets and DatasetIO (Llama Stack 0.7): registered in the resource registry, rows in a datasetio provider.

The registry keeps a dataset's purpose, source and metadata; its rows are stored once, by the
datasetio provider (`{type: rows}` sources are answered with their rows left out: read them with
iterrows). Sources: rows given, a `data:` URI (CSV, JSONL or JSON), or a file uploaded through the
Files API (`file-...`, or a URI ending in it), streamed into the provider a batch at a time.
"""

from __future__ import annotations

import base64
import io
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any, BinaryIO, cast
from urllib.parse import unquote_to_bytes

from pocketstack._generated import models, protocols
from pocketstack.apis.files import FilesApi
from pocketstack.config import DatasetInput
from pocketstack.core.registry import Resource, Source
from pocketstack.core.resources import DATASET, skipped_provider
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, ResourceNotFoundError
from pocketstack.providers.datasetio import DatasetIOProvider, Row, RowFormat, checked_rows, format_of, read_rows
from pocketstack.security.access import Action
from pocketstack.wire.fields import given

FILE_ID = re.compile(r"(?:^|/)(file-[A-Za-z0-9_-]+)(?:/content)?/?$")


def dataset_response(resource: Resource) -> models.Dataset:
    return models.Dataset.model_validate(
        {
            "identifier": resource.identifier,
            "provider_id": resource.provider_id,
            "provider_resource_id": resource.provider_resource_id,
            "type": "dataset",
            "purpose": resource.body["purpose"],
            "source": resource.body["source"],
            "metadata": resource.body.get("metadata", {}),
        }
    )


def _data_uri(uri: str) -> tuple[bytes, RowFormat]:
    header, comma, payload = uri[len("data:") :].partition(",")
    if not comma:
        raise BadRequestError("A data: URI is data:<media type>[;base64],<content>.", param="source.uri")
    parts = header.split(";")
    try:
        data = base64.b64decode(payload, validate=True) if "base64" in parts[1:] else unquote_to_bytes(payload)
    except ValueError as exc:
        raise BadRequestError(f"The data: URI's base64 content does not decode: {exc}.", param="source.uri") from None
    row_format = format_of("", parts[0]) or _sniff(data[:256])
    return data, row_format


def _sniff(head: bytes) -> RowFormat:
    text = head.lstrip()
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        return "jsonl"
    return "csv"


class DatasetsApi(protocols.Datasets, protocols.DatasetIO):
    def __init__(self, stack: Stack, files: FilesApi) -> None:
        self.stack = stack
        self.files = files
        self.table = stack.table(DATASET)

    def provider(self, provider_id: str | None = None) -> tuple[str, DatasetIOProvider]:
        instance = self.stack.provider_for("datasetio", provider_id, example="inline::localfs")
        return instance.config.provider_id, cast(DatasetIOProvider, instance.impl)

    async def _open(self, source: dict[str, Any], stack: ExitStack, provider: DatasetIOProvider) -> Iterator[Row]:
        """The source's rows, read lazily; the files it opens are closed with `stack`."""
        if source.get("type") == "rows":
            rows = source.get("rows")
            if not isinstance(rows, list):
                raise BadRequestError("A rows source has a `rows` array.", param="source.rows")
            return checked_rows(rows)
        uri = source.get("uri")
        if source.get("type") != "uri" or not isinstance(uri, str) or not uri:
            raise BadRequestError("A source is {type: uri, uri} or {type: rows, rows}.", param="source")
        if uri.startswith("huggingface://") or uri.startswith("hf://"):
            raise BadRequestError(
                f"'{uri}' is a Hugging Face dataset: it needs the network and the remote::huggingface "
                "datasetio provider, which this offline distribution does not run. Upload the data through "
                "the Files API, or give it as a data: URI or as rows.",
                param="source.uri",
                code="huggingface_needs_network",
            )
        if uri.startswith("data:"):
            data, row_format = _data_uri(uri)
            stream: BinaryIO = io.BytesIO(data)
            return read_rows(stream, row_format)
        if uri.startswith(("file://", "/")):
            path = provider.local_file(uri)
            handle = stack.enter_context(open(path, "rb"))  # noqa: SIM115 - closed by the ExitStack
            return read_rows(handle, format_of(path.name) or _sniff(handle.peek(256)))
        match = FILE_ID.search(uri)
        if match is None:
            raise BadRequestError(
                f"Unsupported dataset URI '{uri}': give a data: URI (CSV, JSONL, JSON), a Files API id (file-...) "
                "or a local path inside the datasetio provider's allowed_dirs.",
                param="source.uri",
            )
        file_id = match.group(1)
        found = await self.files.checked(file_id)
        body = await self.files.provider().content(file_id)
        handle = stack.enter_context(open(body.path, "rb"))  # noqa: SIM115 - closed by the ExitStack
        file_format = format_of(found.filename, body.media_type) or _sniff(handle.peek(256))
        return read_rows(handle, file_format)

    async def _register(
        self, dataset_id: str, purpose: str, source: dict[str, Any], metadata: dict[str, Any], provider_id: str | None
    ) -> Resource:
        provider_id, _ = self.provider(provider_id)
        body_source = {"type": "rows", "rows": []} if source.get("type") == "rows" else dict(source)
        body = {"purpose": purpose, "source": body_source, "metadata": metadata}
        return Resource(DATASET.type, dataset_id, provider_id, dataset_id, "api", 0, body)

    async def _load(self, resource: Resource, source: dict[str, Any]) -> None:
        _, provider = self.provider(resource.provider_id)
        with ExitStack() as stack:
            rows = await self._open(source, stack, provider)
            await provider.append(resource.provider_resource_id, rows)

    async def _declared(self, entry: DatasetInput, source: Source) -> Resource:
        """A dataset the config or PocketStack declares: registered as `source`, its rows loaded once."""
        resource = await self._register(
            entry.dataset_id, entry.purpose, entry.source, entry.metadata, entry.provider_id
        )
        resource = replace(resource, source=source)
        _, provider = self.provider(resource.provider_id)
        if await provider.count(resource.provider_resource_id) == 0:
            await self._load(resource, entry.source)
        return resource

    async def sync_builtin(self, entries: list[DatasetInput]) -> None:
        """Datasets PocketStack ships (the built-in benchmarks'): the datasetio provider's own, loaded once."""
        provider_id, _ = self.provider()
        entries = [entry.model_copy(update={"provider_id": provider_id}) for entry in entries]
        await self.table.sync_provider(provider_id, [await self._declared(entry, "provider") for entry in entries])

    async def sync_from_config(self) -> None:
        """Register `registered_resources.datasets`, loading each one's rows at the first start that lists it."""
        await self.table.sync_config(
            self.stack.config.registered_resources.datasets,
            lambda entry: self._declared(entry, "config"),
            name=lambda entry: entry.dataset_id,
            left_out=lambda entry: skipped_provider(self.stack.skipped, entry.provider_id),
        )

    async def list_datasets(self) -> models.ListDatasetsResponse:
        return models.ListDatasetsResponse(data=[dataset_response(r) for r in await self.table.all()])

    async def register_dataset(self, request: models.RegisterDatasetRequest) -> models.Dataset:
        metadata: dict[str, Any] = given(request.metadata) or {}
        dataset_id = given(request.dataset_id) or f"dataset-{uuid.uuid4()}"
        source = request.source.model_dump(mode="json")
        provider_id = metadata.get("provider_id")
        resource = await self._register(
            dataset_id, request.purpose.value, source, metadata, provider_id if isinstance(provider_id, str) else None
        )
        if source["type"] == "uri":
            with ExitStack() as stack:  # a source that cannot be read fails before anything is registered
                await self._open(source, stack, self.provider(resource.provider_id)[1])
        added = await self.table.add(resource)
        try:
            await self._load(added, source)
        except BaseException:
            await self.stack.registry.remove(DATASET.type, added.identifier)
            raise
        return dataset_response(added)

    async def get_dataset(self, request: models.GetDatasetRequest) -> models.Dataset:
        return dataset_response(await self.table.get(request.dataset_id))

    async def unregister_dataset(self, request: models.UnregisterDatasetRequest) -> None:
        resource = await self.table.get(request.dataset_id)
        await self.table.remove(resource)
        _, provider = self.provider(resource.provider_id)
        await provider.drop(resource.provider_resource_id)

    async def iterrows(self, request: models.IterrowsRequest) -> models.PaginatedRowsResponse:
        resource = await self.table.get(request.dataset_id)
        _, provider = self.provider(resource.provider_id)
        limit = given(request.limit)
        rows, has_more = await provider.page(
            resource.provider_resource_id, given(request.start_index) or 0, None if limit in (None, -1) else limit
        )
        return models.PaginatedRowsResponse(data=rows, has_more=has_more, url=None)

    async def append_rows(self, request: models.AppendRowsRequest) -> None:
        resource = await self.table.get(request.dataset_id)
        missing = ResourceNotFoundError(DATASET.noun, resource.identifier)
        self.stack.access.check(Action.UPDATE, self.table.owned, resource.identifier, resource.owner, missing)
        _, provider = self.provider(resource.provider_id)
        await provider.append(resource.provider_resource_id, checked_rows(list(request.rows)))
