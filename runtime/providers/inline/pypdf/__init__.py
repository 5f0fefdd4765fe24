"""inline::pypdf, Llama Stack's file processor id: files to text by the server's one extractor
(providers/file_processing.py), the one vector-store ingestion uses: PDF through pypdf, and the text,
markdown, HTML, JSON and CSV files ingestion reads too."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec


class PyPdfConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_file_size_bytes: int = Field(
        default=100 * 1024 * 1024, ge=1, description="larger files are refused (Llama Stack's default, 100 MiB)"
    )


def create(config: PyPdfConfig, context: ProviderContext) -> Provider:
    from pocketstack.providers.inline.pypdf.provider import PyPdfProcessor

    return PyPdfProcessor(config)


SPEC = ProviderSpec(
    api="file_processors",
    provider_type="inline::pypdf",
    description="Files to text chunks (PDF via pypdf, text, markdown, HTML, JSON, CSV), as vector-store ingestion "
    "reads them.",
    config_model=PyPdfConfig,
    create=create,
)
