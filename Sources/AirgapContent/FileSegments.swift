#if canImport(Glibc)
import Glibc
#endif
import AirgapOCI

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

    /// Reads the bytes from `start` on, in chunks of at most 1 MiB. The consumer verifies: this only reads.
    public func read(from start: Int64 = 0, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let reader = try slice(from: start, length: Swift.max(0, length - start)).open()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var position: Int64 = 0
        while position < reader.length {
            let n = try reader.read(at: position, into: buffer)
            try body(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            position += Int64(n)
        }
    }

    /// Opens every file once, as a regular file (never a FIFO or device swapped in), for reads at
    /// any position: what is read comes from the files as they were when opened, whatever is
    /// renamed over their paths afterwards.
    public func open() throws -> Reader { try Reader(self) }

    /// The open files of a range; the one place a blob's bytes are read from local disk.
    public final class Reader: @unchecked Sendable { // immutable after init; pread needs no lock
        private let files: [(fd: Int32, segment: Segment, start: Int64)]
        public let length: Int64

        init(_ segments: FileSegments) throws {
            var files: [(fd: Int32, segment: Segment, start: Int64)] = []
            var start: Int64 = 0
            do {
                for segment in segments.segments where segment.length > 0 {
                    let fd = Glibc.open(segment.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
                    guard fd >= 0 else { throw ContentError(.missing, "cannot open \(segment.path): \(String(cString: strerror(errno)))") }
                    files.append((fd, segment, start))
                    var st = stat()
                    guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                        throw ContentError(.verification, "\(segment.path) is not a regular file any more; refusing to read it")
                    }
                    start += segment.length
                }
            } catch {
                for file in files { close(file.fd) }
                throw error
            }
            self.files = files
            length = start
        }

        deinit { for file in files { close(file.fd) } }

        /// Reads up to `buffer.count` bytes at `position` (within one file); returns how many.
        /// Throws when a file is shorter than its segment.
        public func read(at position: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            guard position < length, buffer.count > 0,
                  let file = files.last(where: { $0.start <= position }) else { return 0 }
            let within = position - file.start
            let want = Int(Swift.min(Int64(buffer.count), file.segment.length - within))
            while true {
                let n = pread(file.fd, buffer.baseAddress!, want, off_t(file.segment.offset + within))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw ContentError(.verification, "\(file.segment.path) ends before byte \(file.segment.offset + file.segment.length); it is shorter than when it was checked")
                }
                return n
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


extension FileSegments {
    /// A blob read from its file segments, from byte 0 to its end, every byte hashed, handing out
    /// the bytes of `range` (all of them by default). The call that hands out the last bytes of the
    /// range returns only after the whole blob hashed to `expected`: a reader of a changed blob
    /// never gets all of what it asked for. With `expected` nil it only reads.
    public final class Chunks: @unchecked Sendable { // one reader at a time
        private let reader: Reader
        private let expected: Digest?
        public let range: Range<Int64>
        private var position: Int64
        private var hasher = DigestHasher()
        private var scratch: UnsafeMutableRawBufferPointer?

        public init(_ segments: FileSegments, expected: Digest?, range: Range<Int64>? = nil) throws {
            reader = try segments.open()
            self.expected = expected
            self.range = range ?? 0..<segments.length
            position = expected == nil ? self.range.lowerBound : 0
        }

        deinit { scratch?.deallocate() }

        /// Fills the start of `buffer` with the next bytes of the range; nil once the range is out.
        public func next(into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
            if position >= range.upperBound {
                try hashToEnd(using: buffer) // nothing of the caller's is pending here
                return nil
            }
            while position < range.lowerBound { // hashed, not handed out
                let window = UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(Swift.min(Int64(buffer.count), range.lowerBound - position))])
                hash(window, try reader.read(at: position, into: window))
            }
            let window = UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(Swift.min(Int64(buffer.count), range.upperBound - position))])
            let n = try reader.read(at: position, into: window)
            hash(window, n)
            if position == range.upperBound && expected != nil {
                if position < reader.length && scratch == nil { scratch = .allocate(byteCount: 1 << 20, alignment: 4096) }
                try hashToEnd(using: scratch ?? buffer) // reads nothing into buffer when the range ends the blob
            }
            return n
        }

        private var checked = false

        private func hash(_ window: UnsafeMutableRawBufferPointer, _ n: Int) {
            if expected != nil { hasher.update(UnsafeRawBufferPointer(rebasing: window[..<n])) }
            position += Int64(n)
        }

        /// Hashes what is left of the blob (into `scratch`, never the caller's pending bytes) and compares.
        private func hashToEnd(using scratch: UnsafeMutableRawBufferPointer) throws {
            guard let expected, !checked else { return }
            var at = position
            while at < reader.length {
                let n = try reader.read(at: at, into: scratch)
                hasher.update(UnsafeRawBufferPointer(rebasing: scratch[..<n]))
                at += Int64(n)
            }
            checked = true
            let actual = hasher.finalize()
            guard actual == expected else {
                var error = ContentError(.verification, "the bytes on disk for \(expected) hash to \(actual): the media changed or is damaged since it was checked")
                error.actual = actual
                throw error
            }
        }
    }
}
