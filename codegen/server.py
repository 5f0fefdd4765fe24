"""Per-API Protocols and aiohttp route stubs, emitted from the intermediate form.

The stubs are the only code that touches raw requests: each parses path, query and body into the
operation's request model (through `pocketstack.web.codec`), awaits the implementation and writes the
answer. Hand-written API modules implement the Protocols and never see aiohttp.
"""

from __future__ import annotations

import re

from codegen.spec import Operation, Spec

GENERATED = "pocketstack._generated"


def attribute_name(tag: str) -> str:
    """`VectorIO` -> `vector_io`, `Scoring Functions` -> `scoring_functions`."""
    compact = tag.replace(" ", "")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", compact).lower()


def protocol_name(tag: str) -> str:
    return tag.replace(" ", "")


def _return_type(op: Operation) -> str:
    if op.response_kind == "file":
        return "FileBody"
    if op.response_model is None:
        return "None"
    result = f"models.{op.response_model}"
    if op.stream is not None:
        result += f" | AsyncIterator[models.{op.stream.chunk_model}]"
    return result


def _signature(op: Operation) -> str:
    args = "self" if op.request_model is None else f"self, request: models.{op.request_model}"
    args += "".join(
        f", {name}: Upload" + (" | None" if name in op.optional_uploads else "") for name in op.upload_fields
    )
    return f"async def {op.operation_id}({args}) -> {_return_type(op)}:"


def _docstring(text: str, indent: str) -> str:
    text = text.strip().replace('"""', "'''") or "No summary in the spec."
    return f'{indent}"""{text}"""\n'


def emit_protocols(spec: Spec, header: str) -> str:
    out = [
        header,
        '"""One Protocol per API tag; runtime/apis/ implements them."""\n\n',
        "from __future__ import annotations\n\n",
        "from collections.abc import AsyncIterator  # noqa: F401 (used by streaming operations)\n",
        "from typing import Protocol\n\n",
        f"from {GENERATED} import models\n",
        "from pocketstack.web.uploads import FileBody, Upload  # noqa: F401 (used by file operations)\n",
    ]
    descriptions = {t["name"]: t.get("description", "") for t in spec.document.get("tags", [])}
    for tag in spec.tags:
        out.append(f"\n\nclass {protocol_name(tag)}(Protocol):\n")
        out.append(_docstring(descriptions.get(tag, tag), "    "))
        for op in spec.operations_of(tag):
            out.append(f"\n    {_signature(op)}\n")
            out.append(_docstring(op.summary, "        "))
            out.append("        ...\n")
    return "".join(out)


def _tuple(names: list[str]) -> str:
    if not names:
        return "()"
    return "(" + ", ".join(repr(n) for n in names) + ",)"


def _handler(op: Operation) -> str:
    lines = [f"    async def {op.operation_id}(self, request: web.Request) -> web.StreamResponse:\n"]
    indent = "        "
    uploads = "".join(
        f", uploads.get({name!r})" if name in op.optional_uploads else f", uploads[{name!r}]"
        for name in op.upload_fields
    )
    if op.request_model is None:
        lines.append(f"{indent}result = await self.impl.{op.operation_id}()\n")
    else:
        path = [p.name for p in op.params if p.location == "path"]
        query = [p.name for p in op.params if p.location == "query" and not p.is_array]
        array_query = [p.name for p in op.params if p.location == "query" and p.is_array]
        where = [
            f"{indent}    request,\n",
            f"{indent}    models.{op.request_model},\n",
            f"{indent}    path={_tuple(path)},\n",
            f"{indent}    query={_tuple(query)},\n",
            f"{indent}    array_query={_tuple(array_query)},\n",
        ]
        if op.body_kind == "multipart":
            # The uploads are spooled to disk; whatever the implementation does not keep is removed.
            lines += [f"{indent}async with codec.parse_form(\n", *where]
            required = [name for name in op.upload_fields if name not in op.optional_uploads]
            lines.append(f"{indent}    uploads={_tuple(required)},\n")
            if op.optional_uploads:
                lines.append(f"{indent}    optional_uploads={_tuple(list(op.optional_uploads))},\n")
            lines.append(f"{indent}) as (parsed, uploads):\n")
            indent += "    "
        else:
            body = "none" if op.body_model is None else ("required" if op.body_required else "optional")
            lines += [f"{indent}parsed = await codec.parse_request(\n", *where, f'{indent}    body="{body}",\n']
            lines.append(f"{indent})\n")
        call = f"await self.impl.{op.operation_id}(parsed{uploads})"
        has_result = op.response_model is not None or op.response_kind == "file"
        lines.append(f"{indent}result = {call}\n" if has_result else f"{indent}{call}\n")
    if op.response_kind == "file":
        lines.append("        return await codec.respond_file(request, result)\n")
        return "".join(lines)
    result = "None" if op.response_model is None else "result"
    done = "" if op.stream is None or op.stream.done else ", done=False"
    lines.append(f"        return await codec.respond(request, {result}, status={op.success_status}{done})\n")
    return "".join(lines)


