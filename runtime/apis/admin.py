"""Admin: Llama Stack's alpha copies of the providers, routes, health and version operations, answered by
the same implementations (apis/providers.py, apis/inspect.py)."""

from __future__ import annotations

from pocketstack._generated import models, protocols
from pocketstack.apis.inspect import InspectApi
from pocketstack.apis.providers import ProvidersApi


class AdminApi(protocols.Admin):
    def __init__(self, inspect: InspectApi, providers: ProvidersApi) -> None:
        self.inspect = inspect
        self.providers = providers

    async def admin_list_providers(self) -> models.ListProvidersResponse:
        return await self.providers.list_providers()

    async def admin_inspect_provider(self, request: models.AdminInspectProviderRequest) -> models.ProviderInfo:
        return await self.providers.inspect_provider(models.InspectProviderRequest(provider_id=request.provider_id))

    async def admin_list_routes(self, request: models.AdminListRoutesRequest) -> models.ListRoutesResponse:
        return await self.inspect.list_routes(models.ListRoutesRequest(api_filter=request.api_filter))

    async def admin_health(self) -> models.HealthInfo:
        return await self.inspect.health()

    async def admin_version(self) -> models.VersionInfo:
        return await self.inspect.version()
