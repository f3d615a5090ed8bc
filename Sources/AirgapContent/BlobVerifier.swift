import AirgapOCI
import Dispatch
import Foundation

/// The one hashing wrapper: every sink's blob writer passes its bytes through one of these.
///
/// It refuses a byte past the announced size as soon as it arrives, and it hashes the chunk that
/// completes the blob *before* handing it on, so a destination that sees bytes as they come (a
/// registry upload, a pipe to an engine) never receives the whole of a blob that does not match.
/// Other chunks are hashed on one core while the next stage consumes them on another.
public struct BlobVerifier: Sendable {
    public let expected: Digest?
    public let expectedSize: Int64?
    /// What the bytes are, for messages ("blob sha256:… of docker.io/library/httpd").
    public let source: String
    private var hasher: DigestHasher

    public init(expected: Digest?, size: Int64?, source: String) {
        self.expected = expected
        self.expectedSize = size
        self.source = source
        hasher = DigestHasher(expected?.algorithm ?? .sha256)
    }

    public init(_ descriptor: Descriptor, source: String) {
        self.init(expected: descriptor.digest, size: descriptor.size, source: source)
    }

    public var byteCount: Int64 { hasher.byteCount }

    /// Below this a chunk is hashed and handed on on one thread (handing work over costs more).
    static let parallelChunk = 256 << 10

    /// Hashes `bytes` and hands them to `forward`; throws (without forwarding) when they overrun
    /// the size or, for the chunk that completes the blob, when the digest differs.
    public mutating func update(_ bytes: UnsafeRawBufferPointer, forward: (UnsafeRawBufferPointer) throws -> Void) throws {
        let total = hasher.byteCount + Int64(bytes.count)
        if let expectedSize, total > expectedSize {
            throw ContentError.sizeMismatch(digest: expected ?? hasher.finalize(), expected: expectedSize, actual: total, source: source)
        }
        if let expectedSize, total == expectedSize {
            hasher.update(bytes)
            try check()
            try forward(bytes)
        } else if bytes.count >= Self.parallelChunk {
            nonisolated(unsafe) let chunk = bytes // valid for the duration of this call, which outlives both parts
            nonisolated(unsafe) var forwardError: (any Error)?
            nonisolated(unsafe) var hasher = self.hasher
            withoutActuallyEscaping(forward) { forward in
                nonisolated(unsafe) let forward = forward
                DispatchQueue.concurrentPerform(iterations: 2) { part in
                    if part == 0 { hasher.update(chunk) } else {
                        do { try forward(chunk) } catch { forwardError = error }
                    }
                }
            }
            self.hasher = hasher
            if let forwardError { throw forwardError }
        } else {
            hasher.update(bytes)
            try forward(bytes)
        }
    }

    /// Hashes without forwarding (a consumer that only checks).
    public mutating func update(_ bytes: UnsafeRawBufferPointer) throws {
        try update(bytes) { _ in }
    }

    /// Starts again from byte 0 (a server that ignored Range).
    public mutating func reset() { hasher = DigestHasher(expected?.algorithm ?? .sha256) }

    /// The digest of everything seen, once size and digest match what was expected.
    @discardableResult
    public func finish() throws -> Digest {
        if let expectedSize, hasher.byteCount != expectedSize {
            throw ContentError.sizeMismatch(digest: expected ?? hasher.finalize(), expected: expectedSize, actual: hasher.byteCount, source: source)
        }
        return try check()
    }

    @discardableResult
    private func check() throws -> Digest {
        let actual = hasher.finalize()
        if let expected, actual != expected { throw ContentError.digestMismatch(expected: expected, actual: actual, source: source) }
        return actual
    }

    /// Checks bytes held whole in memory (manifests, configs) against their descriptor.
    public static func check(_ data: some ContiguousBytes, against descriptor: Descriptor, source: String) throws {
        var verifier = BlobVerifier(descriptor, source: source)
        try data.withUnsafeBytes { try verifier.update($0) }
        try verifier.finish()
    }
}
