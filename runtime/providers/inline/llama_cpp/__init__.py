from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.inline.llama_cpp.config import LlamaCppConfig


def create(config: LlamaCppConfig, context: ProviderContext) -> Provider:
    # Imported here, not at the top: the implementation (and the generated models it uses) loads
    # after the server listens. An explicit import, so PyInstaller's analysis still sees it.
    from pocketstack.providers.inline.llama_cpp.provider import create as create_provider

    return create_provider(config, context)


SPEC = ProviderSpec(
    api="inference",
    provider_type="inline::llama-cpp",
    description="GGUF models run by llama.cpp inside the server (offline).",
    config_model=LlamaCppConfig,
    create=create,
)
