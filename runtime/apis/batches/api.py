"""Batches (OpenAI's Batch API, Llama Stack's `Batches`): create, list, retrieve, cancel.

Llama Stack 0.7.1 serves it through its `inline::reference` provider; here it is an API of its
own, with no provider to configure: a batch line is a call to the other APIs in process (the
inference router, responses, moderations), which a provider may not reach (providers/base.py's
Routers hold no responses or safety API). Creation mirrors the reference provider: the endpoint and
`completion_window` are checked at once (400, its messages); the file is read and checked in the
background, so its errors fail the batch with OpenAI's `errors` list. With `idempotency_key`
(a body field, as Llama Stack reads it) the batch id is derived from the key: the same key and
parameters answer the existing batch, different parameters 409.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from pocketstack._generated import models, protocols
from pocketstack.apis.batches.calls import LineCaller, Moderator, Responder
from pocketstack.apis.batches.runner import BatchRunner
from pocketstack.apis.batches.validation import ENDPOINTS
from pocketstack.apis.files import FilesApi
from pocketstack.apis.inference.api import InferenceApi
from pocketstack.apis.models import ModelsApi
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, ConflictError, PocketStackError, ResourceNotFoundError
from pocketstack.security.access import BATCH, Action
from pocketstack.security.principal import current_user
from pocketstack.storage.batches import BatchStore, StoredBatch
from pocketstack.wire.fields import given

COMPLETION_WINDOW_S = 24 * 3600
ENDED = ("completed", "failed", "expired", "cancelled")
MAX_METADATA_KEYS, MAX_KEY_CHARS, MAX_VALUE_CHARS = 16, 64, 512  # OpenAI's metadata limits


def _batch(record: dict[str, Any]) -> models.Batch:
    return models.Batch.model_validate(record)


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA_KEYS:
        raise BadRequestError(f"metadata holds at most {MAX_METADATA_KEYS} keys.", param="metadata")
    for key, value in metadata.items():
        if len(key) > MAX_KEY_CHARS:
            raise BadRequestError(f"metadata keys are at most {MAX_KEY_CHARS} characters.", param="metadata")
        if len(value) > MAX_VALUE_CHARS:
            raise BadRequestError(f"metadata values are at most {MAX_VALUE_CHARS} characters.", param="metadata")


class BatchesApi(protocols.Batches):
    def __init__(
        self,
        stack: Stack,
        models_api: ModelsApi,
        inference: InferenceApi,
        files: FilesApi,
        responses: Responder,
        safety: Moderator,
    ) -> None:
        self.access = stack.access
        self.store = BatchStore(stack.database)
        self._models = models_api
        self.runner = BatchRunner(
            self.store, files, LineCaller(inference, responses, safety), self._model_exists, time.time
        )

    async def start(self) -> None:
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()

    async def _model_exists(self, model_id: str) -> bool:
        try:
            await self._models.get_model(models.GetModelRequest(model_id=model_id))
        except PocketStackError:
            return False
        return True

    async def _readable(self, batch_id: str, action: Action = Action.READ) -> StoredBatch:
        stored = await self.store.get(batch_id)
        missing = ResourceNotFoundError("batch", batch_id)
        if stored is None:
            raise missing
        self.access.check(action, BATCH, batch_id, stored.owner, missing)
        return stored

    async def create_batch(self, request: models.CreateBatchRequest) -> models.Batch:
        if request.endpoint not in ENDPOINTS:
            raise BadRequestError(
                f"Invalid endpoint: {request.endpoint}. Supported values: {', '.join(ENDPOINTS)}. "
                "Code: invalid_value. Param: endpoint",
                code="invalid_value",
                param="endpoint",
            )
        if request.completion_window != "24h":
            raise BadRequestError(
                f"Invalid completion_window: {request.completion_window}. Supported values are: 24h. "
                "Code: invalid_value. Param: completion_window",
                code="invalid_value",
                param="completion_window",
            )
        metadata = given(request.metadata)
        _check_metadata(metadata)
        self.access.check_create(BATCH, "")
        key = given(request.idempotency_key)
        batch_id = f"batch_{uuid.uuid4().hex[:16]}"
        if key is not None:
            user = current_user()
            # Llama Stack's id is sha256(key); a user's key is theirs alone when there are users
            scoped = key if user is None else f"{user.principal}\0{key}"
            batch_id = f"batch_{hashlib.sha256(scoped.encode()).hexdigest()[:24]}"
            existing = await self.store.get(batch_id)
            if existing is not None:
                found = existing.record
                if (
                    found["input_file_id"] != request.input_file_id
                    or found["endpoint"] != request.endpoint
                    or found["completion_window"] != request.completion_window
                    or found.get("metadata") != metadata
                ):
                    raise ConflictError(
                        f"Idempotency key '{key}' was previously used with different parameters. "
                        "Either use a new idempotency key or ensure all parameters match the original request."
                    )
                return _batch(found)
        now = self.runner.now()
        record = _batch(
            {
                "id": batch_id,
                "object": "batch",
                "endpoint": request.endpoint,
                "model": None,
                "errors": None,
                "input_file_id": request.input_file_id,
                "completion_window": request.completion_window,
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": now,
                "in_progress_at": None,
                "expires_at": now + COMPLETION_WINDOW_S,
                "finalizing_at": None,
                "completed_at": None,
                "failed_at": None,
                "expired_at": None,
                "cancelling_at": None,
                "cancelled_at": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
                "usage": None,
                "metadata": metadata,
            }
        ).model_dump(mode="json")
        await self.store.create(record, self.access.owner())
        self.runner.launch(batch_id)
        return _batch(record)

    async def list_batches(self, request: models.ListBatchesRequest) -> models.ListBatchesResponse:
        found, has_more = await self.store.page(
            after=given(request.after), limit=request.limit, visible=self.access.visibility(BATCH)
        )
        data = [_batch(stored.record) for stored in found]
        return models.ListBatchesResponse(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=has_more,
        )

    async def retrieve_batch(self, request: models.RetrieveBatchRequest) -> models.Batch:
        return _batch((await self._readable(request.batch_id)).record)

    async def cancel_batch(self, request: models.CancelBatchRequest) -> models.Batch:
        stored = await self._readable(request.batch_id, Action.UPDATE)
        record = stored.record
        if record["status"] in ("cancelling", "cancelled"):
            return _batch(record)
        if record["status"] in ENDED:
            raise ConflictError(f"Cannot cancel batch '{request.batch_id}' with status '{record['status']}'")
        record.update(status="cancelling", cancelling_at=self.runner.now())
        await self.store.save(record)
        self.runner.cancel(request.batch_id)
        return _batch(record)
