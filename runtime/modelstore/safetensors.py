"""Read tensors from a .safetensors file with numpy alone (no torch, no safetensors package).

The format is an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
shape and byte range, then the raw little-endian data; arrays are memory-mapped views into it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


class SafetensorsError(ValueError):
    pass


def read_tensors(path: Path) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
    data = np.memmap(path, dtype=np.uint8, mode="r")
    if data.size < 8:
        raise SafetensorsError(f"{path} is too short to be a safetensors file")
    (header_size,) = struct.unpack("<Q", bytes(data[:8]))
    if header_size > data.size - 8:
        raise SafetensorsError(f"{path}: header length {header_size} exceeds the file")
    try:
        header = json.loads(bytes(data[8 : 8 + header_size]))
    except json.JSONDecodeError as exc:
        raise SafetensorsError(f"{path}: the header is not JSON: {exc}") from exc
    base = 8 + header_size
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise SafetensorsError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        raw = data[base + start : base + end]
        yield name, raw.view(dtype).reshape(info["shape"])
