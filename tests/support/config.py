"""Run configs built from the edge distribution, and model files small enough to write in a test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pocketstack import distributions
from pocketstack.config import StackConfig, parse_config

REPO = Path(__file__).resolve().parent.parent.parent
CHAT_MODEL = "llama-cpp/SmolLM2-135M-Instruct"


def _edge() -> dict[str, Any]:
    path = distributions.path_of("edge")
    assert path is not None
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


def edge_with(**overrides: Any) -> StackConfig:
    """The edge distribution with top-level keys replaced (e.g. registered_resources)."""
    data = _edge()
    data.update(overrides)
    return parse_config(yaml.safe_dump(data), "test-config.yaml")


def edge_providers_with(**entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The edge distribution's providers with those of some APIs replaced (the others kept)."""
    providers: dict[str, Any] = _edge()["providers"]
    return providers | entries


def server_allowing(*allow: str) -> dict[str, Any]:
    """The edge distribution's `server` section with `outbound.allow` set: a test whose MCP server listens on
    loopback allows it, as an operator would (the outbound guard refuses loopback URLs by default)."""
    return {**_edge()["server"], "outbound": {"allow": list(allow)}}


def edge_with_vector_provider(entry: dict[str, Any], **overrides: Any) -> StackConfig:
    return edge_with(providers=edge_providers_with(vector_io=[entry]), **overrides)


def edge_shields() -> list[dict[str, Any]]:
    """The shields the edge distribution registers."""
    return _edge()["registered_resources"]["shields"]  # type: ignore[no-any-return]


def write_gguf(path: Path, architecture: str = "llama", pooling: int | None = None) -> Path:
    """A metadata-only GGUF: enough for registration and listing, not for inference."""
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, architecture)
    writer.add_context_length(128)
    writer.add_embedding_length(8)
    if pooling is not None:
        writer.add_pooling_type(gguf.PoolingType(pooling))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_safetensors(path: Path, tensors: dict[str, Any]) -> None:
    """A .safetensors file from float32 numpy arrays (the format is a JSON header plus raw data)."""
    import json
    import struct

    import numpy as np

    header: dict[str, Any] = {}
    blobs, offset = [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))
