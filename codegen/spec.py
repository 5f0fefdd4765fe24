"""The spec, read once into the intermediate form every emitter works from."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
SCHEMA_PREFIX = "#/components/schemas/"

JsonObject = dict[str, Any]


class SpecError(ValueError):
    """The spec breaks one of the conventions in spec/README.md."""


@dataclass(frozen=True)
class Param:
    name: str
    location: Literal["path", "query"]
    required: bool
    schema: JsonObject
    description: str
    greedy: bool
    is_array: bool


@dataclass(frozen=True)
class Stream:
    """An operation that answers SSE when its request's `field` is true."""

    field: str
    chunk_model: str
    done: bool = (
        True  # end with OpenAI's `data: [DONE]` (Llama Stack's own streams do not: its 0.2 clients choke on it)
    )


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    tag: str
    summary: str
    deprecated: bool
    params: tuple[Param, ...]
    body_model: str | None
    body_required: bool
    request_model: str | None
    response_model: str | None
    success_status: int
    stream: Stream | None
    # multipart/form-data bodies: the form's binary fields arrive as uploads (spooled to disk by
    # pocketstack.web.codec), not as model fields; the other form fields fill the request model.
    body_kind: Literal["json", "multipart"] = "json"
    upload_fields: tuple[str, ...] = ()
    # those of upload_fields the form does not require: the implementation gets None when one is left out.
    optional_uploads: tuple[str, ...] = ()
    # "file": the 2xx answer is raw bytes (application/octet-stream), served from a file.
    response_kind: Literal["json", "file", "none"] = "json"
    # `x-legacy-path`: where an older Llama Stack served the same operation (Agents sat under /v1 until
    # 0.2.x): the route answers there too, listed as deprecated.
    legacy_path: str | None = None

    @property
    def level(self) -> str:
        """The API level of the route: v1, v1alpha or v1beta."""
        return self.path.split("/")[1]

    @property
    def aiohttp_path(self) -> str:
        return self._aiohttp(self.path)

    @property
    def aiohttp_legacy_path(self) -> str | None:
        return self._aiohttp(self.legacy_path) if self.legacy_path is not None else None

    def _aiohttp(self, path: str) -> str:
        for param in self.params:
            if param.location == "path" and param.greedy:
                path = path.replace("{" + param.name + "}", "{" + param.name + ":.+}")
        return path


@dataclass(frozen=True)
class Spec:
    document: JsonObject
    operations: tuple[Operation, ...]

    @property
    def tags(self) -> tuple[str, ...]:
        declared = [tag["name"] for tag in self.document.get("tags", [])]
        used = {op.tag for op in self.operations}
        return tuple(tag for tag in declared if tag in used)

    def operations_of(self, tag: str) -> tuple[Operation, ...]:
        return tuple(op for op in self.operations if op.tag == tag)

    def model_document(self) -> JsonObject:
        """The spec plus one synthesized request schema per operation that has parameters.

        Every API method takes one request model: path and query parameters become fields of a
        `<OperationId>Request` model (which extends the body schema when there is one too).
        """
        document = copy.deepcopy(self.document)
        schemas: JsonObject = document["components"]["schemas"]
        for op in self.operations:
            if op.body_kind == "multipart" and op.body_model is not None:
                form = schemas[op.body_model]
                form["properties"] = {k: v for k, v in form["properties"].items() if k not in op.upload_fields}
                form["required"] = [k for k in form.get("required", []) if k not in op.upload_fields]
                if not form["required"]:
                    del form["required"]
            if not op.params or op.request_model is None:
                continue
            if op.request_model in schemas:
                raise SpecError(f"{op.operation_id}: schema {op.request_model} is synthesized; rename it")
            params_schema: JsonObject = {
                "type": "object",
                "properties": {p.name: _described(p.schema, p.description) for p in op.params},
            }
            required = [p.name for p in op.params if p.required]
            if required:
                params_schema["required"] = required
            if op.body_model is None:
                schemas[op.request_model] = params_schema
            else:
                schemas[op.request_model] = {"allOf": [{"$ref": SCHEMA_PREFIX + op.body_model}, params_schema]}
        return document


