"""The concrete OpenAI-compatible remotes: each a default URL, a provider-data key and quirks."""

from __future__ import annotations

from typing import Any

from pydantic import Field, create_model

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.remote.config import OpenAICompatConfig, Quirks


def _remote(name: str, description: str, default_url: str | None, quirks: Quirks) -> ProviderSpec:
    config_model: type[OpenAICompatConfig] = OpenAICompatConfig
    if default_url is not None:  # the same settings, with `url` defaulted
        fields: dict[str, Any] = {"url": (str, Field(default=default_url, description="base URL, with /v1"))}
        config_model = create_model(f"{name.title().replace('-', '')}Config", __base__=OpenAICompatConfig, **fields)

    def create(config: OpenAICompatConfig, context: ProviderContext) -> Provider:
        # Imported on use (after the server listens), explicitly, so PyInstaller still sees it.
        from pocketstack.providers.remote.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(config, context, quirks)

    return ProviderSpec("inference", f"remote::{name}", description, config_model, create)


REMOTES: tuple[ProviderSpec, ...] = (
    _remote("openai", "OpenAI's API.", "https://api.openai.com/v1", Quirks("openai_api_key")),
    _remote("vllm", "A vLLM server (OpenAI-compatible).", None, Quirks("vllm_api_token")),
    _remote("ollama", "An Ollama server's OpenAI-compatible API.", "http://localhost:11434/v1", Quirks()),
    _remote(
        "llama-cpp-server",
        "llama.cpp's server, or llama-cpp-python's (OpenAI-compatible).",
        "http://localhost:8080/v1",
        Quirks(),
    ),
    _remote("tgi", "Hugging Face Text Generation Inference's Messages API.", None, Quirks()),
    _remote("fireworks", "Fireworks AI.", "https://api.fireworks.ai/inference/v1", Quirks("fireworks_api_key")),
    _remote("together", "Together AI.", "https://api.together.xyz/v1", Quirks("together_api_key")),
    _remote("groq", "Groq.", "https://api.groq.com/openai/v1", Quirks("groq_api_key", frozenset({"logit_bias", "n"}))),
    _remote(
        "llama-openai-compat",
        "Meta's Llama API (OpenAI-compatible).",
        "https://api.llama.com/compat/v1",
        Quirks("llama_api_key"),
    ),
)
