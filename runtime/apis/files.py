"""Files (OpenAI-compatible): the routes' implementation, in front of the files provider."""

from __future__ import annotations

from typing import cast

from pocketstack._generated import models, protocols
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, ResourceNotFoundError
from pocketstack.providers.base import FilesProvider
from pocketstack.security.access import FILE, Action
from pocketstack.web.uploads import FileBody, Upload
from pocketstack.wire.fields import given


class FilesApi(protocols.Files):
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.access = stack.access

    def provider(self) -> FilesProvider:
        """The distribution's files provider (the first, when it lists several)."""
        return cast(FilesProvider, self.stack.provider_for("files", None).impl)

    async def openai_upload_file(self, request: models.UploadFileForm, file: Upload) -> models.OpenAIFileObject:
        if request.purpose is models.FilePurpose.batch_output:  # OpenAI: only a batch writes these
            raise BadRequestError("purpose 'batch_output' is for files a batch writes.", param="purpose")
        expires = given(request.expires_after_seconds_)
        return await self.provider().upload(file, request.purpose.value, expires, self.access.owner())

    async def checked(self, file_id: str, action: Action = Action.READ) -> models.OpenAIFileObject:
        """The file, if the request may do `action` to it: one it may not see is not found (404)."""
        provider = self.provider()
        found = await provider.get(file_id)
        owner = await provider.owner(file_id)
        self.access.check(action, FILE, file_id, owner, ResourceNotFoundError("file", file_id))
        return found

    async def openai_list_files(self, request: models.OpenaiListFilesRequest) -> models.ListFilesResponse:
        order = given(request.order)
        purpose = given(request.purpose)
        return await self.provider().list_files(
            after=given(request.after),
            limit=request.limit,
            order=order.value if order is not None else "desc",
            purpose=purpose.value if purpose is not None else None,
            visible=self.access.visibility(FILE),
        )

    async def openai_retrieve_file(self, request: models.OpenaiRetrieveFileRequest) -> models.OpenAIFileObject:
        return await self.checked(request.file_id)

    async def openai_delete_file(self, request: models.OpenaiDeleteFileRequest) -> models.OpenAIFileDeleteResponse:
        await self.checked(request.file_id, Action.DELETE)
        return await self.provider().delete(request.file_id)

    async def openai_retrieve_file_content(self, request: models.OpenaiRetrieveFileContentRequest) -> FileBody:
        await self.checked(request.file_id)
        return await self.provider().content(request.file_id)
