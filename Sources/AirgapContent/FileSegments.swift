#if canImport(Glibc)
import Glibc
#endif

/// Where a blob lies on local disk: segments of files (a blob inside a bundle may span two volumes).
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

    /// Where `length` bytes at `offset` of files read one after another (a bundle's volumes) lie.
    public static func spanning(offset: Int64, length: Int64, paths: [String], sizes: [Int64]) -> FileSegments {
        var result: [Segment] = []
        var start = offset, remaining = length
        for (path, size) in zip(paths, sizes) where remaining > 0 {
            if start >= size { start -= size; continue }
            let take = Swift.min(size - start, remaining)
            result.append(Segment(path: path, offset: start, length: take))
            remaining -= take
            start = 0
        }
        return FileSegments(result)
    }

    public var length: Int64 { segments.reduce(0) { $0 + $1.length } }

    /// Reads the bytes from `start` on, in chunks of at most 1 MiB, each file opened as a regular
    /// file (never a FIFO or device swapped in). Throws when a file is shorter than its segment.
    /// The consumer verifies: this only reads.
    public func read(from start: Int64 = 0, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        for segment in slice(from: start, length: Swift.max(0, length - start)).segments {
            let fd = open(segment.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else { throw ContentError(.missing, "cannot open \(segment.path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                throw ContentError(.verification, "\(segment.path) is not a regular file any more; refusing to read it")
            }
            var position = segment.offset
            let end = segment.offset + segment.length
            while position < end {
                let n = pread(fd, buffer.baseAddress!, Int(Swift.min(Int64(buffer.count), end - position)), off_t(position))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw ContentError(.verification, "\(segment.path) ends before byte \(end); it is shorter than when it was checked")
                }
                try body(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                position += Int64(n)
            }
        }
    }

    /// The bytes [start, start+length) of this range.
    public func slice(from start: Int64, length: Int64) -> FileSegments {
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

