import AirgapOCI

/// Store failures. Each message names the thing and says what to do.
public enum StoreError: Error, Sendable, CustomStringConvertible {
    case io(path: String, reason: String)
    case busy(path: String)
    case blobMissing(Digest, needed: String)
    case imageNotFound(String)
    case ambiguous(String, matches: [String])
    case corrupt(path: String, reason: String)
    case conflict(String)

    public var description: String {
        switch self {
        case .io(let path, let reason): "cannot access \(path): \(reason)"
        case .busy(let path): "\(path) is locked by another airgap process; wait for it to finish and try again"
        case .blobMissing(let digest, let needed):
            "blob \(digest) needed by \(needed) is not in the store; pull or load the image again"
        case .imageNotFound(let ref): "no such image: \(ref) (see 'image list' for what the store holds)"
        case .ambiguous(let ref, let matches): "'\(ref)' matches several images (\(matches.joined(separator: ", "))); give a longer ID or a full name"
        case .corrupt(let path, let reason): "the store file \(path) is damaged: \(reason)"
        case .conflict(let reason): reason
        }
    }
}
