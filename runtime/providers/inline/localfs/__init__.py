from __future__ import annotations

from pocketstack.providers.base import Provider, ProviderContext, ProviderSpec
from pocketstack.providers.inline.localfs.config import LocalFsConfig


def create(config: LocalFsConfig, context: ProviderContext) -> Provider:
    # Imported on use, after the server listens; explicit so PyInstaller's analysis sees it.
    from pocketstack.providers.inline.localfs.provider import LocalFsFiles

    return LocalFsFiles(config, context)


SPEC = ProviderSpec(
    api="files",
    provider_type="inline::localfs",
    description="Files on the local disk, metadata in the state database (offline).",
    config_model=LocalFsConfig,
    create=create,
)
