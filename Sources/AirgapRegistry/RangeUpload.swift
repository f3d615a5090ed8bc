import AirgapContent
import AirgapOCI
import AirgapTar
import AsyncHTTPClient
import Foundation
import NIOCore

/// A digest computed across several requests (the chunks of one upload), checked before the
/// request that commits them.
final class RunningDigest: @unchecked Sendable {
    private let lock = NSLock()
    private var hasher = DigestHasher()
    func update(_ bytes: UnsafeRawBufferPointer) { lock.lock(); hasher.update(bytes); lock.unlock() }
    func finalize() -> Digest { lock.lock(); defer { lock.unlock() }; return hasher.finalize() }
    /// A digest that continues from this one's state (the hash state is a value).
    func copy() -> RunningDigest {
        let copy = RunningDigest()
        copy.hasher = lock.withLock { hasher }
        return copy
    }
    /// Takes over another digest's state.
    func adopt(_ other: RunningDigest) {
        let state = other.lock.withLock { other.hasher }
        lock.withLock { hasher = state }
    }
}

/// File segments as a request body, 1 MiB at a time (`FileSegments.Chunks`): with `expected`, the
/// last chunk is handed over only after the bytes hashed to it, so a registry never receives the
/// whole of bytes that changed since they were verified; with `running`, feeds a digest that spans
/// several such sequences.
struct SegmentChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let segments: FileSegments
    let expected: Digest?
    var running: RunningDigest? = nil
    /// Told of each chunk as it is handed on.
    var onBytes: (@Sendable (Int64) -> Void)? = nil

    struct AsyncIterator: AsyncIteratorProtocol {
        let segments: FileSegments
        let expected: Digest?
        let running: RunningDigest?
        let onBytes: (@Sendable (Int64) -> Void)?
        var chunks: FileSegments.Chunks?

        mutating func next() async throws -> ByteBuffer? {
            do {
                if chunks == nil { chunks = try FileSegments.Chunks(segments, expected: expected) }
                let reader = chunks!
                var buffer = ByteBufferAllocator().buffer(capacity: 1 << 20)
                var more = true
                _ = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 1 << 20) { raw -> Int in
                    guard let n = try reader.next(into: raw) else { more = false; return 0 }
                    running?.update(UnsafeRawBufferPointer(rebasing: raw[..<n]))
                    return n
                }
                if more { onBytes?(Int64(buffer.readableBytes)) }
                return more ? buffer : nil
            } catch let error as ContentError where error.actual != nil {
                throw RegistryError(.digestMismatch, error.message)
            } catch let error as ContentError {
                throw RegistryError(.unsupported, "cannot read the blob from disk: \(error.message)")
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(segments: segments, expected: expected, running: running, onBytes: onBytes) }
}
