from pocketstack.providers.base import ProviderSpec
from pocketstack.providers.inline.llama_cpp.config import LlamaCppConfig
from pocketstack.providers.inline.llama_cpp.provider import create

SPEC = ProviderSpec(
    api="inference",
    provider_type="inline::llama-cpp",
    description="GGUF models run by llama.cpp inside the server (offline).",
    config_model=LlamaCppConfig,
    create=create,
)
