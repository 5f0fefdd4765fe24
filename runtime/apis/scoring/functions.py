"""Scoring Functions (Llama Stack 0.7's `/v1/scoring-functions`): what the scoring providers offer,
and functions registered over them with their own params.

Every scoring provider's built-in functions (`basic::equality`, `llm-as-judge::base`…) are
listed as that provider's own at start (source "provider": they cannot be unregistered). A
registration puts a new id over one of them: `provider_scoring_fn_id` names it (a listed id like
`llm-as-judge::base`, or the provider's own name for it, `llm-as-judge-base`; default the new id
itself), the provider is the one whose function that is (else `provider_id`, else the only
scoring provider), and the provider checks the params before anything is stored. The same goes
for `registered_resources.scoring_fns` in the run config, synced at every start.
"""

from __future__ import annotations

import time
from typing import Any, cast

from pydantic import ValidationError

from pocketstack._generated import models, protocols
from pocketstack.config import ScoringFnInput
from pocketstack.core.registry import Resource, Source
from pocketstack.core.resources import SCORING_FN, skipped_provider
from pocketstack.core.stack import Stack
from pocketstack.errors import BadRequestError
from pocketstack.providers.scoring import ScoringFnDef, ScoringProvider
from pocketstack.wire.fields import given


def scoring_fn_response(resource: Resource) -> models.ScoringFn:
    return models.ScoringFn.model_validate(
        {
            "identifier": resource.identifier,
            "provider_id": resource.provider_id,
            "provider_resource_id": resource.provider_resource_id,
            "type": "scoring_function",
            "description": resource.body.get("description"),
            "metadata": resource.body.get("metadata", {}),
            "return_type": resource.body["return_type"],
            "params": resource.body.get("params"),
        }
    )


def _body(
    description: str | None, metadata: dict[str, Any], return_type: dict[str, Any], params: Any
) -> dict[str, Any]:
    return {"description": description, "metadata": metadata, "return_type": return_type, "params": params}


def _provided(provider_id: str, function: ScoringFnDef) -> Resource:
    body = _body(function.description, {}, dict(function.return_type), function.params)
    return Resource(
        SCORING_FN.type,
        function.identifier,
        provider_id,
        function.provider_resource_id,
        "provider",
        int(time.time()),
        body,
    )


class ScoringFunctionsApi(protocols.ScoringFunctions):
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.table = stack.table(SCORING_FN)

    def providers(self) -> dict[str, ScoringProvider]:
        return {i.config.provider_id: cast(ScoringProvider, i.impl) for i in self.stack.providers_of("scoring")}

    def running(self) -> dict[str, ScoringProvider]:
        """The scoring providers, by id; a 503 saying how to enable scoring when there is none."""
        self.stack.provider_for("scoring", None, example="inline::basic")
        return self.providers()

    def provider(self, provider_id: str) -> ScoringProvider:
        return cast(ScoringProvider, self.stack.provider_for("scoring", provider_id, example="inline::basic").impl)

    async def resolve(self, scoring_fn_id: str) -> tuple[Resource, ScoringProvider]:
        """The function (a 404 when the user may not read it) and the provider that runs it."""
        resource = await self.table.get(scoring_fn_id)
        return resource, self.provider(resource.provider_id)

    def _target(self, provider_scoring_fn_id: str, provider_id: str | None) -> tuple[str, str]:
        """The provider and its function that a registration names: (provider_id, provider_resource_id)."""
        providers = self.running()
        if provider_id is not None:
            self.provider(provider_id)  # a 400 naming the known ones
        owners = [
            (candidate, function.provider_resource_id)
            for candidate, provider in providers.items()
            for function in provider.functions()
            if provider_scoring_fn_id in (function.identifier, function.provider_resource_id)
        ]
        for owner, provider_fn_id in owners:
            if provider_id in (None, owner):
                return owner, provider_fn_id
        if owners:
            raise BadRequestError(
                f"'{provider_scoring_fn_id}' is a function of scoring provider '{owners[0][0]}', not of "
                f"'{provider_id}'.",
                param="provider_id",
            )
        if provider_id is not None:  # the provider decides (llm-as-judge takes any id, defined by its params)
            return provider_id, provider_scoring_fn_id
        if len(providers) == 1:
            return next(iter(providers)), provider_scoring_fn_id
        raise BadRequestError(
            f"No scoring provider has a function '{provider_scoring_fn_id}' and several run "
            f"({', '.join(providers)}): say which with provider_id, or name one of their functions with "
            "provider_scoring_fn_id.",
            param="provider_scoring_fn_id",
        )

    def _build(self, entry: ScoringFnInput, source: Source) -> Resource:
        provider_id, provider_fn_id = self._target(
            entry.provider_scoring_fn_id or entry.scoring_fn_id, entry.provider_id
        )
        self.provider(provider_id).check_function(provider_fn_id, entry.params)
        body = _body(entry.description, entry.metadata, entry.return_type, entry.params)
        resource = Resource(
            SCORING_FN.type, entry.scoring_fn_id, provider_id, provider_fn_id, source, int(time.time()), body
        )
        try:  # the config's entries are plain dicts: held to the API's shapes here
            scoring_fn_response(resource)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
            raise BadRequestError(f"Not a scoring function: {problems}.") from None
        return resource

    async def sync_from_providers(self) -> None:
        """List each scoring provider's built-in functions as its own; a provider no longer running
        (the run config changed, its extra is not installed) takes its functions with it."""
        providers = self.providers()
        for provider_id, provider in providers.items():
            await self.table.sync_provider(provider_id, [_provided(provider_id, f) for f in provider.functions()])
        listed = await self.stack.registry.all(SCORING_FN.type)
        for gone in sorted({r.provider_id for r in listed if r.source == "provider"} - set(providers)):
            await self.table.sync_provider(gone, [])

    async def sync_from_config(self) -> None:
        """Register `registered_resources.scoring_fns`; an entry its provider refuses stops start-up."""

        async def build(entry: ScoringFnInput) -> Resource:
            return self._build(entry, "config")

        await self.table.sync_config(
            self.stack.config.registered_resources.scoring_fns,
            build,
            name=lambda entry: entry.scoring_fn_id,
            left_out=lambda entry: skipped_provider(self.stack.skipped, entry.provider_id),
        )

    async def list_scoring_functions(self) -> models.ListScoringFunctionsResponse:
        return models.ListScoringFunctionsResponse(data=[scoring_fn_response(r) for r in await self.table.all()])

    async def register_scoring_function(self, request: models.RegisterScoringFunctionRequest) -> None:
        params = given(request.params)
        metadata = (request.model_extra or {}).get("metadata")  # not in the request's schema; kept when sent
        entry = ScoringFnInput(
            scoring_fn_id=request.scoring_fn_id,
            description=request.description,
            metadata=metadata if isinstance(metadata, dict) else {},
            return_type=request.return_type.model_dump(mode="json"),
            params=params.model_dump(mode="json") if params is not None else None,
            provider_id=given(request.provider_id),
            provider_scoring_fn_id=given(request.provider_scoring_fn_id),
        )
        await self.table.add(self._build(entry, "api"))

    async def get_scoring_function(self, request: models.GetScoringFunctionRequest) -> models.ScoringFn:
        return scoring_fn_response(await self.table.get(request.scoring_fn_id))

    async def unregister_scoring_function(self, request: models.UnregisterScoringFunctionRequest) -> None:
        await self.table.remove(await self.table.get(request.scoring_fn_id))
