"""Prompts (Llama Stack's built-in Prompts API): stored templates with `{{variable}}` placeholders,
versioned, one version the default. Responses name one in their `prompt` (apis/responses/prompt.py).

As Llama Stack's (core/prompts/prompts.py): ids are `pmpt_` + 48 hex digits; versions count from 1;
an update names the version it is based on, which must be the latest, and saves the next one (the
default unless `set_as_default` is false); its `variables` replace the old ones (absent: none).
Unlike Llama Stack, an update based on an older version is a 409 (not a 400), and decided atomically
(storage/prompts.py); unknown prompts and versions are 404s (Llama Stack: 400s); `is_default` is
right everywhere (Llama Stack's is only right in the versions list); and every prompt has an owner.
"""

from __future__ import annotations

import re
import secrets

from pocketstack._generated import models, protocols
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError, ConflictError, NotFoundError, ResourceNotFoundError
from pocketstack.security.access import PROMPT, Action
from pocketstack.storage.prompts import PromptStore, PromptVersion, StoredPrompt, Update
from pocketstack.wire.fields import given

# Llama Stack's placeholder (llama_stack_api/prompts/models.py Prompt.validate_prompt_variables).
PLACEHOLDER = re.compile(r"{{\s*(\w+)\s*}}")


def placeholders(template: str) -> set[str]:
    """The variable names a template uses."""
    return set(PLACEHOLDER.findall(template))


def _declared(template: str, variables: list[str]) -> list[str]:
    """The variables, once every placeholder of the template is among them (else Llama Stack's 400)."""
    undeclared = placeholders(template) - set(variables)
    if undeclared:
        message = f"Prompt contains undeclared variables: {sorted(undeclared)}"
        raise BadRequestError(message, code="undeclared_variables", param="variables")
    return variables


def _prompt(version: PromptVersion) -> models.Prompt:
    return models.Prompt(
        prompt_id=version.prompt_id,
        version=version.version,
        prompt=version.prompt,
        variables=version.variables,
        is_default=version.is_default,
    )


def version_not_found(prompt_id: str, version: int) -> NotFoundError:
    return NotFoundError(f"Prompt '{prompt_id}' version {version} not found.", code="prompt_version_not_found")


class PromptsApi(protocols.Prompts):
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.access = stack.access

    @property
    def store(self) -> PromptStore:
        return PromptStore(self.stack.database)

    async def lookup(self, prompt_id: str, action: Action = Action.READ) -> StoredPrompt:
        """The prompt, if the request may do `action` to it (its versions follow it): one it may not see is as
        unknown as a missing one."""
        stored = await self.store.get(prompt_id)
        missing = ResourceNotFoundError("prompt", prompt_id)
        if stored is None:
            raise missing
        self.access.check(action, PROMPT, prompt_id, stored.owner, missing)
        return stored

    async def version(self, prompt_id: str, version: int | None) -> PromptVersion:
        """A version of a prompt the request may read (None or 0: its default version, as Llama Stack reads
        a missing or zero version)."""
        await self.lookup(prompt_id)
        found = await self.store.version(prompt_id, version or None)
        if found is None:
            raise version_not_found(prompt_id, version) if version else ResourceNotFoundError("prompt", prompt_id)
        return found

    async def list_prompts(self) -> models.ListPromptsResponse:
        found = await self.store.defaults(self.access.visibility(PROMPT))
        return models.ListPromptsResponse(data=[_prompt(version) for version in found])

    async def create_prompt(self, request: models.CreatePromptRequest) -> models.Prompt:
        variables = _declared(request.prompt, list(given(request.variables, [])))
        prompt_id = f"pmpt_{secrets.token_hex(24)}"
        await self.store.create(prompt_id, request.prompt, variables, self.access.owner())
        return _prompt(PromptVersion(prompt_id, 1, request.prompt, variables, is_default=True))

    async def get_prompt(self, request: models.GetPromptRequest) -> models.Prompt:
        return _prompt(await self.version(request.prompt_id, given(request.version)))

    async def update_prompt(self, request: models.UpdatePromptRequest) -> models.Prompt:
        variables = _declared(request.prompt, list(given(request.variables, [])))
        stored = await self.lookup(request.prompt_id, Action.UPDATE)
        set_as_default = bool(given(request.set_as_default, True))
        ended = await self.store.update(
            request.prompt_id, request.version, request.prompt, variables, set_as_default=set_as_default
        )
        if ended is Update.GONE:
            raise ResourceNotFoundError("prompt", request.prompt_id)
        if ended is Update.STALE:
            latest = await self.store.get(request.prompt_id)
            raise ConflictError(
                # Llama Stack's words (core/prompts/prompts.py update_prompt)
                f"'{request.version}' is not the latest prompt version for prompt_id='{request.prompt_id}'. "
                f"Use the latest version '{(latest or stored).latest_version}' in request.",
                code="stale_prompt_version",
                param="version",
            )
        return _prompt(PromptVersion(request.prompt_id, request.version + 1, request.prompt, variables, set_as_default))

    async def delete_prompt(self, request: models.DeletePromptRequest) -> None:
        await self.lookup(request.prompt_id, Action.DELETE)
        if not await self.store.delete(request.prompt_id):
            raise ResourceNotFoundError("prompt", request.prompt_id)

    async def set_default_version(self, request: models.SetDefaultVersionRequest) -> models.Prompt:
        await self.lookup(request.prompt_id, Action.UPDATE)
        if not await self.store.set_default(request.prompt_id, request.version):
            raise version_not_found(request.prompt_id, request.version)
        return _prompt(await self.version(request.prompt_id, request.version))

    async def list_prompt_versions(self, request: models.ListPromptVersionsRequest) -> models.ListPromptsResponse:
        await self.lookup(request.prompt_id)
        return models.ListPromptsResponse(data=[_prompt(v) for v in await self.store.versions(request.prompt_id)])


__all__ = ["PLACEHOLDER", "PromptsApi", "placeholders"]
