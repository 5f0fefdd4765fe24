"""The Kotlin SDK in sdks/kotlin: models and a client, generated from the spec's intermediate form.

Kotlin stdlib only, for JVM 17 and Android (API 26+): `java.net.HttpURLConnection` (Android has
no `java.net.http`), the SDK's own JSON (templates/kotlin/Json.kt). Object schemas are data
classes (unknown fields kept in `additional`); a union (anyOf / oneOf) is a `sealed interface`
that its object variants implement — the thing openapi-generator cannot do — with wrapper classes
for its other variants; string enums are value classes, so a value this version does not know
still reads. Streams are `Sequence`s of typed chunks; errors are `PocketStackException`s carrying
the error body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegen.schemas import Schema, SchemaTable, spelled
from codegen.spec import Operation, Spec

PACKAGE = "pocketstack.client"
TEMPLATES = Path(__file__).with_name("templates") / "kotlin"
# Kotlin's hard keywords (and soft ones that cannot name a parameter freely): backticked as names.
KEYWORDS = frozenset(
    ["as", "break", "class", "continue", "do", "else", "false", "for", "fun", "if", "in", "interface", "is", "null",
     "object", "package", "return", "super", "this", "throw", "true", "try", "typealias", "typeof", "val", "var",
     "when", "while"]
)  # fmt: skip


def camel(name: str, upper: bool = False) -> str:
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", name) if p]
    if not parts:
        return "value"
    text = parts[0][:1].lower() + parts[0][1:] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    if upper:
        text = text[:1].upper() + text[1:]
    if text[0].isdigit():
        text = ("V" if upper else "v") + text
    return text


def ident(name: str) -> str:
    return f"`{name}`" if name in KEYWORDS else name


def constant(value: str) -> str:
    text = re.sub(r"[^0-9A-Za-z]+", "_", spelled(value)).strip("_").upper() or "EMPTY"
    return f"V_{text}" if text[0].isdigit() else text


@dataclass
class KType:
    """A Kotlin type, and how a value of it is read from (`decode`) and written to (`encode`) JSON."""

    name: str
    decode: str  # an expression template over `{v}` (a JsonValue)
    encode: str  # an expression template over `{x}` (a value of the type)

    def read(self, value: str) -> str:
        return self.decode.replace("{v}", value)  # not str.format: Kotlin lambdas have braces of their own

    def write(self, value: str) -> str:
        return self.encode.replace("{x}", value)


JSON = KType("JsonValue", "{v}", "{x}")
PRIMITIVES = {
    "string": KType("String", "{v}.asString()", "{x}.toJson()"),
    "integer": KType("Long", "{v}.asLong()", "{x}.toJson()"),
    "number": KType("Double", "{v}.asDouble()", "{x}.toJson()"),
    "boolean": KType("Boolean", "{v}.asBoolean()", "{x}.toJson()"),
}


@dataclass
class Models(SchemaTable):
    """The schema table, with each property schema's Kotlin type."""

    def type_of(self, schema: Schema) -> tuple[KType, bool]:
        """The Kotlin type of a property schema, and whether null is one of its values."""
        ref = schema.get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[1]
            kind = self.kind(name)
            if kind == "nullable":
                inner, _ = self.type_of(self.nullable_inner(self.schemas[name]) or {})
                return inner, True
            if kind == "alias":
                return self.type_of(self.schemas[name])
            return KType(name, name + ".fromJson({v})", "{x}.toJson()"), False
        types = schema.get("type")
        nullable = False
        if isinstance(types, list):
            nullable = "null" in types
            rest = [t for t in types if t != "null"]
            types = rest[0] if len(rest) == 1 else None
        if "anyOf" in schema or "oneOf" in schema:
            inner_schema = self.nullable_inner(schema)
            if inner_schema is not None:
                inner, _ = self.type_of(inner_schema)
                return inner, True
            return JSON, nullable
        if "const" in schema and types in (None, "string"):
            return PRIMITIVES["string"], nullable
        if types in PRIMITIVES:
            return PRIMITIVES[types], nullable
        if types == "array":
            item, _ = self.type_of(schema.get("items") or {})
            decode = "{v}.asList().map { item -> " + item.read("item") + " }"
            encode = "{x}.toJson { item -> " + item.write("item") + " }"
            return KType(f"List<{item.name}>", decode, encode), nullable
        if types == "object" and not schema.get("properties"):
            return KType("Map<String, JsonValue>", "{v}.asMap()", "{x}.toJson()"), nullable
        return JSON, nullable