def _reject_nulls(node: Any, where: str) -> None:
    """A null in the spec is almost always a YAML slip (`description: a, b` in a flow mapping)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if value is None and key not in ("default", "const", "example"):
                raise SpecError(f"{where}/{key} is null: quote the text before it (a comma in a flow mapping?)")
            _reject_nulls(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _reject_nulls(item, f"{where}/{index}")


def load_spec(path: Path) -> Spec:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    _reject_nulls(document, "#")
    operations = tuple(
        _operation(document, path_template, method, raw)
        for path_template, item in document.get("paths", {}).items()
        for method, raw in item.items()
        if method in HTTP_METHODS
    )
    seen: set[str] = set()
    for op in operations:
        if op.operation_id in seen:
            raise SpecError(f"operationId {op.operation_id} is used twice")
        seen.add(op.operation_id)
    return Spec(document=document, operations=operations)


def class_name(operation_id: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in operation_id.split("_"))


def _operation(document: JsonObject, path: str, method: str, raw: JsonObject) -> Operation:
    where = f"{method.upper()} {path}"
    operation_id = raw.get("operationId")
    if not operation_id:
        raise SpecError(f"{where}: operationId is missing")
    tags = raw.get("tags") or []
    if len(tags) != 1:
        raise SpecError(f"{where}: exactly one tag is required (the API it belongs to)")
    params = tuple(_param(document, p, where) for p in raw.get("parameters", []))
    body_model, body_required, body_kind = _body(raw, where)
    upload_fields = _upload_fields(document, body_model) if body_kind == "multipart" and body_model else ()
    if body_kind == "multipart" and not upload_fields:
        raise SpecError(f"{where}: a multipart body needs at least one `format: binary` field")
    form_required = set(document["components"]["schemas"][body_model].get("required", [])) if upload_fields else set()
    optional_uploads = tuple(name for name in upload_fields if name not in form_required)
    status, response_model, response_kind = _success(raw, where)
    stream = _stream(raw, where)
    if params:
        request_model: str | None = class_name(operation_id) + "Request"
    else:
        request_model = body_model
    return Operation(
        operation_id=operation_id,
        method=method,
        path=path,
        tag=tags[0],
        summary=raw.get("summary", ""),
        deprecated=bool(raw.get("deprecated", False)),
        params=params,
        body_model=body_model,
        body_required=body_required,
        request_model=request_model,
        response_model=response_model,
        success_status=status,
        stream=stream,
        body_kind=body_kind,
        upload_fields=upload_fields,
        optional_uploads=optional_uploads,
        response_kind=response_kind,
        legacy_path=_legacy_path(raw, path, where),
    )


def _legacy_path(raw: JsonObject, path: str, where: str) -> str | None:
    legacy = raw.get("x-legacy-path")
    if legacy is None:
        return None
    names = re.compile(r"\{([^}]+)\}")
    if not isinstance(legacy, str) or sorted(names.findall(legacy)) != sorted(names.findall(path)):
        raise SpecError(f"{where}: x-legacy-path must be a path with the same parameters")
    return legacy


def _resolve(document: JsonObject, node: JsonObject) -> JsonObject:
    while "$ref" in node:
        ref: str = node["$ref"]
        if not ref.startswith("#/"):
            raise SpecError(f"only local references are supported: {ref}")
        target: Any = document
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def _param(document: JsonObject, raw: JsonObject, where: str) -> Param:
    param = _resolve(document, raw)
    location = param.get("in")
    if location not in ("path", "query"):
        raise SpecError(f"{where}: parameter {param.get('name')} is in {location}; only path and query are supported")
    schema = param.get("schema", {})
    resolved = _resolve(document, schema)
    return Param(
        name=param["name"],
        location=location,
        required=bool(param.get("required", location == "path")),
        schema=schema,
        description=param.get("description", ""),
        greedy=bool(param.get("x-greedy", False)),
        is_array=resolved.get("type") == "array",
    )


def _schema_name(schema: JsonObject, where: str) -> str:
    ref = schema.get("$ref", "")
    if not ref.startswith(SCHEMA_PREFIX):
        raise SpecError(f"{where}: bodies must reference a component schema ($ref), got {schema}")
    return str(ref[len(SCHEMA_PREFIX) :])


def _body(raw: JsonObject, where: str) -> tuple[str | None, bool, Literal["json", "multipart"]]:
    body = raw.get("requestBody")
    if body is None:
        return None, False, "json"
    content = body.get("content", {})
    required = bool(body.get("required", False))
    if "multipart/form-data" in content and len(content) == 1:
        return _schema_name(content["multipart/form-data"]["schema"], where), required, "multipart"
    if "application/json" not in content:
        raise SpecError(f"{where}: request bodies are application/json or multipart/form-data")
    return _schema_name(content["application/json"]["schema"], where), required, "json"


def _upload_fields(document: JsonObject, body_model: str) -> tuple[str, ...]:
    form = document["components"]["schemas"][body_model]
    return tuple(
        name
        for name, schema in form.get("properties", {}).items()
        if _resolve(document, schema).get("format") == "binary"
    )


def _success(raw: JsonObject, where: str) -> tuple[int, str | None, Literal["json", "file", "none"]]:
    successes = [code for code in raw.get("responses", {}) if str(code).startswith("2")]
    if len(successes) != 1:
        raise SpecError(f"{where}: exactly one 2xx response is required")
    code = successes[0]
    response = raw["responses"][code]
    content = response.get("content", {})
    if int(code) == 204:
        if content:
            raise SpecError(f"{where}: a 204 response has no content")
        return 204, None, "none"
    if set(content) == {"application/octet-stream"}:
        return int(code), None, "file"
    if "application/json" not in content:
        raise SpecError(f"{where}: the {code} response needs application/json or application/octet-stream content")
    return int(code), _schema_name(content["application/json"]["schema"], where), "json"


def _stream(raw: JsonObject, where: str) -> Stream | None:
    marker = raw.get("x-stream")
    if marker is None:
        return None
    for response in raw.get("responses", {}).values():
        sse = response.get("content", {}).get("text/event-stream")
        if sse is not None:
            return Stream(
                field=marker.get("field", "stream"),
                chunk_model=_schema_name(sse["schema"], where),
                done=bool(marker.get("done", True)),
            )
    raise SpecError(f"{where}: x-stream needs a 2xx response with text/event-stream content")


def _described(schema: JsonObject, description: str) -> JsonObject:
    if not description or "$ref" in schema:
        return schema
    return {**schema, "description": description}
