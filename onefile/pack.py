"""Wrap PyInstaller's onedir build into one file: the launcher (launcher.c), a payload, a trailer.

`python onefile/pack.py ONEDIR OUTPUT [--cc CC]`. The payload format is described at the top
of launcher.c. Models (*.gguf) and files that do not shrink are stored; the rest is zlib-packed
when the launcher could be built with zlib. Files with the same content in one folder (the
versioned copies of llama.cpp's libraries) become symlinks to the first one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

HERE = Path(__file__).resolve().parent
MAGIC = b"PSTKPAY1"
HEADER = struct.Struct("<ccIIQQ")
STORED, ZLIB = 0, 1
NEVER_COMPRESSED = (".gguf", ".zip")  # models are memory-mapped as they are; zips are packed already


@dataclass(frozen=True)
class Launcher:
    path: Path
    zlib: bool


def build_launcher(cc: str, workdir: Path) -> Launcher:
    """Compile the launcher, with zlib linked statically when the headers are there."""
    source, target = HERE / "launcher.c", workdir / "launcher"
    base = [cc, "-O2", "-Wall", "-Wextra", "-o", str(target), str(source)]
    attempts = [
        ([*base, "-DHAVE_ZLIB", "-Wl,-Bstatic", "-lz", "-Wl,-Bdynamic"], True),
        ([*base, "-DHAVE_ZLIB", "-lz"], True),
        (base, False),
    ]
    for command, with_zlib in attempts:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            return Launcher(target, with_zlib)
    raise SystemExit(f"cannot compile the launcher with {cc}:\n{result.stderr}")


def _header(kind: bytes, method: int, mode: int, relative: str, size: int, stored: int) -> bytes:
    name = relative.encode()
    return HEADER.pack(kind, bytes([method]), mode, len(name), size, stored) + name


def write_payload(onedir: Path, out: BinaryIO, compress: bool) -> tuple[int, str]:
    """Append the tree's entries to `out` (a binary file); return (payload size, sha256 hex)."""
    digest = hashlib.sha256()
    written = 0
    seen: dict[tuple[Path, str], str] = {}  # (folder, content hash) -> first file name

    def emit(chunk: bytes) -> None:
        nonlocal written
        out.write(chunk)
        digest.update(chunk)
        written += len(chunk)

    for path in sorted(onedir.rglob("*"), key=lambda p: p.relative_to(onedir).parts):
        relative = path.relative_to(onedir).as_posix()
        if path.is_symlink():
            target = os.readlink(path).encode()
            emit(_header(b"l", STORED, 0o777, relative, 0, len(target)) + target)
        elif path.is_dir():
            emit(_header(b"d", STORED, 0o755, relative, 0, 0))
        else:
            mode = path.stat().st_mode & 0o755
            with path.open("rb") as source:
                content_hash = hashlib.file_digest(source, "sha256").hexdigest()
            twin = seen.setdefault((path.parent, content_hash), path.name)
            if twin != path.name:
                emit(_header(b"l", STORED, 0o777, relative, 0, len(twin.encode())) + twin.encode())
                continue
            size = path.stat().st_size
            if compress and not path.name.endswith(NEVER_COMPRESSED):
                packed = zlib.compress(path.read_bytes(), 6)
                if len(packed) < size * 0.95:
                    emit(_header(b"f", ZLIB, mode, relative, size, len(packed)) + packed)
                    continue
            emit(_header(b"f", STORED, mode, relative, size, size))
            with path.open("rb") as source:
                while chunk := source.read(1 << 20):
                    emit(chunk)
    return written, digest.hexdigest()


def pack(onedir: Path, output: Path, cc: str) -> None:
    if not (onedir / "pocketstack").is_file():
        raise SystemExit(f"{onedir} is not a PyInstaller onedir build of pocketstack")
    with tempfile.TemporaryDirectory() as tmp:
        launcher = build_launcher(cc, Path(tmp))
        if not launcher.zlib:
            print("pack: no zlib headers; the payload is stored uncompressed (a larger binary)", file=sys.stderr)
        partial = output.with_name(output.name + ".partial")
        with partial.open("wb") as out:
            with launcher.path.open("rb") as source:
                shutil.copyfileobj(source, out)
            offset = out.tell()
            size, key = write_payload(onedir, out, launcher.zlib)
            out.write(MAGIC + struct.pack("<QQ", offset, size) + key.encode())
        partial.chmod(0o755)
        partial.replace(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onedir", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--cc", default=os.environ.get("CC", "cc"))
    args = parser.parse_args()
    pack(args.onedir, args.output, args.cc)


if __name__ == "__main__":
    main()
