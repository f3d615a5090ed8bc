import AirgapContent
import AirgapOCI
import Foundation

/// A registry or network failure (exit code 4), or a content check that failed (exit code 3).
/// Messages never contain credentials: URLs are printed without user info or query strings.
public struct RegistryError: Error, Sendable, CustomStringConvertible, TemporaryFailure, PrefixableError {
    public enum Kind: Sendable, Equatable {
        case unauthorized, denied, notFound, rateLimited, server, network, tls, protocolViolation, digestMismatch, unsupported
    }
    public let kind: Kind
    public let message: String
    /// Whether trying again later may succeed (drives retries).
    public var isTemporary: Bool { kind == .rateLimited || kind == .server || kind == .network }
    public var isVerificationFailure: Bool { kind == .digestMismatch }

    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    public func prefixed(_ prefix: String) -> any Error { RegistryError(kind, "\(prefix): \(message)") }
    public var description: String { message }
}

/// The `errors` array distribution and Docker Hub put in error bodies.
struct RegistryErrorBody: Decodable {
    struct Item: Decodable { var code: String?; var message: String? }
    var errors: [Item]?
    var details: String?

    static func summary(_ data: Data) -> String? {
        guard let body = try? JSONDecoder().decode(RegistryErrorBody.self, from: data), let items = body.errors, !items.isEmpty else {
            let text = String(decoding: data.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty || text.contains("<") ? nil : text
        }
        return items.map { [$0.code, $0.message].compactMap { $0 }.joined(separator: ": ") }.joined(separator: "; ")
    }

    static func codes(_ data: Data) -> [String] {
        (try? JSONDecoder().decode(RegistryErrorBody.self, from: data))?.errors?.compactMap(\.code) ?? []
    }
}

/// Strips credentials and query strings from a URL before it appears in a message or a log.
public func redactedURL(_ url: String) -> String {
    guard var components = URLComponents(string: url) else { return "<url>" }
    components.user = nil
    components.password = nil
    if components.query != nil { components.query = nil }
    return components.string ?? "<url>"
}
