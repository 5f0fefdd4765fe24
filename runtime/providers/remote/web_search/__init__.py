from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec

Engine = Literal["tavily", "brave"]
MAX_RESULTS = 20  # the engines' own page size limits (Tavily 20, Brave 20)


class WebSearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str | None = Field(
        default=None,
        description="the engine's key; else the provider data's tavily_search_api_key / brave_search_api_key",
    )
    base_url: str | None = Field(default=None, description="the engine's API root (default: its public one)")
    max_results: int = Field(default=3, ge=1, le=MAX_RESULTS)
    timeout_s: float = Field(default=10.0, gt=0, description="a search that takes longer fails (offline: at once)")


def _spec(engine: Engine, name: str, site: str) -> ProviderSpec:
    def create(config: WebSearchConfig, context: ProviderContext) -> Provider:
        from pocketstack.providers.remote.web_search.provider import WebSearch

        return WebSearch(engine, config)

    return ProviderSpec(
        api="tool_runtime",
        provider_type=f"remote::{engine}-search",
        description=f"web_search through {name} ({site}); the key from config or X-LlamaStack-Provider-Data.",
        config_model=WebSearchConfig,
        create=create,
    )


TAVILY = _spec("tavily", "Tavily", "api.tavily.com")
BRAVE = _spec("brave", "Brave Search", "api.search.brave.com")
