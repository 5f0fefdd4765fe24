from __future__ import annotations

import asyncio
from pathlib import Path

from pocketstack.providers.base import Stateless
from pocketstack.providers.file_processing import Extracted, extract
from pocketstack.providers.inline.pypdf import PyPdfConfig


class PyPdfProcessor(Stateless):
    def __init__(self, config: PyPdfConfig) -> None:
        self.max_file_size_bytes = config.max_file_size_bytes

    async def extract(self, path: Path, filename: str, content_type: str) -> Extracted:
        return await asyncio.to_thread(extract, path, filename, content_type)
