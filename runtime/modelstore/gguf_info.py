"""Read a GGUF file's metadata (not its tensors) in pure Python, fast enough for start-up.

Only the key/value section is parsed; large arrays (the vocabulary) are skipped, not decoded.
"""

from __future__ import annotations

import functools
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

MAGIC = b"GGUF"
# GGUF value types -> struct format (scalars); 8 = string, 9 = array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
POOLING_NONE, POOLING_RANK = 0, 4
ModelType = Literal["llm", "embedding", "rerank"]
# Architectures that only embed (they have no causal language-model head in llama.cpp).
EMBEDDING_ARCHITECTURES = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert"}
)


class GgufError(ValueError):
    pass


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    architecture: str
    name: str | None
    context_length: int | None
    embedding_length: int | None
    pooling_type: int | None
    has_chat_template: bool
    size_bytes: int

    @property
    def model_type(self) -> ModelType:
        if self.pooling_type == POOLING_RANK:
            return "rerank"
        if self.architecture in EMBEDDING_ARCHITECTURES or (self.pooling_type or POOLING_NONE) != POOLING_NONE:
            return "embedding"
        return "llm"


class _Cursor:
    """struct.unpack_from over a memory map: no system call per value (vocabularies are 100k strings)."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.offset = 0

    def read(self, fmt: str) -> Any:
        try:
            (value,) = struct.unpack_from(fmt, self.data, self.offset)
        except struct.error as exc:
            raise GgufError("truncated metadata") from exc
        self.offset += struct.calcsize(fmt)
        return value

    def string(self, keep: bool = True) -> str | None:
        length = self.read("<Q")
        start, self.offset = self.offset, self.offset + length
        return self.data[start : self.offset].decode("utf-8", errors="replace") if keep else None

    def value(self, kind: int, keep: bool) -> Any:
        if kind in _SCALARS:
            return self.read(_SCALARS[kind])
        if kind == _STRING:
            return self.string(keep)
        if kind == _ARRAY:
            item_kind, count = self.read("<I"), self.read("<Q")
            if item_kind in _SCALARS:
                self.offset += struct.calcsize(_SCALARS[item_kind]) * count
            else:
                for _ in range(count):
                    self.value(item_kind, keep=False)
            return None
        raise GgufError(f"unknown metadata value type {kind}")


def read_info(path: Path) -> GgufInfo:
    """The file's metadata; cached per (path, size, mtime), so a changed file is read again."""
    stat = path.stat()
    return _read_info(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _read_info(path: Path, size: int, mtime_ns: int) -> GgufInfo:
    if size == 0:  # mmap refuses an empty file with a bare ValueError, which callers do not expect
        raise GgufError(f"{path} is empty (0 bytes)")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != MAGIC:
            raise GgufError(f"{path} is not a GGUF file")
        cursor = _Cursor(data)
        cursor.offset = 4
        version = cursor.read("<I")
        if version < 2:
            raise GgufError(f"{path} is GGUF version {version}; llama.cpp needs 2 or later")
        cursor.read("<Q")  # tensor count
        kv_count = cursor.read("<Q")
        meta: dict[str, Any] = {}
        for _ in range(kv_count):
            key = cursor.string() or ""
            kind = cursor.read("<I")
            keep = not key.startswith("tokenizer.ggml.") or key == "tokenizer.ggml.model"
            meta[key] = cursor.value(kind, keep)
    arch = str(meta.get("general.architecture") or "")
    if not arch:
        raise GgufError(f"{path} has no general.architecture")
    return GgufInfo(
        path=path,
        architecture=arch,
        name=meta.get("general.name"),
        context_length=meta.get(f"{arch}.context_length"),
        embedding_length=meta.get(f"{arch}.embedding_length"),
        pooling_type=meta.get(f"{arch}.pooling_type"),
        has_chat_template=meta.get("tokenizer.chat_template") is not None,
        size_bytes=path.stat().st_size,
    )