def _object(models: Models, name: str) -> list[str]:
    schema = models.schemas[name]
    required = set(schema.get("required", []))
    props: list[tuple[str, str, KType, bool, Any]] = []  # wire name, kotlin name, type, optional, const
    for wire, prop in (schema.get("properties") or {}).items():
        ktype, nullable = models.type_of(prop)
        props.append((wire, ident(camel(wire)), ktype, nullable or wire not in required, prop.get("const")))
    supers = models.supertypes.get(name, [])
    doc = (schema.get("description") or "").replace("*/", "* /").strip()
    lines = [f"/** {doc} */"] if doc else []
    lines.append(f"data class {name}(")
    for _wire, kname, ktype, optional, const in props:
        if const is not None:
            lines.append(f'    val {kname}: String = "{const}",')
        elif optional:
            lines.append(f"    val {kname}: {ktype.name}? = null,")
        else:
            lines.append(f"    val {kname}: {ktype.name},")
    lines.append("    val additional: Map<String, JsonValue> = emptyMap(),")
    lines.append(")" + (" : " + ", ".join(supers) if supers else "") + " {")
    lines.append(("    override " if supers else "    ") + "fun toJson(): JsonValue {")
    lines.append("        val fields = LinkedHashMap<String, JsonValue>()")
    for wire, kname, ktype, optional, const in props:
        if optional and const is None:
            lines.append(f'        {kname}?.let {{ fields["{wire}"] = {ktype.write("it")} }}')
        else:
            lines.append(f'        fields["{wire}"] = {ktype.write(kname)}')
    lines += ["        fields.putAll(additional)", "        return JsonObject(fields)", "    }", ""]
    lines.append("    companion object {")
    known = ", ".join(f'"{wire}"' for wire, *_ in props)
    lines.append(f"        private val KNOWN = setOf<String>({known})")
    lines.append("")
    lines.append(f"        fun fromJson(json: JsonValue): {name} {{")
    lines.append("            val obj = json.asObject()")
    for wire, _kname, _ktype, _optional, const in props:
        if const is not None:
            lines.append(
                f'            if (obj.optional("{wire}")?.asString().let {{ it != null && it != "{const}" }}) {{'
            )
            lines.append(f'                throw JsonException("{name}: {wire} is not {const}")')
            lines.append("            }")
    lines.append(f"            return {name}(")
    for wire, kname, ktype, optional, const in props:
        if const is not None:
            continue
        if optional:
            lines.append(f'                {kname} = obj.optional("{wire}")?.let {{ {ktype.read("it")} }},')
        else:
            lines.append(f"                {kname} = {ktype.read(f'obj.required({chr(34)}{wire}{chr(34)})')},")
    lines.append("                additional = obj.fields.filterKeys { it !in KNOWN },")
    lines += ["            )", "        }", "    }", "}", ""]
    return lines


