package pocketstack.client

/** JSON as the SDK reads and writes it: a small tree, a parser and a writer, with no dependencies. */
sealed interface JsonValue {
    fun encode(): String = StringBuilder().also { write(this, it) }.toString()
}

object JsonNull : JsonValue {
    override fun toString(): String = "null"
}

data class JsonBool(val value: Boolean) : JsonValue

/** A number as written: read it with [toLong] or [toDouble]. */
data class JsonNumber(val raw: String) : JsonValue {
    fun toLong(): Long = raw.toLongOrNull() ?: raw.toDouble().toLong()

    fun toDouble(): Double = raw.toDouble()
}

data class JsonString(val value: String) : JsonValue

data class JsonArray(val items: List<JsonValue>) : JsonValue

data class JsonObject(val fields: Map<String, JsonValue>) : JsonValue {
    operator fun get(name: String): JsonValue? = fields[name]
}

class JsonException(message: String) : RuntimeException(message)

object Json {
    fun parse(text: String): JsonValue {
        val parser = Parser(text)
        val value = parser.value()
        parser.skipSpace()
        if (!parser.atEnd()) throw JsonException("unexpected text after the JSON value at ${parser.position}")
        return value
    }
}

private class Parser(private val text: String) {
    var position = 0

    fun atEnd(): Boolean = position >= text.length

    fun skipSpace() {
        while (!atEnd() && text[position].isWhitespace()) {
            position++
        }
    }

    private fun expect(char: Char) {
        skipSpace()
        if (atEnd() || text[position] != char) throw JsonException("expected '$char' at $position")
        position++
    }

    fun value(): JsonValue {
        skipSpace()
        if (atEnd()) throw JsonException("unexpected end of JSON")
        return when (val char = text[position]) {
            '{' -> obj()
            '[' -> array()
            '"' -> JsonString(string())
            't' -> literal("true", JsonBool(true))
            'f' -> literal("false", JsonBool(false))
            'n' -> literal("null", JsonNull)
            else -> if (char == '-' || char.isDigit()) number() else throw JsonException("unexpected '$char' at $position")
        }
    }

    private fun literal(word: String, value: JsonValue): JsonValue {
        if (!text.startsWith(word, position)) throw JsonException("expected $word at $position")
        position += word.length
        return value
    }

    private fun number(): JsonValue {
        val start = position
        while (!atEnd() && (text[position].isDigit() || text[position] in "+-.eE")) {
            position++
        }
        return JsonNumber(text.substring(start, position))
    }

    private fun string(): String {
        expect('"')
        val out = StringBuilder()
        while (true) {
            if (atEnd()) throw JsonException("unterminated string")
            val char = text[position++]
            when (char) {
                '"' -> return out.toString()
                '\\' -> {
                    if (atEnd()) throw JsonException("unterminated escape")
                    when (val escaped = text[position++]) {
                        '"' -> out.append('"')
                        '\\' -> out.append('\\')
                        '/' -> out.append('/')
                        'b' -> out.append('\b')
                        'f' -> out.append('\u000C')
                        'n' -> out.append('\n')
                        'r' -> out.append('\r')
                        't' -> out.append('\t')
                        'u' -> {
                            if (position + 4 > text.length) throw JsonException("short \\u escape")
                            out.append(text.substring(position, position + 4).toInt(16).toChar())
                            position += 4
                        }
                        else -> throw JsonException("bad escape \\$escaped")
                    }
                }
                else -> out.append(char)
            }
        }
    }

    private fun array(): JsonValue {
        expect('[')
        val items = mutableListOf<JsonValue>()
        skipSpace()
        if (!atEnd() && text[position] == ']') {
            position++
            return JsonArray(items)
        }
        while (true) {
            items.add(value())
            skipSpace()
            if (atEnd()) throw JsonException("unterminated array")
            if (text[position] == ',') {
                position++
                continue
            }
            expect(']')
            return JsonArray(items)
        }
    }

    private fun obj(): JsonValue {
        expect('{')
        val fields = LinkedHashMap<String, JsonValue>()
        skipSpace()
        if (!atEnd() && text[position] == '}') {
            position++
            return JsonObject(fields)
        }
        while (true) {
            skipSpace()
            val name = string()
            expect(':')
            fields[name] = value()
            skipSpace()
            if (atEnd()) throw JsonException("unterminated object")
            if (text[position] == ',') {
                position++
                continue
            }
            expect('}')
            return JsonObject(fields)
        }
    }
}

private fun write(value: JsonValue, out: StringBuilder) {
    when (value) {
        JsonNull -> out.append("null")
        is JsonBool -> out.append(value.value)
        is JsonNumber -> out.append(value.raw)
        is JsonString -> quote(value.value, out)
        is JsonArray -> {
            out.append('[')
            value.items.forEachIndexed { index, item ->
                if (index > 0) out.append(',')
                write(item, out)
            }
            out.append(']')
        }
        is JsonObject -> {
            out.append('{')
            var first = true
            for ((name, item) in value.fields) {
                if (!first) out.append(',')
                first = false
                quote(name, out)
                out.append(':')
                write(item, out)
            }
            out.append('}')
        }
    }
}

private fun quote(text: String, out: StringBuilder) {
    out.append('"')
    for (char in text) {
        when {
            char == '"' -> out.append("\\\"")
            char == '\\' -> out.append("\\\\")
            char == '\n' -> out.append("\\n")
            char == '\r' -> out.append("\\r")
            char == '\t' -> out.append("\\t")
            char < ' ' -> out.append("\\u%04x".format(char.code))
            else -> out.append(char)
        }
    }
    out.append('"')
}

// Readers and writers the generated models use.

fun JsonValue.asObject(): JsonObject = this as? JsonObject ?: throw JsonException("expected an object, got $this")

fun JsonValue.asString(): String = (this as? JsonString)?.value ?: throw JsonException("expected a string, got $this")

fun JsonValue.asLong(): Long = (this as? JsonNumber)?.toLong() ?: throw JsonException("expected a number, got $this")

fun JsonValue.asDouble(): Double = (this as? JsonNumber)?.toDouble() ?: throw JsonException("expected a number, got $this")

fun JsonValue.asBoolean(): Boolean = (this as? JsonBool)?.value ?: throw JsonException("expected a boolean, got $this")

fun JsonValue.asList(): List<JsonValue> = (this as? JsonArray)?.items ?: throw JsonException("expected an array, got $this")

fun JsonValue.asMap(): Map<String, JsonValue> = asObject().fields

/** A field that must be there (null is a value here: a nullable field reads it with [optional]). */
fun JsonObject.required(name: String): JsonValue = fields[name] ?: throw JsonException("missing field '$name'")

/** A field that may be missing or null. */
fun JsonObject.optional(name: String): JsonValue? = fields[name]?.takeIf { it != JsonNull }

fun String.toJson(): JsonValue = JsonString(this)

fun Long.toJson(): JsonValue = JsonNumber(toString())

fun Double.toJson(): JsonValue = JsonNumber(if (isFinite() && this == Math.floor(this) && Math.abs(this) < 1e15) toLong().toString() else toString())

fun Boolean.toJson(): JsonValue = JsonBool(this)

fun <T> List<T>.toJson(item: (T) -> JsonValue): JsonValue = JsonArray(map(item))

fun Map<String, JsonValue>.toJson(): JsonValue = JsonObject(this)

/** An object from fields, the absent (null) ones left out. */
fun jsonObjectOf(vararg fields: Pair<String, JsonValue?>): JsonObject =
    JsonObject(LinkedHashMap<String, JsonValue>().apply { for ((name, value) in fields) if (value != null) put(name, value) })
