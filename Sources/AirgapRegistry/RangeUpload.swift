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
}

/// Reads file segments in 1 MiB buffers, opened as regular files only. With `expected`, hashes
/// them and throws before handing over the last chunk when the digest differs, so a registry
/// never receives the whole of bytes that changed since they were verified; with `running`,
/// feeds a digest that spans several such sequences.
struct SegmentChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let segments: FileSegments
    let expected: Digest?
    var running: RunningDigest? = nil

    struct AsyncIterator: AsyncIteratorProtocol {
        let segments: [FileSegments.Segment]
        let expected: Digest?
        let running: RunningDigest?
        var index = 0
        var done: Int64 = 0
        var hasher = DigestHasher()

        mutating func next() async throws -> ByteBuffer? {
            while index < segments.count && done >= segments[index].length { index += 1; done = 0 }
            guard index < segments.count else { return nil }
            let segment = segments[index]
            let count = Int(Swift.min(Int64(1 << 20), segment.length - done))
            let fd: Int32
            do { fd = try FileSequenceSource.openRegularFile(segment.path).fd } catch {
                throw RegistryError(.unsupported, "cannot read \(segment.path): \(error)")
            }
            defer { close(fd) }
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            let position = segment.offset + done
            let n = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw -> Int in
                let r = pread(fd, raw.baseAddress!, count, off_t(position))
                if r <= 0 { throw RegistryError(.unsupported, "cannot read \(segment.path): it is shorter than expected or unreadable") }
                return r
            }
            buffer.withUnsafeReadableBytes { bytes in
                if expected != nil { hasher.update(bytes) }
                running?.update(bytes)
            }
            done += Int64(n)
            let last = index == segments.count - 1 && done >= segment.length
            if last, let expected {
                let actual = hasher.finalize()
                guard actual == expected else {
                    throw RegistryError(.digestMismatch, "the bytes read for \(expected) hash to \(actual); the source changed or is damaged since it was verified")
                }
            }
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(segments: segments.segments, expected: expected, running: running) }
}