def _union(models: Models, name: str) -> list[str]:
    schema = models.schemas[name]
    supers = models.supertypes.get(name, [])
    lines = [f"sealed interface {name}" + (" : " + ", ".join(supers) if supers else "") + " {"]
    lines.append(("    override " if supers else "    ") + "fun toJson(): JsonValue")
    wrappers: list[str] = []
    attempts: list[str] = []
    taken: set[str] = set()
    for variant in models.variants(schema):
        if variant.get("type") == "null":
            continue
        target = variant.get("$ref", "").rsplit("/", 1)[-1]
        if target and models.kind(target) in ("object", "union"):
            attempts.append(f"{target}.fromJson(json)")
            continue
        ktype, _ = models.type_of(variant)
        wrapper = _wrapper_name(ktype.name, taken)
        taken.add(wrapper)
        wrappers += [
            "",
            f"    data class {wrapper}(val value: {ktype.name}) : {name} {{",
            f"        override fun toJson(): JsonValue = {ktype.write('value')}",
            "    }",
        ]
        attempts.append(f"{wrapper}({ktype.read('json')})")
    lines += wrappers
    lines += ["", "    companion object {", f"        fun fromJson(json: JsonValue): {name} {{"]
    lines.append("            val failures = mutableListOf<String>()")
    for attempt in attempts:
        lines.append(
            f'            try {{ return {attempt} }} catch (e: RuntimeException) {{ failures.add(e.message ?: "") }}'
        )
    lines.append(f'            throw JsonException("no variant of {name} fits: " + failures.joinToString("; "))')
    lines += ["        }", "    }", "}", ""]
    return lines


def _wrapper_name(type_name: str, taken: set[str]) -> str:
    """`String` -> OfString, `List<Long>` -> OfLongList, `Map<String, JsonValue>` -> OfMap..."""
    words = re.findall(r"[A-Za-z]+", type_name)
    base = "Of" + ("".join(w for w in reversed(words) if w != "String") if words[0] == "Map" else "".join(
        w for w in reversed(words)))  # fmt: skip
    base = "OfMap" if words[0] == "Map" else base
    name, number = base, 2
    while name in taken:
        name, number = f"{base}{number}", number + 1
    return name


def _enum(models: Models, name: str) -> list[str]:
    values = [str(v) for v in models.schemas[name]["enum"]]
    lines = [
        "@JvmInline",
        f"value class {name}(val value: String) {{",
        "    fun toJson(): JsonValue = JsonString(value)",
    ]
    lines += ["", "    override fun toString(): String = value", "", "    companion object {"]
    for value in values:
        lines.append(f'        val {constant(value)} = {name}("{value}")')
    lines += [f"        val KNOWN = listOf({', '.join(constant(v) for v in values)})", ""]
    lines += [f"        fun fromJson(json: JsonValue): {name} = {name}(json.asString())", "    }", "}", ""]
    return lines


def emit_models(spec: Spec, header: str) -> str:
    models = Models(spec.document["components"]["schemas"])
    out = [header.rstrip(), "", f"package {PACKAGE}", ""]
    for name in models.schemas:
        kind = models.kind(name)
        if kind == "object":
            out += _object(models, name)
        elif kind == "union":
            out += _union(models, name)
        elif kind == "enum":
            out += _enum(models, name)
    return "\n".join(out) + "\n"


def _query_type(models: Models, schema: Schema) -> str:
    ktype, _ = models.type_of(schema)
    return ktype.name


