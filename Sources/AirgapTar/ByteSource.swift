#if canImport(Glibc)
import Glibc
#endif
import Foundation

public struct TarError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Where a tar stream's bytes come from. `read` returns 0 at the end.
public protocol ByteSource: AnyObject {
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Human-readable position for error messages ("bundle.tar.002 at byte 5000").
    var positionDescription: String { get }
}

/// Reads one file or several files in order as one stream (split volumes), never reassembling them.
public final class FileSequenceSource: ByteSource {
    public let paths: [String]
    private var index = 0
    private var fd: Int32 = -1
    private var offsetInFile: Int64 = 0
    /// Called when a volume has been read to its end, with its index.
    public var onVolumeFinished: ((Int) throws -> Void)?

    public init(paths: [String]) throws {
        precondition(!paths.isEmpty)
        self.paths = paths
        try openCurrent()
    }

    public convenience init(path: String) throws { try self.init(paths: [path]) }

    private func openCurrent() throws {
        fd = Glibc.open(paths[index], O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TarError("cannot open \(paths[index]): \(String(cString: strerror(errno)))") }
        // Sequential reads: let the kernel read ahead aggressively.
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        offsetInFile = 0
    }

    public var currentVolume: Int { index }
    public var positionDescription: String {
        paths.count > 1 ? "\(paths[index]) at byte \(offsetInFile)" : "byte \(offsetInFile)"
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress!, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw TarError("cannot read \(paths[index]): \(String(cString: strerror(errno)))")
            }
            if n > 0 { offsetInFile += Int64(n); return n }
            try onVolumeFinished?(index)
            guard index + 1 < paths.count else { return 0 }
            Glibc.close(fd)
            index += 1
            try openCurrent()
        }
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }
}

/// An in-memory source, for tests and small archives.
public final class DataSource: ByteSource {
    private let data: Data
    private var offset = 0
    public init(_ data: Data) { self.data = data }
    public var positionDescription: String { "byte \(offset)" }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, data.count - offset)
        guard n > 0 else { return 0 }
        data.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + n])) }
        offset += n
        return n
    }
}
