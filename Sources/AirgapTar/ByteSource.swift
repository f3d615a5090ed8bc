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
/// Every file is opened and checked up front: only regular files are read, so a FIFO, a device
/// or a symlink to `/dev/zero` is refused by name instead of blocking or streaming forever, and
/// what is read is the file that was checked (no swap between check and open).
public final class FileSequenceSource: ByteSource {
    public let paths: [String]
    /// The size of each file when it was opened.
    public let sizes: [Int64]
    private var descriptors: [Int32]
    private var index = 0
    private var offsetInFile: Int64 = 0
    /// Called when a volume has been read to its end, with its index.
    public var onVolumeFinished: ((Int) throws -> Void)?

    /// `regularOnly: false` lets one stream (standard input for `image load`) through as well.
    public init(paths: [String], regularOnly: Bool = true) throws {
        precondition(!paths.isEmpty)
        self.paths = paths
        var descriptors: [Int32] = []
        var sizes: [Int64] = []
        do {
            for path in paths {
                let (fd, size) = try Self.openRegularFile(path, regularOnly: regularOnly)
                descriptors.append(fd)
                sizes.append(size)
            }
        } catch {
            for fd in descriptors { Glibc.close(fd) }
            throw error
        }
        self.descriptors = descriptors
        self.sizes = sizes
    }

    public convenience init(path: String, regularOnly: Bool = true) throws { try self.init(paths: [path], regularOnly: regularOnly) }

    /// Opens without blocking (a FIFO with no writer would block `open`), checks the opened file
    /// is a regular file, then reads it normally.
    public static func openRegularFile(_ path: String, regularOnly: Bool = true) throws -> (fd: Int32, size: Int64) {
        if path == "-" { throw TarError("'-' (standard input) cannot be read: bundles and archives are read from a regular file; save it to a file first") }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw TarError("cannot open \(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else { Glibc.close(fd); throw TarError("cannot read \(path): \(String(cString: strerror(errno)))") }
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG || !regularOnly && (type == S_IFIFO || type == S_IFCHR || type == S_IFSOCK) else {
            Glibc.close(fd)
            let what = type == S_IFIFO ? "a FIFO (named pipe)" : type == S_IFCHR ? "a character device" : type == S_IFBLK ? "a block device"
                : type == S_IFDIR ? "a directory" : type == S_IFSOCK ? "a socket" : "not a regular file"
            throw TarError("\(path) is \(what), not a regular file: bundles and archives are read from regular files; copy it to a file first")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        // Sequential reads: let the kernel read ahead aggressively.
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        return (fd, Int64(st.st_size))
    }

    public var currentVolume: Int { index }
    public var positionDescription: String {
        paths.count > 1 ? "\(paths[index]) at byte \(offsetInFile)" : "byte \(offsetInFile)"
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(descriptors[index], buffer.baseAddress!, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw TarError("cannot read \(paths[index]): \(String(cString: strerror(errno)))")
            }
            if n > 0 { offsetInFile += Int64(n); return n }
            try onVolumeFinished?(index)
            guard index + 1 < paths.count else { return 0 }
            index += 1
            offsetInFile = 0
        }
    }

    deinit { for fd in descriptors { Glibc.close(fd) } }
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
