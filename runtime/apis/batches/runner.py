"""Batches run in the background: a task per batch, resumed after a restart, stopped by a cancel
or by the end of the completion window.

Each finished line is a row of batch_results as soon as it finishes; the output and error files
are written from those rows when the batch ends, so a restart skips what was done and no line is
written twice. Every request runs under `background_work()`: the llama.cpp pool serves interactive
requests first, and one slot per model keeps at most one batch request holding or waiting for a
model. A full queue (429) is waited out with backoff; interactive clients come first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pocketstack._generated import models
from pocketstack.apis.batches.calls import LineCaller, group_key, groupable, not_run
from pocketstack.apis.batches.validation import BatchLine, parse_lines
from pocketstack.apis.files import FilesApi
from pocketstack.errors import PocketStackError
from pocketstack.providers.priority import background_work, patiently
from pocketstack.security.principal import User, reset_current_user, set_current_user
from pocketstack.storage.batches import BatchStore, LineResult, StoredBatch, Usage
from pocketstack.storage.owners import Owner
from pocketstack.telemetry import batches as batch_telemetry
from pocketstack.web.uploads import Upload

log = logging.getLogger(__name__)
RETRIES = 10  # a full model queue is waited out this many times per request
MAX_RUNNING_BATCHES = 4
Record = dict[str, Any]


class Expired(Exception):
    """The completion window ended with lines left."""


class BatchRunner:
    def __init__(
        self,
        store: BatchStore,
        files: FilesApi,
        caller: LineCaller,
        model_exists: Callable[[str], Awaitable[bool]],
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._files = files
        self._caller = caller
        self._model_exists = model_exists
        self.clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._running = asyncio.Semaphore(MAX_RUNNING_BATCHES)
        self._model_slots: dict[str, asyncio.Semaphore] = {}
        self._stopping = False

    def now(self) -> int:
        return int(self.clock())

    async def start(self) -> None:
        for batch_id in await self._store.unfinished():
            log.info("batch %s resumes", batch_id)
            self.launch(batch_id)

    async def stop(self) -> None:
        """Pause every batch where it is (before the providers stop); the next start resumes them."""
        self._stopping = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def launch(self, batch_id: str) -> None:
        task = asyncio.create_task(self._run(batch_id), name=f"batch-{batch_id}")
        self._tasks[batch_id] = task
        task.add_done_callback(lambda _: self._ended(batch_id))

    def _ended(self, batch_id: str) -> None:
        self._tasks.pop(batch_id, None)
        if batch_id in self._cancelled and not self._stopping:
            # cancelled before its first step, so `_run` never ran to finalize it: once more, to end it
            self.launch(batch_id)

    def cancel(self, batch_id: str) -> None:
        """Stop the batch's work now (its request in flight included); the task then finalizes it."""
        if self._stopping:
            return  # the stored `cancelling` is finalized at the next start
        self._cancelled.add(batch_id)
        task = self._tasks.get(batch_id)
        if task is not None:
            task.cancel()
        else:  # not running (queued behind MAX_RUNNING_BATCHES, or between restarts): finalize anew
            self.launch(batch_id)

    async def _run(self, batch_id: str) -> None:
        stored = await self._store.get(batch_id)
        if stored is None:
            return
        owner = stored.owner
        user = User(owner.principal, {k: list(v) for k, v in owner.attributes.items()}) if owner else None
        token = set_current_user(user)  # the batch acts as its owner: models and files are checked against them
        record = stored.record
        try:
            # The run's own trace, started with the owner current: its spans are the owner's.
            with batch_telemetry.run_span(batch_id, record["endpoint"], record["input_file_id"]) as span:
                try:
                    await self._run_traced(batch_id, record, owner)
                except asyncio.CancelledError:
                    batch_telemetry.run_ended(span, record)  # paused where it is (the server stops)
                    raise
                except Exception as exc:
                    batch_telemetry.run_failed(span, exc)
                    raise
                batch_telemetry.run_ended(span, record)
        finally:
            self._cancelled.discard(batch_id)
            reset_current_user(token)

    async def _run_traced(self, batch_id: str, record: Record, owner: Owner | None) -> None:
        lines: list[BatchLine] = []
        try:
            with background_work():
                if record["status"] != "cancelling" and batch_id not in self._cancelled:
                    async with self._running:
                        lines = await self._prepare(record, owner)
                        if record["status"] == "failed":
                            return
                        await self._work(record, lines)
                await asyncio.shield(self._finalize(record, owner, lines, ending=record["status"]))
        except asyncio.CancelledError:
            if batch_id not in self._cancelled:
                raise  # a pause (the server stops): the batch stays as it is, to resume
            await asyncio.shield(self._finalize(record, owner, lines, ending="cancelling"))
        except Expired:
            await asyncio.shield(self._finalize(record, owner, lines, ending="expired"))
        except Exception as exc:
            log.exception("batch %s failed", batch_id)
            error = models.BatchError(code="internal_error", message=str(exc))
            await self._save(record, status="failed", failed_at=self.now(), errors=_errors([error]))

    async def _save(self, record: Record, **changes: Any) -> None:
        """Record changes, unless a cancel was stored meanwhile (only its own ending may follow it)."""
        latest = await self._store.get(record["id"])
        if latest is not None and latest.record["status"] == "cancelling" and changes.get("status") != "cancelled":
            record["status"], record["cancelling_at"] = "cancelling", latest.record.get("cancelling_at")
            changes.pop("status", None)
        record.update(changes)
        await self._store.save(record)

    async def _prepare(self, record: Record, owner: Owner | None) -> list[BatchLine]:
        """The batch's lines, validated; a file with errors fails the batch (status `failed`)."""
        file_id = record["input_file_id"]
        try:  # read as the batch's owner (the current user here): another user's file is not found
            found = await self._files.checked(file_id)
            content = await asyncio.to_thread((await self._files.provider().content(file_id)).path.read_bytes)
        except PocketStackError:
            error = models.BatchError(
                code="invalid_request", message=f"Cannot find file {file_id}.", param="input_file_id", line=None
            )
            await self._save(record, status="failed", failed_at=self.now(), errors=_errors([error]))
            return []
        if found.purpose.value != "batch":
            error = models.BatchError(
                code="invalid_request",
                message=f"File {file_id} has purpose '{found.purpose.value}'; a batch reads files of purpose 'batch'.",
                param="input_file_id",
            )
            await self._save(record, status="failed", failed_at=self.now(), errors=_errors([error]))
            return []
        errors, lines = await parse_lines(content, record["endpoint"], self._model_exists)
        if errors:
            await self._save(record, status="failed", failed_at=self.now(), errors=_errors(errors))
            return []
        batch_telemetry.lines_read(len(lines))
        if record["status"] == "validating":
            model = next((line.body["model"] for line in lines if isinstance(line.body.get("model"), str)), None)
            counts = {"total": len(lines), "completed": 0, "failed": 0}
            await self._save(
                record, status="in_progress", in_progress_at=self.now(), request_counts=counts, model=model
            )
        return lines

    async def _work(self, record: Record, lines: list[BatchLine]) -> None:
        batch_id = record["id"]
        done = await self._store.finished_lines(batch_id)
        todo = [line for line in lines if line.line not in done]
        endpoint = record["endpoint"]
        groups: dict[str, list[BatchLine]] = {}
        singles: list[BatchLine] = []
        for line in todo:
            if endpoint == "/v1/embeddings" and groupable(line):
                groups.setdefault(group_key(line), []).append(line)
            else:
                singles.append(line)
        for group in groups.values():
            for start in range(0, len(group), 64):  # results kept every 64 lines: a restart loses little
                self._check_expiry(record)
                part = group[start : start + 64]
                model = str(part[0].body.get("model"))
                with batch_telemetry.group_span(len(part)) as span:
                    results = await self._patiently(model, lambda part=part: self._caller.embed_group(part))  # type: ignore[misc]
                    batch_telemetry.group_answered(span, [result.output for result, _ in results])
                await self._store.add_results(batch_id, results)
                await self._progress(record)
        for line in singles:
            self._check_expiry(record)
            model = str(line.body.get("model", ""))
            with batch_telemetry.line_span(line.custom_id, line.line) as span:
                result, usage = await self._patiently(model, lambda line=line: self._caller.call(endpoint, line))  # type: ignore[misc]
                batch_telemetry.line_answered(span, result.output)
            await self._store.add_result(batch_id, result, usage)
            await self._progress(record)

    def _check_expiry(self, record: Record) -> None:
        if self.clock() >= record["expires_at"]:
            raise Expired(record["id"])

    async def _progress(self, record: Record) -> None:
        tally = await self._store.tally(record["id"])
        counts = {"total": record["request_counts"]["total"], "completed": tally.completed, "failed": tally.failed}
        await self._save(record, request_counts=counts)

    async def _patiently(self, model: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """`call` in the model's one batch slot (released while a full queue, 429, is waited out)."""
        slot = self._model_slots.setdefault(model, asyncio.Semaphore(1))

        async def in_slot() -> Any:
            async with slot:
                return await call()

        return await patiently(in_slot, retries=RETRIES)

    async def _finalize(self, record: Record, owner: Owner | None, lines: list[BatchLine], *, ending: str) -> None:
        """Write the output and error files from the kept lines, then the batch's final status."""
        batch_id = record["id"]
        if ending == "expired":  # OpenAI: the requests not run go to the error file as batch_expired
            done = await self._store.finished_lines(batch_id)
            message = "This request could not be executed before the completion window expired."
            left = [(not_run(line, "batch_expired", message), Usage()) for line in lines if line.line not in done]
            await self._store.add_results(batch_id, left)
        if ending == "in_progress":
            await self._save(record, status="finalizing", finalizing_at=self.now())
        results = await self._store.results(batch_id)
        # A server stopped after storing a file but before saving the final status finalizes again here.
        stored = await self._stored_files(record) if ending != "in_progress" else {}
        output_id = stored.get("output") or await self._write(
            batch_id, "output", [r for r in results if r.succeeded], owner
        )
        error_id = stored.get("error") or await self._write(
            batch_id, "error", [r for r in results if not r.succeeded], owner
        )
        tally = await self._store.tally(batch_id)
        total = max((record.get("request_counts") or {}).get("total", 0), len(results))
        usage = tally.usage
        final = {"cancelling": "cancelled", "expired": "expired"}.get(ending, "completed")
        stamp = {"cancelled": "cancelled_at", "expired": "expired_at", "completed": "completed_at"}[final]
        await self._save(
            record,
            status=final,
            output_file_id=output_id,
            error_file_id=error_id,
            request_counts={"total": total, "completed": tally.completed, "failed": tally.failed},
            usage={
                "input_tokens": usage.input_tokens,
                "input_tokens_details": {"cached_tokens": usage.cached_tokens},
                "output_tokens": usage.output_tokens,
                "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
                "total_tokens": usage.input_tokens + usage.output_tokens,
            },
            **{stamp: self.now()},
        )
        await self._store.forget_results(batch_id)

    async def _stored_files(self, record: Record) -> dict[str, str]:
        """The output and error files an earlier finalizing of this batch stored, by kind: the newest
        batch_output files, back to the batch's creation (files are named after their batch)."""
        found: dict[str, str] = {}
        names = {f"{record['id']}_{kind}.jsonl": kind for kind in ("output", "error")}
        after: str | None = None
        while True:
            listed = await self._files.provider().list_files(
                after=after, limit=100, order="desc", purpose="batch_output"
            )
            for file in listed.data:
                if file.created_at < record["created_at"]:
                    return found
                if file.filename in names:
                    found.setdefault(names[file.filename], file.id)
            if not listed.has_more or not listed.data:
                return found
            after = listed.last_id

    async def _write(self, batch_id: str, kind: str, results: list[LineResult], owner: Owner | None) -> str | None:
        """A JSONL file of purpose batch_output owned by the batch's owner; None when it has no line."""
        if not results:
            return None
        text = "".join(json.dumps(r.output) + "\n" for r in results).encode()
        handle, name = tempfile.mkstemp(prefix=f"{batch_id}_", suffix=".jsonl")
        path = Path(name)
        with contextlib.closing(open(handle, "wb")) as out:
            out.write(text)
        upload = Upload(
            path=path, filename=f"{batch_id}_{kind}.jsonl", content_type="application/jsonl", size=len(text)
        )
        try:
            stored = await self._files.provider().upload(upload, "batch_output", None, owner)
        finally:
            path.unlink(missing_ok=True)
        return stored.id


def _errors(errors: list[models.BatchError]) -> dict[str, Any]:
    return {"object": "list", "data": [e.model_dump(mode="json") for e in errors]}


__all__ = ["BatchRunner", "StoredBatch"]
