import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A non-2xx answer (or an error frame in a stream): the status and the spec's error body.
public struct PocketStackError: Swift.Error {
    public let status: Int
    public let body: APIError?
    public let raw: String
}

/// A file to upload (a multipart form field).
public struct Upload {
    public var data: Data
    public var filename: String
    public var contentType: String

    public init(data: Data, filename: String, contentType: String = "application/octet-stream") {
        self.data = data
        self.filename = filename
        self.contentType = contentType
    }
}

/// The PocketStack API over URLSession (async/await); its operations are in Operations.swift.
public final class PocketStackClient {
    public let baseURL: URL
    public let apiKey: String?
    public let session: URLSession

    public init(baseURL: URL, apiKey: String? = nil, session: URLSession = .shared) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.session = session
    }

    func segment(_ value: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    func queryValue<T>(_ value: T?) -> [String] {
        guard let value = value else {
            return []
        }
        if let values = value as? [Any] {
            return values.map { "\($0)" }
        }
        if let raw = value as? any RawRepresentable {
            return ["\(raw.rawValue)"]
        }
        return ["\(value)"]
    }

    func makeRequest(
        _ method: String,
        _ path: String,
        query: [(String, [String])],
        body: Data?,
        accept: String = "application/json"
    ) throws -> URLRequest {
        let root = baseURL.absoluteString.hasSuffix("/") ? String(baseURL.absoluteString.dropLast()) : baseURL.absoluteString
        var components = URLComponents(string: root + path)!  // the path's segments are escaped already
        let items = query.flatMap { pair in
            pair.1.map { URLQueryItem(name: pair.0, value: $0) }
        }
        if !items.isEmpty {
            components.queryItems = items
        }
        var request = URLRequest(url: components.url!)
        request.httpMethod = method
        request.setValue(accept, forHTTPHeaderField: "Accept")
        if let apiKey = apiKey {
            request.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization")
        }
        if let body = body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        return request
    }

    func multipart(_ path: String, fields: [(String, String?)], files: [(String, Upload?)]) throws -> URLRequest {
        let boundary = "pocketstack-\(UUID().uuidString)"
        var body = Data()
        func line(_ text: String) {
            body.append(Data((text + "\r\n").utf8))
        }
        for (name, value) in fields {
            guard let value = value else {
                continue
            }
            line("--\(boundary)")
            line("Content-Disposition: form-data; name=\"\(name)\"")
            line("")
            line(value)
        }
        for (name, upload) in files {
            guard let upload = upload else {
                continue
            }
            line("--\(boundary)")
            line("Content-Disposition: form-data; name=\"\(name)\"; filename=\"\(upload.filename)\"")
            line("Content-Type: \(upload.contentType)")
            line("")
            body.append(upload.data)
            line("")
        }
        line("--\(boundary)--")
        var request = try makeRequest("POST", path, query: [], body: nil)
        request.httpBody = body
        request.setValue("multipart/form-data; boundary=\(boundary)", forHTTPHeaderField: "Content-Type")
        return request
    }

    func encode<T: Encodable>(_ value: T) throws -> Data {
        try JSONEncoder().encode(value)
    }

    func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws -> T {
        try JSONDecoder().decode(type, from: data)
    }

    /// The request body with its stream flag set.
    func streaming(_ body: Data, field: String) throws -> Data {
        var object = (try JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:]
        object[field] = true
        return try JSONSerialization.data(withJSONObject: object)
    }

    func failure(_ status: Int, _ data: Data) -> PocketStackError {
        PocketStackError(
            status: status,
            body: try? JSONDecoder().decode(APIError.self, from: data),
            raw: String(decoding: data, as: UTF8.self)
        )
    }

    func send(_ request: URLRequest) async throws -> Data {
        let (data, response) = try await session.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        if status >= 400 {
            throw failure(status, data)
        }
        return data
    }

    /// One line of an event stream: a chunk yielded, an error frame thrown; true at `[DONE]`.
    func frame<T: Decodable>(
        _ line: String,
        _ type: T.Type,
        _ continuation: AsyncThrowingStream<T, Swift.Error>.Continuation
    ) throws -> Bool {
        guard line.hasPrefix("data:") else {
            return false
        }
        let payload = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
        if payload == "[DONE]" {
            return true
        }
        let data = Data(payload.utf8)
        if let error = try? JSONDecoder().decode(APIError.self, from: data) {
            throw PocketStackError(status: 500, body: error, raw: payload)
        }
        continuation.yield(try JSONDecoder().decode(T.self, from: data))
        return false
    }

    /// Server-sent events: each `data:` frame decoded as it arrives; `[DONE]` or the end of the body ends it.
    func stream<T: Decodable>(_ type: T.Type, _ build: @escaping () throws -> URLRequest) -> AsyncThrowingStream<T, Swift.Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    #if canImport(FoundationNetworking)
                    // Linux's Foundation has no bytes(for:): the body is read whole, then its frames.
                    let data = try await self.send(try build())
                    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                        if try self.frame(String(line), T.self, continuation) {
                            break
                        }
                    }
                    #else
                    let (bytes, response) = try await self.session.bytes(for: try build())
                    let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                    if status >= 400 {
                        var data = Data()
                        for try await byte in bytes {
                            data.append(byte)
                        }
                        throw self.failure(status, data)
                    }
                    for try await line in bytes.lines {
                        if try self.frame(line, T.self, continuation) {
                            break
                        }
                    }
                    #endif
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in
                task.cancel()
            }
        }
    }
}
