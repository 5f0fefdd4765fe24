"""The Python SDK in sdks/python, written by openapi-python-client."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from codegen.spec import Operation, Spec, load_spec

CONFIG = Path(__file__).with_name("python_sdk.yaml")


def tool_environment() -> dict[str, str]:
    """The environment for generator tools: this interpreter's scripts (ruff) first, no caches."""
    scripts = str(Path(sys.executable).parent)
    path = scripts + os.pathsep + os.environ.get("PATH", "")
    return {**os.environ, "PATH": path, "RUFF_NO_CACHE": "true"}


SSE_TEMPLATE = Path(__file__).with_name("templates") / "sse.py"
PAGES_TEMPLATE = Path(__file__).with_name("templates") / "pages.py"
README_TEMPLATE = Path(__file__).with_name("templates") / "python_README.md"
_STREAM_FUNCTIONS = """

def stream_{name}(
    {path_args}*, client: AuthenticatedClient | Client, body: {body}
) -> Iterator[{chunk}]:
    \"\"\"{summary} Yields each `{chunk}` as it arrives.\"\"\"
    request = {{**body.to_dict(), "{field}": True}}
    return iterate(client.get_httpx_client(), {path}, request, {chunk}.from_dict)


def astream_{name}(
    {path_args}*, client: AuthenticatedClient | Client, body: {body}
) -> AsyncIterator[{chunk}]:
    \"\"\"{summary} Yields each `{chunk}` as it arrives.\"\"\"
    request = {{**body.to_dict(), "{field}": True}}
    return aiterate(client.get_async_httpx_client(), {path}, request, {chunk}.from_dict)
"""


def _path(op: Operation) -> tuple[str, str]:
    """The stream function's path parameters, and the expression of its URL path (each value quoted)."""
    names = [param.name for param in op.params if param.location == "path"]
    if not names:
        return "", repr(op.path)
    path = op.path
    for name in names:
        path = path.replace("{" + name + "}", "{quote(str(" + name + "), safe='')}")
    return "".join(f"{name}: str, " for name in names), "f" + repr(path).replace("\\'", "'")


PACKAGE = "pocketstack_client"


def emit_streaming(spec: Spec) -> str:
    """Typed stream functions (sync and async) for every operation marked x-stream."""
    lines = [
        '"""Streaming calls: each yields typed chunks as the server sends them (SSE), sync or async."""',
        "",
        "from __future__ import annotations",
        "",
        "from collections.abc import AsyncIterator, Iterator",
        "from urllib.parse import quote",
        "",
        "from .client import AuthenticatedClient, Client",
    ]
    # Streams of requests with a body (POST); a GET that streams is read with the httpx client as it is.
    ops = [op for op in spec.operations if op.stream is not None and op.body_model is not None]
    names = sorted({name for op in ops for name in (op.body_model, op.stream.chunk_model) if name})  # type: ignore[union-attr]
    if names:
        lines.append(f"from .models import {', '.join(names)}")
    lines += ["from .sse import PocketStackError, aiterate, iterate", "", '__all__ = ["PocketStackError"]']
    for op in ops:
        assert op.stream is not None and op.body_model is not None, f"{op.operation_id}: streams need a body"
        chunk, body, field = op.stream.chunk_model, op.body_model, op.stream.field
        path_args, path = _path(op)
        values = {"name": op.operation_id, "chunk": chunk, "body": body, "field": field, "path": path,
                  "path_args": path_args}  # fmt: skip
        lines += _STREAM_FUNCTIONS.format(summary=op.summary, **values).splitlines()
        lines.append("")
    lines += [
        f"__all__ += [{', '.join(repr(f'{kind}_{op.operation_id}') for op in ops for kind in ('stream', 'astream'))}]"
    ]
    return "\n".join(lines) + "\n"


def write_python_sdk(spec_path: Path, target: Path, header: str) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "openapi_python_client", "generate",
            "--path", str(spec_path),
            "--output-path", str(target),
            "--config", str(CONFIG),
            "--meta", "setup",
            "--overwrite",
        ],
        check=True,
        env=tool_environment(),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    package = target / PACKAGE
    shutil.copyfile(SSE_TEMPLATE, package / "sse.py")
    shutil.copyfile(PAGES_TEMPLATE, package / "pages.py")
    shutil.copyfile(README_TEMPLATE, target / "README.md")  # ours: openapi-python-client's is generic
    (package / "streaming.py").write_text(emit_streaming(load_spec(spec_path)), encoding="utf-8")
    added = [str(package / "sse.py"), str(package / "pages.py"), str(package / "streaming.py")]
    ruff = [sys.executable, "-m", "ruff"]
    quiet = {"check": True, "env": tool_environment(), "cwd": target, "stdout": subprocess.DEVNULL}
    subprocess.run([*ruff, "check", "--fix", "--select", "I,F401,Q", *added], **quiet)  # type: ignore[call-overload]
    subprocess.run([*ruff, "format", *added], **quiet)  # type: ignore[call-overload]
    for module in sorted(target.rglob("*.py")):
        module.write_text(header + module.read_text(encoding="utf-8"), encoding="utf-8")
