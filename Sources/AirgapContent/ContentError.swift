import AirgapOCI

/// Failures of content itself: bytes that do not match their descriptor, documents that are not
/// what they claim, graphs that break the limits. `verification` maps to exit code 3.
public struct ContentError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Bytes or structure failed a check (exit 3).
        case verification
        /// A well-formed input this tool does not handle, with what to do instead (exit 1).
        case unsupported
        /// Something a plan needs is not at the source (exit 1).
        case missing
    }
    public let kind: Kind
    public let message: String
    /// For a digest mismatch: what the bytes hashed to (a reader reports it as its finding).
    public var actual: Digest?
    /// For `missing`: the document or blob that is not there.
    public var missingDigest: Digest?
    public init(_ kind: Kind, _ message: String, actual: Digest? = nil) { self.kind = kind; self.message = message; self.actual = actual }
    public var description: String { message }
    public var isVerificationFailure: Bool { kind == .verification }

    public static func digestMismatch(expected: Digest, actual: Digest, source: String) -> ContentError {
        ContentError(.verification, "\(source) does not match its digest: expected \(expected), got \(actual); the content is corrupt or was tampered with", actual: actual)
    }

    public static func sizeMismatch(digest: Digest, expected: Int64, actual: Int64, source: String) -> ContentError {
        ContentError(.verification, "\(source) has \(actual) bytes where \(expected) were expected (\(digest.shortID)); the content is truncated or corrupt")
    }
}
