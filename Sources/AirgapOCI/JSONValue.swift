import Foundation

/// Any JSON value: keeps fields this tool does not model so they survive a round trip.
public enum JSONValue: Hashable, Sendable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var int64Value: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9.2e18: return Int64(d)
        default: return nil
        }
    }
}

/// Struct-keyed coding with a catch-all for unknown keys.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension KeyedDecodingContainer where Key == AnyCodingKey {
    /// Every key not in `known`, kept as raw JSON.
    func unknownFields(excluding known: Set<String>) throws -> [String: JSONValue] {
        var extra: [String: JSONValue] = [:]
        for key in allKeys where !known.contains(key.stringValue) {
            extra[key.stringValue] = try decode(JSONValue.self, forKey: key)
        }
        return extra
    }
}

/// One JSON style for every document this tool writes: sorted keys make output reproducible.
public enum CanonicalJSON {
    public static func encode(_ value: some Encodable, pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
                                          : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    /// The same bytes as `encode`, for documents that grow with the number of images (bundle.json,
    /// index.json, manifest.json): encoded a top-level field and an array element at a time, so
    /// memory holds the output and one element's tree rather than the whole document's.
    public static func encodeLarge(_ value: some Encodable, pretty: Bool = false) throws -> Data {
        var out = Data()
        try encodeLarge(value, pretty: pretty) { out.append($0) }
        return out
    }

    /// `encodeLarge`, handed to `write` a piece at a time (to a file, hashed on the way), so the
    /// whole document is never in memory.
    /// `generating`: top-level array fields made an element at a time as they are written, in
    /// place of the value's own (which the caller leaves empty).
    public static func encodeLarge(_ value: some Encodable, pretty: Bool = false, generating: [String: any EncodableElements] = [:],
                                   into write: (Data) throws -> Void) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
                                          : [.sortedKeys, .withoutEscapingSlashes]
        if try !ShallowJSON.encode(value, encoder: encoder, pretty: pretty, generated: generating, into: write) {
            guard generating.isEmpty else {
                throw EncodingError.invalidValue(generating.keys.sorted(), .init(codingPath: [], debugDescription: "generated fields need a document that is a plain object"))
            }
            try write(encoder.encode(value))
        }
    }

    /// Decodes a document, turning decoder errors into one sentence naming `what`.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            throw OCIError.invalidDocument(what, reason: describe(error))
        } catch {
            throw OCIError.invalidDocument(what, reason: "\(error)")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "" : " at '\(p)'"
        }
        switch error {
        case .dataCorrupted(let c):
            if let underlying = c.underlyingError as? OCIError {
                if case .invalidDigest(let text, let reason) = underlying { return "invalid digest '\(text)' (\(reason))" + path(c) }
                return underlying.description + path(c)
            }
            return "it is not valid JSON" + path(c)
        case .keyNotFound(let key, let c): return "the field '\(key.stringValue)' is missing" + path(c)
        case .typeMismatch(_, let c): return "a field has the wrong type" + path(c)
        case .valueNotFound(_, let c): return "a field is null" + path(c)
        @unknown default: return "\(error)"
        }
    }
}

extension CanonicalJSON {
    /// One phrase for any decoding error.
    public static func describeAny(_ error: any Error) -> String {
        if let error = error as? DecodingError { return describe(error) }
        return "\(error)"
    }
}
