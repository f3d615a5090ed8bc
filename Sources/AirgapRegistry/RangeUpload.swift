import AirgapOCI
import AsyncHTTPClient
import Foundation
import NIOCore

/// A blob's bytes as segments of files (a blob inside a bundle may span two volumes).
public struct FileSegments: Sendable {
    public var segments: [Segment]
    public struct Segment: Sendable {
        public var path: String
        public var offset: Int64
        public var length: Int64
        public init(path: String, offset: Int64, length: Int64) { self.path = path; self.offset = offset; self.length = length }
    }
    public init(_ segments: [Segment]) { self.segments = segments }
    public static func whole(_ path: String, size: Int64) -> FileSegments { FileSegments([Segment(path: path, offset: 0, length: size)]) }

    /// The bytes [start, start+length) of this range.
    func slice(from start: Int64, length: Int64) -> FileSegments {
        var result: [Segment] = []
        var skip = start, want = length
        for s in segments where want > 0 {
            if skip >= s.length { skip -= s.length; continue }
            let take = Swift.min(s.length - skip, want)
            result.append(Segment(path: s.path, offset: s.offset + skip, length: take))
            want -= take
            skip = 0
        }
        return FileSegments(result)
    }
}

/// Reads file segments in 1 MiB buffers; with `expected`, hashes them and fails at the end when the
/// digest differs, so a registry never commits bytes that changed since they were verified.
struct SegmentChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let segments: FileSegments
    let expected: Digest?

    struct AsyncIterator: AsyncIteratorProtocol {
        let segments: [FileSegments.Segment]
        let expected: Digest?
        var index = 0
        var done: Int64 = 0
        var hasher = DigestHasher()
        var finished = false

        mutating func next() async throws -> ByteBuffer? {
            while index < segments.count && done >= segments[index].length { index += 1; done = 0 }
            guard index < segments.count else {
                if let expected, !finished {
                    finished = true
                    let actual = hasher.finalize()
                    guard actual == expected else {
                        throw RegistryError(.digestMismatch, "the bytes read for \(expected) hash to \(actual); the source changed or is damaged")
                    }
                }
                return nil
            }
            let segment = segments[index]
            let count = Int(Swift.min(Int64(1 << 20), segment.length - done))
            let fd = open(segment.path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw RegistryError(.unsupported, "cannot read \(segment.path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            let position = segment.offset + done
            let n = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw -> Int in
                let r = pread(fd, raw.baseAddress!, count, off_t(position))
                if r <= 0 { throw RegistryError(.unsupported, "cannot read \(segment.path): it is shorter than expected or unreadable") }
                return r
            }
            if expected != nil { buffer.withUnsafeReadableBytes { hasher.update($0) } }
            done += Int64(n)
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(segments: segments.segments, expected: expected) }
}
