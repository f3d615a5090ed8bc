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

