from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec


class FileSearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_chunks: int = Field(default=5, ge=1, le=50, description="passages a knowledge_search call returns")


def create(config: FileSearchConfig, context: ProviderContext) -> Provider:
    from pocketstack.providers.inline.file_search.provider import FileSearchRuntime

    return FileSearchRuntime(config, context)


SPEC = ProviderSpec(
    api="tool_runtime",
    provider_type="inline::file-search",
    description="knowledge_search over vector stores (Llama Stack's builtin::rag): the tool group's "
    "args.vector_store_ids (or vector_db_ids) name the stores.",
    config_model=FileSearchConfig,
    create=create,
)
