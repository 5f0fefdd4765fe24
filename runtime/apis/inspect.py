"""Inspect: health, version, and the routes this server serves."""

from __future__ import annotations

from pydantic import MISSING

from pocketstack import LLAMA_STACK_VERSION, __version__
from pocketstack._generated import models, protocols
from pocketstack._generated.operations import OPERATIONS, OperationInfo
from pocketstack.core.stack import Stack

# The provider API behind each tag whose routes a provider serves; the others are the server's own.
TAG_PROVIDER_API = {"Models": "inference", "Inference": "inference", "FileProcessors": "file_processors"}


class InspectApi(protocols.Inspect):
    def __init__(self, stack: Stack, served_tags: frozenset[str]) -> None:
        self.stack = stack
        self.served_tags = served_tags

    async def health(self) -> models.HealthInfo:
        return models.HealthInfo(status=models.HealthStatus.OK)

    async def version(self) -> models.VersionInfo:
        return models.VersionInfo(version=LLAMA_STACK_VERSION, pocketstack_version=__version__)

    async def list_routes(self, request: models.ListRoutesRequest) -> models.ListRoutesResponse:
        api_filter = None if request.api_filter is MISSING else request.api_filter
        served = [op for op in OPERATIONS if op.tag in self.served_tags]
        routes = [(op, op.path) for op in served if _passes(op, api_filter)]
        if api_filter == models.ApiFilter.deprecated:  # an older Llama Stack's paths, still answered
            routes += [(op, op.legacy_path) for op in served if op.legacy_path is not None]
        return models.ListRoutesResponse(
            data=[
                models.RouteInfo(route=path, method=op.method, provider_types=self._provider_types(op))
                for op, path in routes
            ]
        )

    def _provider_types(self, op: OperationInfo) -> list[str]:
        api = TAG_PROVIDER_API.get(op.tag)
        if api is None:
            return []
        return sorted({p.config.provider_type for p in self.stack.providers_of(api)})


def _passes(op: OperationInfo, api_filter: models.ApiFilter | None) -> bool:
    if api_filter is None:
        return not op.deprecated
    if api_filter == models.ApiFilter.deprecated:
        return op.deprecated
    return not op.deprecated and op.level == api_filter.value
