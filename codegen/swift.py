"""The Swift SDK in sdks/swift: a dependency-free Swift package generated from the spec's intermediate form.

`Codable` structs for object schemas, enums with associated values for unions (each variant tried
in order when decoding), `RawRepresentable` structs for string enums (a value this version does
not know still decodes), `URLSession` async/await calls, streams as `AsyncThrowingStream` read from
`bytes(for:)`, and `PocketStackError` carrying the error body. There is no Swift compiler on the
build machines: the tests parse every file with tree-sitter-swift; CI builds it with `swift build`
where a toolchain exists.
"""

from __future__ import annotations

import re
from pathlib import Path

from codegen.schemas import Schema, SchemaTable, ref_name, spelled
from codegen.spec import Operation, Spec

TEMPLATES = Path(__file__).with_name("templates") / "swift"
KEYWORDS = frozenset(
    ["associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init", "inout",
     "internal", "let", "open", "operator", "private", "protocol", "public", "rethrows", "static", "struct",
     "subscript", "typealias", "var", "break", "case", "continue", "default", "defer", "do", "else",
     "fallthrough", "for", "guard", "if", "in", "repeat", "return", "switch", "where", "while", "as", "catch",
     "false", "is", "nil", "self", "Self", "super", "throw", "throws", "true", "try", "Type", "Any", "some"]
)  # fmt: skip
# Schema names that would shadow the Swift standard library or Foundation inside the module.
RENAMED = {"Error": "APIError", "Result": "APIResult", "Data": "APIData", "URL": "APIURL", "Date": "APIDate"}


def type_name(schema_name: str) -> str:
    return RENAMED.get(schema_name, schema_name)


def camel(name: str) -> str:
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", name) if p]
    if not parts:
        return "value"
    text = parts[0][:1].lower() + parts[0][1:] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    return ("v" + text) if text[0].isdigit() else text


def ident(name: str) -> str:
    return f"`{name}`" if name in KEYWORDS else name


class Types(SchemaTable):
    def swift(self, schema: Schema) -> tuple[str, bool]:
        """The Swift type of a property schema, and whether null is one of its values."""
        target = ref_name(schema)
        if target:
            kind = self.kind(target)
            if kind == "nullable":
                inner, _ = self.swift(self.nullable_inner(self.schemas[target]) or {})
                return inner, True
            if kind == "alias":
                return self.swift(self.schemas[target])
            return type_name(target), False
        if "anyOf" in schema or "oneOf" in schema:
            inner_schema = self.nullable_inner(schema)
            if inner_schema is not None:
                return self.swift(inner_schema)[0], True
            return "JSONValue", False
        base, nullable = self.base_type(schema)
        if "const" in schema and base in (None, "string"):
            return "String", nullable
        simple = {"string": "String", "integer": "Int", "number": "Double", "boolean": "Bool"}
        if base in simple:
            return simple[base], nullable
        if base == "array":
            item, _ = self.swift(schema.get("items") or {})
            return f"[{item}]", nullable
        if base == "object" and not schema.get("properties"):
            return "[String: JSONValue]", nullable
        return "JSONValue", nullable


def _doc(text: str, indent: str = "") -> list[str]:
    text = " ".join((text or "").split())
    return [f"{indent}/// {text}"] if text else []


def _struct(types: Types, name: str) -> list[str]:
    schema = types.schemas[name]
    required = set(schema.get("required", []))
    props = []
    for wire, prop in (schema.get("properties") or {}).items():
        swift, nullable = types.swift(prop)
        optional = nullable or wire not in required or "const" in prop
        props.append((wire, ident(camel(wire)), swift + ("?" if optional else ""), prop.get("const")))
    out = _doc(schema.get("description", ""))
    out.append(f"public struct {type_name(name)}: Codable, Equatable {{")
    for _wire, swift_name, swift_type, _const in props:
        out.append(f"    public var {swift_name}: {swift_type}")
    params = []
    for _wire, swift_name, swift_type, const in props:
        default = f' = "{const}"' if const is not None else (" = nil" if swift_type.endswith("?") else "")
        params.append(f"{swift_name}: {swift_type}{default}")  # a keyword stays backticked as a name
    out.append("")
    if params:
        out.append("    public init(")
        out += [f"        {param}{',' if i < len(params) - 1 else ''}" for i, param in enumerate(params)]
        out.append("    ) {")
        out += [f"        self.{swift_name} = {swift_name}" for _w, swift_name, _t, _c in props]
        out.append("    }")
        out += ["", "    enum CodingKeys: String, CodingKey {"]
        for wire, swift_name, _t, _c in props:
            out.append(f"        case {swift_name}" + (f' = "{wire}"' if swift_name.strip("`") != wire else ""))
        out.append("    }")
    else:
        out += ["    public init() {", "    }"]
    out += ["}", ""]
    return out


