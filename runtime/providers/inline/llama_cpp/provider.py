"""inline::llama-cpp: GGUF models run by llama.cpp inside the server.

This first cut vets and serves registrations (the GGUF must exist and be a GGUF); generation
and embeddings arrive with the inference API. llama_cpp itself is imported lazily, on first use.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pocketstack.errors import BadRequestError
from pocketstack.providers.base import Health, ModelCheck, ProviderContext
from pocketstack.providers.inline.llama_cpp.config import LlamaCppConfig

GGUF_MAGIC = b"GGUF"


class LlamaCppProvider:
    def __init__(self, config: LlamaCppConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def health(self) -> Health:
        return Health("OK")

    def resolve(self, provider_model_id: str) -> Path:
        path = Path(provider_model_id).expanduser()
        return path if path.is_absolute() else self.config.models_dir.expanduser() / path

    async def check_model(self, provider_model_id: str, model_type: str) -> ModelCheck:
        path = self.resolve(provider_model_id)
        magic = await asyncio.to_thread(_read_magic, path)
        if magic is None:
            raise BadRequestError(
                f"No GGUF file at {path} (provider_model_id is a GGUF path, absolute or relative to "
                f"{self.config.models_dir}).",
                code="model_file_not_found",
                param="provider_model_id",
            )
        if magic != GGUF_MAGIC:
            raise BadRequestError(f"{path} is not a GGUF file.", code="invalid_model_file", param="provider_model_id")
        return ModelCheck(metadata={"gguf_path": str(path)})


def _read_magic(path: Path) -> bytes | None:
    try:
        with path.open("rb") as handle:
            return handle.read(4)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None


def create(config: LlamaCppConfig, context: ProviderContext) -> LlamaCppProvider:
    return LlamaCppProvider(config, context)
