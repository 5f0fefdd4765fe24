from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.inline.datasetio_localfs.config import LocalFsDatasetIOConfig


def create(config: LocalFsDatasetIOConfig, context: ProviderContext) -> Provider:
    # Imported on use, after the server listens; explicit so PyInstaller's analysis sees it.
    from pocketstack.providers.inline.datasetio_localfs.provider import LocalFsDatasetIO

    return LocalFsDatasetIO(config, context)


SPEC = ProviderSpec(
    api="datasetio",
    provider_type="inline::localfs",
    description="Dataset rows stored once in the state database (offline); files streamed in, in batches.",
    config_model=LocalFsDatasetIOConfig,
    create=create,
)