def _union(types: Types, name: str) -> list[str]:
    cases: list[tuple[str, str]] = []
    taken: set[str] = set()
    for variant in types.variants(types.schemas[name]):
        if variant.get("type") == "null":
            continue
        swift, _ = types.swift(variant)
        case = camel(re.sub(r"[\[\]: ]+", " ", swift).replace("JSONValue", "json").strip()) or "value"
        case = case + "List" if swift.startswith("[") and not swift.startswith("[String:") else case
        base, number = case, 2
        while case in taken:
            case, number = f"{base}{number}", number + 1
        taken.add(case)
        cases.append((ident(case), swift))
    out = [f"public indirect enum {type_name(name)}: Codable, Equatable {{"]
    out += [f"    case {case}({swift})" for case, swift in cases]
    out += [
        "",
        "    public init(from decoder: Decoder) throws {",
        "        let container = try decoder.singleValueContainer()",
    ]
    for case, swift in cases:
        out += [
            f"        if let value = try? container.decode({swift}.self) {{",
            f"            self = .{case.strip('`')}(value)",
            "            return",
            "        }",
        ]
    out += [
        "        throw DecodingError.dataCorruptedError(",
        f'            in: container, debugDescription: "no variant of {type_name(name)} fits"',
        "        )",
        "    }",
        "",
        "    public func encode(to encoder: Encoder) throws {",
        "        var container = encoder.singleValueContainer()",
        "        switch self {",
    ]
    for case, _swift in cases:
        out += [f"        case .{case.strip('`')}(let value):", "            try container.encode(value)"]
    out += ["        }", "    }", "}", ""]
    return out


def _enum(types: Types, name: str) -> list[str]:
    swift = type_name(name)
    out = [
        f"public struct {swift}: RawRepresentable, Codable, Hashable {{",
        "    public let rawValue: String",
        "",
        "    public init(rawValue: String) {",
        "        self.rawValue = rawValue",
        "    }",
        "",
        "    public init(from decoder: Decoder) throws {",
        "        rawValue = try decoder.singleValueContainer().decode(String.self)",
        "    }",
        "",
        "    public func encode(to encoder: Encoder) throws {",
        "        var container = encoder.singleValueContainer()",
        "        try container.encode(rawValue)",
        "    }",
        "",
    ]
    for value in types.schemas[name]["enum"]:
        out.append(f'    public static let {ident(camel(spelled(str(value))))} = {swift}(rawValue: "{value}")')
    out += ["}", ""]
    return out


def emit_models(spec: Spec, header: str) -> str:
    types = Types(spec.document["components"]["schemas"])
    out = [header.rstrip(), "", "import Foundation", ""]
    for name in types.schemas:
        kind = types.kind(name)
        if kind == "object":
            out += _struct(types, name)
        elif kind == "union":
            out += _union(types, name)
        elif kind == "enum":
            out += _enum(types, name)
    return "\n".join(out) + "\n"


