#if canImport(Glibc)
import Glibc
#endif
import AirgapOCI
import Foundation

/// Store failures. Each message names the thing and says what to do.
public enum StoreError: Error, Sendable, CustomStringConvertible {
    case io(path: String, reason: String)
    case busy(path: String)
    case blobMissing(Digest, needed: String)
    case imageNotFound(String)
    case ambiguous(String, matches: [String])
    case corrupt(path: String, reason: String)
    case conflict(String)
    /// The disk is full (ENOSPC, EDQUOT): `path` is where the user pointed, never a temp file.
    case noSpace(path: String, detail: String)
    /// Not writable (EACCES, EPERM, EROFS).
    case notWritable(path: String, reason: String)

    /// The failure of the POSIX call that just failed on `path`, from errno.
    public static func posix(path: String, code: Int32 = errno) -> StoreError {
        let reason = String(cString: strerror(code))
        switch code {
        case ENOSPC, EDQUOT: return .noSpace(path: visible(path), detail: reason)
        case EROFS: return .notWritable(path: visible(path), reason: "the file system is mounted read-only")
        case EACCES, EPERM: return .notWritable(path: visible(path), reason: reason)
        default: return .io(path: path, reason: reason)
        }
    }

    /// The path a user knows: a store's own temp files (`STORE/.airgap/…`) are the store, and
    /// `FILE.partial-PID` or `FILE.tmp-…` is FILE.
    static func visible(_ path: String) -> String {
        if let r = path.range(of: "/.airgap/") { return String(path[..<r.lowerBound]) }
        // Exactly the names writeThroughTemporary and writeAtomically make: `.partial-PID`, `.tmp-PID-RANDOM`.
        for pattern in [#"\.partial-[0-9]+$"#, #"\.tmp-[0-9]+-[0-9]+$"#] {
            if let r = path.range(of: pattern, options: .regularExpression) { return String(path[..<r.lowerBound]) }
        }
        return path
    }

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
        case .noSpace(let path, let detail):
            "not enough space on the disk holding \(path) (\(detail)); free some space or choose a location on a bigger disk, then run the command again"
        case .notWritable(let path, let reason):
            reason.hasPrefix("the file system is mounted read-only")
                ? "cannot write \(path): the file system is mounted read-only; choose a location on a writable disk"
                : "cannot write \(path): \(reason.lowercased()); choose a writable location or fix its permissions"
        }
    }
}
