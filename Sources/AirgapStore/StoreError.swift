import AirgapOCI

/// Store failures. Each message names the thing and says what to do.
public enum StoreError: Error, Sendable, CustomStringConvertible {
    case io(path: String, reason: String)
    case busy(path: String)
    case digestMismatch(expected: Digest, actual: Digest, source: String)
    case sizeMismatch(digest: Digest, expected: Int64, actual: Int64, source: String)
    case blobMissing(Digest, needed: String)
    case imageNotFound(String)
    case ambiguous(String, matches: [String])
    case corrupt(path: String, reason: String)
    case conflict(String)

    public var description: String {
        switch self {
        case .io(let path, let reason): "cannot access \(path): \(reason)"
        case .busy(let path): "\(path) is locked by another airgap process; wait for it to finish and try again"
        case .digestMismatch(let expected, let actual, let source):
            "\(source) does not match its digest: expected \(expected), got \(actual); the content is corrupt or was tampered with"
        case .sizeMismatch(let digest, let expected, let actual, let source):
            "\(source) for \(digest) has \(actual) bytes where \(expected) were expected; the content is truncated or corrupt"
        case .blobMissing(let digest, let needed):
            "blob \(digest) needed by \(needed) is not in the store; pull or load the image again"
        case .imageNotFound(let ref): "no such image: \(ref) (see 'image list' for what the store holds)"
        case .ambiguous(let ref, let matches): "'\(ref)' matches several images (\(matches.joined(separator: ", "))); give a longer ID or a full name"
        case .corrupt(let path, let reason): "the store file \(path) is damaged: \(reason)"
        case .conflict(let reason): reason
        }
    }

    /// True for failures that mean "content failed verification" (exit code 3).
    public var isVerificationFailure: Bool {
        switch self {
        case .digestMismatch, .sizeMismatch: true
        default: false
        }
    }
}