def _method(types: Types, op: Operation) -> list[str]:
    name = ident(camel(op.operation_id))
    args, path = [], op.path
    for param in op.params:
        if param.location == "path":
            args.append(f"{camel(param.name)}: String")
            path = path.replace("{" + param.name + "}", "\\(segment(" + camel(param.name) + "))")
    query = [p for p in op.params if p.location == "query"]
    for param in query:
        swift, _ = types.swift(param.schema)
        args.append(f"{camel(param.name)}: {swift}" + ("" if param.required else "? = nil"))
    pairs = ", ".join(f'("{p.name}", queryValue({camel(p.name)}))' for p in query)
    query_expr = f"[{pairs}]" if pairs else "[]"
    doc = _doc(op.summary, "    ")
    if op.deprecated:
        doc.append(f'    @available(*, deprecated, message: "{op.method.upper()} {op.path} is deprecated")')
    result = type_name(op.response_model) if op.response_model else None
    if op.response_kind == "file":
        result = "Data"
    if op.body_kind == "multipart" and op.body_model:
        form = types.schemas[op.body_model]
        fields: list[str] = []
        files: list[str] = []
        for wire in form.get("properties") or {}:
            optional = wire not in set(form.get("required", []))
            kind = "Upload" if wire in op.upload_fields else "String"
            args.append(f"{camel(wire)}: {kind}" + ("? = nil" if optional else ""))
            (files if kind == "Upload" else fields).append(f'("{wire}", {camel(wire)})')
        return [
            *doc,
            f"    public func {name}({', '.join(args)}) async throws -> {result} {{",
            f'        let request = try multipart("{path}", fields: [{", ".join(fields)}], '
            f"files: [{', '.join(files)}])",
            f"        return try decode({result}.self, try await send(request))",
            "    }",
            "",
        ]
    body = "nil"
    if op.body_model:
        body_type = type_name(op.body_model)
        args.append(f"_ body: {body_type}" + ("" if op.body_required else "? = nil"))
        body = "try encode(body)" if op.body_required else "try body.map { try encode($0) }"
    method = op.method.upper()
    lines = [
        *doc,
        f"    public func {name}({', '.join(args)}) async throws" + (f" -> {result}" if result else "") + " {",
    ]
    lines.append(f'        let request = try makeRequest("{method}", "{path}", query: {query_expr}, body: {body})')
    if result == "Data":
        lines.append("        return try await send(request)")
    elif result:
        lines.append(f"        return try decode({result}.self, try await send(request))")
    else:
        lines.append("        _ = try await send(request)")
    lines += ["    }", ""]
    if op.stream is not None and op.body_model:
        chunk = type_name(op.stream.chunk_model)
        lines += [
            f"    /// {' '.join(op.summary.split())} Each `{chunk}` as the server sends it.",
            f"    public func {camel(op.operation_id)}Stream({', '.join(args)})"
            + f" -> AsyncThrowingStream<{chunk}, Swift.Error> {{",
            f"        stream({chunk}.self) {{",
            f'            try self.makeRequest("{method}", "{path}", query: {query_expr}, '
            f'body: try self.streaming(try self.encode(body), field: "{op.stream.field}"), '
            + 'accept: "text/event-stream")',
            "        }",
            "    }",
            "",
        ]
    return lines


def emit_client(spec: Spec, header: str) -> str:
    types = Types(spec.document["components"]["schemas"])
    out = [header.rstrip(), "", "import Foundation", "#if canImport(FoundationNetworking)",
           "import FoundationNetworking", "#endif", "",
           "/// Every operation of the spec, one method each (streams: a `...Stream` method too).",
           "extension PocketStackClient {"]  # fmt: skip
    for op in spec.operations:
        out += _method(types, op)
    out += ["}", ""]
    return "\n".join(out)


def write_swift_sdk(spec: Spec, target: Path, header: str) -> None:
    sources = target / "Sources" / "PocketStack"
    sources.mkdir(parents=True, exist_ok=True)
    (sources / "Models.swift").write_text(emit_models(spec, header), encoding="utf-8")
    (sources / "Operations.swift").write_text(emit_client(spec, header), encoding="utf-8")
    for runtime in ("JSONValue.swift", "Transport.swift"):
        (sources / runtime).write_text(header + "\n" + (TEMPLATES / runtime).read_text(), encoding="utf-8")
    for name in ("Package.swift", "README.md"):
        (target / name).write_text((TEMPLATES / name).read_text(), encoding="utf-8")


__all__ = ["write_swift_sdk"]