def _method(models: Models, op: Operation) -> list[str]:
    name = ident(camel(op.operation_id))
    args: list[str] = []
    path = op.path
    for param in op.params:
        kname = ident(camel(param.name))
        if param.location == "path":
            args.append(f"{kname}: String")
            greedy = ", greedy = true" if param.greedy else ""
            path = path.replace("{" + param.name + "}", "${segment(" + kname + greedy + ")}")
    query = [p for p in op.params if p.location == "query"]
    for param in query:
        kind = _query_type(models, param.schema)
        args.append(f"{ident(camel(param.name))}: {kind}" + ("" if param.required else "? = null"))
    query_list = "listOf(" + ", ".join(f'"{p.name}" to {ident(camel(p.name))}' for p in query) + ")"
    doc = [f"    /** {op.summary.replace('*/', '* /')} */"] if op.summary else []
    if op.deprecated:
        doc.append(f'    @Deprecated("{op.method.upper()} {op.path} is deprecated")')
    path_expr = '"' + path + '"'
    if op.body_kind == "multipart" and op.body_model:
        form = models.schemas[op.body_model]
        fields, files = [], []
        for wire in form.get("properties") or {}:
            kname = ident(camel(wire))
            optional = wire not in set(form.get("required", []))
            if wire in op.upload_fields:
                args.append(f"{kname}: Upload" + ("? = null" if optional else ""))
                files.append(f'{kname}?.let {{ "{wire}" to it }}')
            else:
                args.append(f"{kname}: String" + ("? = null" if optional else ""))
                fields.append(f'"{wire}" to {kname}')
        ret = op.response_model or "Unit"
        call = f"multipart({path_expr}, listOf({', '.join(fields)}), listOfNotNull({', '.join(files)}))"
        return [*doc, f"    fun {name}({', '.join(args)}): {ret} = {ret}.fromJson({call})", ""]
    body = "null"
    if op.body_model:
        args.append(f"body: {op.body_model}" + ("" if op.body_required else "? = null"))
        body = "body.toJson()" if op.body_required else "body?.toJson()"
    method = op.method.upper()
    lines = list(doc)
    if op.response_kind == "file":
        lines.append(
            f'    fun {name}({", ".join(args)}): ByteArray = bytes("{method}", {path_expr}, {query_list}, {body})'
        )
    elif op.response_model is None or op.response_kind == "none":
        lines += [
            f"    fun {name}({', '.join(args)}) {{",
            f'        json("{method}", {path_expr}, {query_list}, {body})',
            "    }",
        ]
    else:
        ret = op.response_model
        lines += [
            f"    fun {name}({', '.join(args)}): {ret} =",
            f'        {ret}.fromJson(json("{method}", {path_expr}, {query_list}, {body}) ?: JsonNull)',
        ]
    if op.stream is not None and op.body_model:
        chunk = op.stream.chunk_model
        lines += [
            "",
            f"    /** {op.summary.replace('*/', '* /')} Each `{chunk}` as the server sends it. */",
            f"    fun {camel(op.operation_id)}Stream({', '.join(args)}): Sequence<{chunk}> =",
            f'        stream({path_expr}, streaming({body.rstrip("?")}, "{op.stream.field}")) '
            + f"{{ {chunk}.fromJson(it) }}",
        ]
    return [*lines, ""]


def emit_client(spec: Spec, header: str) -> str:
    models = Models(spec.document["components"]["schemas"])
    out = [header.rstrip(), "", f"package {PACKAGE}", ""]
    out += ["/** Every operation of the spec, one method each (streams: a `...Stream` method too). */"]
    out += ["class PocketStackClient(baseUrl: String, apiKey: String? = null, timeoutMillis: Int = 600_000) :"]
    out += ["    Transport(baseUrl, apiKey, timeoutMillis) {"]
    for op in spec.operations:
        out += _method(models, op)
    out += ["}", ""]
    return "\n".join(out)


def _kotlin_header(header: str) -> str:
    return "\n".join(
        "// " + line.lstrip("# ").rstrip() if line.startswith("#") else line for line in header.splitlines()
    )


def write_kotlin_sdk(spec: Spec, target: Path, header: str) -> None:
    source = target / "src" / "main" / "kotlin" / "pocketstack" / "client"
    source.mkdir(parents=True, exist_ok=True)
    kotlin_header = _kotlin_header(header)
    (source / "Models.kt").write_text(emit_models(spec, kotlin_header), encoding="utf-8")
    (source / "Client.kt").write_text(emit_client(spec, kotlin_header), encoding="utf-8")
    (target / "README.md").write_text((TEMPLATES / "README.md").read_text(), encoding="utf-8")
    for runtime in ("Json.kt", "Transport.kt"):
        (source / runtime).write_text(kotlin_header + "\n" + (TEMPLATES / runtime).read_text(), encoding="utf-8")


__all__ = ["write_kotlin_sdk"]
