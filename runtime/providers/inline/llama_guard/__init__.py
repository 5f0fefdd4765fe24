from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.inline.llama_guard.config import LlamaGuardConfig


def create(config: LlamaGuardConfig, context: ProviderContext) -> Provider:
    # Imported on use, after the server listens; explicit so PyInstaller's analysis sees it.
    from pocketstack.providers.inline.llama_guard.provider import LlamaGuardShield

    return LlamaGuardShield(config, context)


SPEC = ProviderSpec(
    api="safety",
    provider_type="inline::llama-guard",
    description="Any registered chat model as a Llama Guard 3 classifier (S1-S14 taxonomy, excluded categories), "
    "its answer held to the verdict's shape by a grammar (offline with inline::llama-cpp).",
    config_model=LlamaGuardConfig,
    create=create,
)