def emit_operations(spec: Spec, header: str) -> str:
    """The operation table alone: the app registers routes from it without importing the models."""
    out = [
        header,
        '"""Every operation of the spec, and the API (Apis attribute) each tag belongs to."""\n\n',
        "from __future__ import annotations\n\n",
        "from dataclasses import dataclass\n\n\n",
        "@dataclass(frozen=True)\n",
        "class OperationInfo:\n",
        "    operation_id: str\n",
        "    tag: str\n",
        "    method: str\n",
        "    path: str\n",
        "    aiohttp_path: str\n",
        "    level: str\n",
        "    deprecated: bool\n",
        "    streaming: bool\n",
        "    legacy_path: str | None = None  # an older Llama Stack's path for it (served, listed deprecated)\n",
        "    aiohttp_legacy_path: str | None = None\n\n\n",
        "OPERATIONS: tuple[OperationInfo, ...] = (\n",
    ]
    for op in spec.operations:
        out.append(
            f"    OperationInfo({op.operation_id!r}, {op.tag!r}, {op.method.upper()!r}, {op.path!r}, "
            f"{op.aiohttp_path!r}, {op.level!r}, {op.deprecated}, {op.stream is not None}"
            + (f", {op.legacy_path!r}, {op.aiohttp_legacy_path!r}" if op.legacy_path else "")
            + "),\n"
        )
    out.append(")\n\n")
    out.append("API_TAGS: dict[str, str] = {\n")
    for tag in spec.tags:
        out.append(f"    {attribute_name(tag)!r}: {tag!r},\n")
    out.append("}\n")
    return "".join(out)


def emit_routes(spec: Spec, header: str) -> str:
    protocols = ", ".join(protocol_name(t) for t in spec.tags)
    out = [
        header,
        '"""aiohttp handlers, one class per API tag, each parsing requests into the spec\'s models."""\n\n',
        "from __future__ import annotations\n\n",
        "from collections.abc import Awaitable, Callable\n",
        "from dataclasses import dataclass\n\n",
        "from aiohttp import web\n\n",
        "from pocketstack.web import codec\n",
        f"from {GENERATED} import models\n",
        f"from {GENERATED}.protocols import {protocols}\n\n",
        "Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]\n\n\n",
        "@dataclass(frozen=True)\n",
        "class Apis:\n",
        '    """The implementation of each API: every one is required, so a missing API is a type error."""\n\n',
    ]
    for tag in spec.tags:
        out.append(f"    {attribute_name(tag)}: {protocol_name(tag)}\n")
    for tag in spec.tags:
        name = protocol_name(tag)
        out.append(f"\n\nclass {name}Routes:\n")
        out.append(f"    def __init__(self, impl: {name}) -> None:\n")
        out.append("        self.impl = impl\n\n")
        out.append("    def handlers(self) -> dict[str, Handler]:\n")
        out.append("        return {\n")
        for op in spec.operations_of(tag):
            out.append(f"            {op.operation_id!r}: self.{op.operation_id},\n")
        out.append("        }\n")
        for op in spec.operations_of(tag):
            out.append("\n" + _handler(op))
    out.append("\n\ndef handlers(apis: Apis) -> dict[str, Handler]:\n")
    out.append('    """The handler of every operation of the spec, by operation id."""\n')
    out.append("    found: dict[str, Handler] = {}\n")
    for tag in spec.tags:
        attr = attribute_name(tag)
        out.append(f"    found.update({protocol_name(tag)}Routes(apis.{attr}).handlers())\n")
    out.append("    return found\n")
    return "".join(out)
