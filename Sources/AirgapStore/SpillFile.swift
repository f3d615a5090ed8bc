#if canImport(Glibc)
import Glibc
#endif
import AirgapContent
import AirgapOCI
import Foundation

/// A temporary file with no name (O_TMPFILE, or a name removed as soon as it is open where the
/// file system has no O_TMPFILE, such as vfat on a USB stick): what is appended can be read back,
/// and nothing is left behind however the process ends. Documents too large to hold while a
/// 10,000-image bundle is being started go here between being encoded and being written.
public final class SpillFile: DocumentSpill, @unchecked Sendable { // appends under a lock; reads are pread
    /// Bytes appended in one go, with their digest taken as they were written.
    public struct Piece: Sendable {
        public let offset: Int64
        public let size: Int64
        public let digest: Digest
    }

    let fd: Int32 // internal for the tests that alter the file behind its back
    /// The directory it is in: what an error names.
    public let directory: String
    public var size: Int64 { lock.withLock { written } }
    private var written: Int64 = 0
    private let lock = NSLock()

    /// `nameless` false: the fallback for file systems without O_TMPFILE, taken at once (tests).
    public init(in directory: String, nameless: Bool = true) throws {
        let dir = directory.isEmpty ? "." : directory
        self.directory = dir
        // O_TMPFILE is a C macro Swift does not import: __O_TMPFILE (the generic Linux value) | O_DIRECTORY.
        let fd = nameless ? Glibc.open(dir, 0o20000000 | O_DIRECTORY | O_RDWR | O_CLOEXEC, 0o600) : -1
        if fd >= 0 { self.fd = fd; return }
        var template = Array("\(dir)/.airgap-temporary-XXXXXX".utf8CString)
        let named = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard named >= 0 else { throw StoreError.posix(path: dir) }
        _ = fcntl(named, F_SETFD, FD_CLOEXEC) // mkostemp is a GNU extension Swift's Glibc lacks
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.fd = named
    }

    deinit { Glibc.close(fd) }

    /// Appends what `produce` hands its writer, hashing it on the way.
    public func append(_ produce: ((Data) throws -> Void) throws -> Void) throws -> Piece {
        try lock.withLock {
            let start = written
            var hasher = DigestHasher()
            try produce { data in
                hasher.update(data)
                // At the recorded end, not the file position: a write that failed part way
                // leaves no bytes where the next piece will be said to start.
                try data.withUnsafeBytes { bytes in
                    var done = 0
                    while done < bytes.count {
                        let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(written) + off_t(done))
                        if n < 0 && errno == EINTR { continue }
                        guard n > 0 else { throw StoreError.posix(path: directory, code: n < 0 ? errno : EIO) }
                        done += n
                    }
                }
                written += Int64(data.count)
            }
            return Piece(offset: start, size: written - start, digest: hasher.finalize())
        }
    }

    /// A plan's document, appended whole (`DocumentSpill`).
    public func append(_ data: Data) throws -> Int64 {
        try append { write in try write(data) }.offset
    }

    /// A plan's document read back whole; `PlanDocuments` checks it against its digest.
    public func read(offset: Int64, size: Int) throws -> Data {
        var data = Data(count: size)
        var done = 0
        try data.withUnsafeMutableBytes { buffer in
            while done < size {
                let n = pread(fd, buffer.baseAddress! + done, size - done, off_t(offset) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    if n < 0 { throw StoreError.posix(path: directory) }
                    throw StoreError.posix(path: directory, code: EIO)
                }
                done += n
            }
        }
        return data
    }

    /// Reads a piece back a MiB at a time. The bytes are hashed again and must be the ones written:
    /// the file is ours, but it sat on a disk between the two.
    public func read(_ piece: Piece, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var hasher = DigestHasher()
        var offset = piece.offset
        let end = piece.offset + piece.size
        while offset < end {
            let want = Int(min(Int64(buffer.count), end - offset))
            let n = pread(fd, buffer.baseAddress!, want, off_t(offset))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                if n < 0 { throw StoreError.posix(path: directory) }
                throw StoreError.posix(path: directory, code: EIO)
            }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<n])
            hasher.update(chunk)
            try body(chunk)
            offset += Int64(n)
        }
        guard hasher.finalize() == piece.digest else {
            throw ContentError(.verification, "a temporary file in \(directory) changed between being written and being read back; nothing was written from it; run the command again")
        }
    }
}
