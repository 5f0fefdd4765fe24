package pocketstack.client

import java.io.ByteArrayOutputStream
import java.io.IOException
import java.net.HttpURLConnection
import java.net.URL
import java.net.URLEncoder
import java.util.UUID

/** A file to upload (multipart form field). */
class Upload(val bytes: ByteArray, val filename: String, val contentType: String = "application/octet-stream")

/** A non-2xx answer (or an error frame in a stream): the status and the spec's error body. */
class PocketStackException(val status: Int, val error: Error?, val body: String) :
    RuntimeException(error?.error?.message ?: "HTTP $status: $body")

/** HTTP over java.net.HttpURLConnection, which Android has (java.net.http it has not). */
open class Transport(baseUrl: String, private val apiKey: String?, private val timeoutMillis: Int) {
    private val root = baseUrl.trimEnd('/')

    protected fun segment(value: String, greedy: Boolean = false): String =
        if (greedy) value.split('/').joinToString("/") { encode(it) } else encode(value)

    private fun encode(value: String): String = URLEncoder.encode(value, "UTF-8").replace("+", "%20")

    private fun open(method: String, path: String, query: List<Pair<String, Any?>>, accept: String): HttpURLConnection {
        val pairs = query.flatMap { (name, value) ->
            when (value) {
                null -> emptyList()
                is List<*> -> value.filterNotNull().map { name to it.toString() }
                else -> listOf(name to value.toString())
            }
        }
        val search = if (pairs.isEmpty()) "" else "?" + pairs.joinToString("&") { (n, v) -> encode(n) + "=" + encode(v) }
        val connection = URL(root + path + search).openConnection() as HttpURLConnection
        connection.requestMethod = method
        connection.connectTimeout = timeoutMillis
        connection.readTimeout = timeoutMillis
        connection.setRequestProperty("Accept", accept)
        if (apiKey != null) connection.setRequestProperty("Authorization", "Bearer $apiKey")
        return connection
    }

    private fun send(connection: HttpURLConnection, body: ByteArray?, contentType: String?) {
        if (body != null) {
            connection.doOutput = true
            connection.setRequestProperty("Content-Type", contentType ?: "application/json")
            connection.setFixedLengthStreamingMode(body.size)
            connection.outputStream.use { it.write(body) }
        }
    }

    private fun failIfError(connection: HttpURLConnection) {
        val status = connection.responseCode
        if (status < 400) return
        val text = (connection.errorStream ?: connection.inputStream)?.use { String(it.readBytes(), Charsets.UTF_8) } ?: ""
        val error = try {
            Error.fromJson(Json.parse(text))
        } catch (e: RuntimeException) {
            null
        }
        throw PocketStackException(status, error, text)
    }

    protected fun bytes(method: String, path: String, query: List<Pair<String, Any?>>, body: JsonValue?): ByteArray {
        val connection = open(method, path, query, "*/*")
        try {
            send(connection, body?.encode()?.toByteArray(Charsets.UTF_8), null)
            failIfError(connection)
            return connection.inputStream.use { it.readBytes() }
        } finally {
            connection.disconnect()
        }
    }

    protected fun json(method: String, path: String, query: List<Pair<String, Any?>>, body: JsonValue?): JsonValue? {
        val text = String(bytes(method, path, query, body), Charsets.UTF_8)
        return if (text.isBlank()) null else Json.parse(text)
    }

    protected fun multipart(path: String, fields: List<Pair<String, String?>>, files: List<Pair<String, Upload>>): JsonValue {
        val boundary = "pocketstack-" + UUID.randomUUID()
        val out = ByteArrayOutputStream()
        fun line(text: String) = out.write((text + "\r\n").toByteArray(Charsets.UTF_8))
        for ((name, value) in fields) {
            if (value == null) continue
            line("--$boundary")
            line("Content-Disposition: form-data; name=\"$name\"")
            line("")
            line(value)
        }
        for ((name, upload) in files) {
            line("--$boundary")
            line("Content-Disposition: form-data; name=\"$name\"; filename=\"${upload.filename.replace("\"", "_")}\"")
            line("Content-Type: ${upload.contentType}")
            line("")
            out.write(upload.bytes)
            line("")
        }
        line("--$boundary--")
        val connection = open("POST", path, emptyList(), "application/json")
        try {
            send(connection, out.toByteArray(), "multipart/form-data; boundary=$boundary")
            failIfError(connection)
            return Json.parse(connection.inputStream.use { String(it.readBytes(), Charsets.UTF_8) })
        } finally {
            connection.disconnect()
        }
    }

    /** Server-sent events: each `data:` frame parsed as it arrives; `[DONE]` or the end of the body ends it. */
    protected fun <T> stream(path: String, body: JsonValue, parse: (JsonValue) -> T): Sequence<T> = sequence {
        val connection = open("POST", path, emptyList(), "text/event-stream")
        try {
            send(connection, body.encode().toByteArray(Charsets.UTF_8), null)
            failIfError(connection)
            connection.inputStream.bufferedReader(Charsets.UTF_8).use { reader ->
                while (true) {
                    val line = reader.readLine() ?: break
                    if (!line.startsWith("data:")) continue
                    val data = line.substring(5).trim()
                    if (data == "[DONE]") break
                    val value = Json.parse(data)
                    if (value is JsonObject && value["error"] != null && value.fields.size == 1) {
                        throw PocketStackException(500, Error.fromJson(value), data)
                    }
                    yield(parse(value))
                }
            }
        } catch (e: IOException) {
            throw PocketStackException(0, null, e.toString())
        } finally {
            connection.disconnect()
        }
    }
}

/** The request body with its stream flag set. */
internal fun streaming(body: JsonValue, field: String): JsonValue = JsonObject(body.asObject().fields + (field to JsonBool(true)))
