#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AirgapContent
import Foundation

/// Thin wrappers over POSIX calls: the store needs fsync, flock, O_EXCL and rename, which Foundation hides.
public enum FileIO {
    public static func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw StoreError.posix(path: path) }
        return fd
    }

    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.posix(path: path)
            }
            offset += n
        }
    }

    public static func writeAll(_ fd: Int32, _ data: Data, path: String) throws {
        try data.withUnsafeBytes { try writeAll(fd, $0, path: path) }
    }

    /// Reads up to `buffer.count` bytes; 0 means end of file.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress!, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw StoreError.posix(path: path)
        }
    }

    public static func fsync(_ fd: Int32, path: String) throws {
        guard Glibc.fsync(fd) == 0 else { throw StoreError.posix(path: path) }
    }

    public static func fsyncDirectory(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = Glibc.fsync(fd); Glibc.close(fd) }
    }

    public static func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw StoreError.posix(path: to) }
    }

    /// Bytes a non-root writer may still use on the file system holding `path` (the nearest
    /// existing parent), or nil when that cannot be told.
    public static func freeBytes(near path: String) -> Int64? {
        var probe = path.isEmpty ? "." : path
        var st = statvfs()
        while statvfs(probe, &st) != 0 {
            let parent = (probe as NSString).deletingLastPathComponent
            if parent == probe || parent.isEmpty { return nil }
            probe = parent
        }
        return Int64(st.f_bavail) * Int64(st.f_frsize)
    }

    /// Refuses, before a byte is written, a write of `bytes` that cannot fit where `path` lives.
    /// A margin (1% and 4 MiB) keeps room for the file system's own blocks and metadata.
    public static func requireFreeSpace(_ bytes: Int64, at path: String, for what: String) throws {
        guard bytes > 0, let free = freeBytes(near: path) else { return }
        let needed = bytes + bytes / 100 + (4 << 20)
        guard needed > free else { return }
        throw StoreError.noSpace(path: path, detail: "\(what) needs \(ByteCount.human(needed)) and \(ByteCount.human(free)) is free; nothing was written")
    }

    public static func fileSize(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int64(st.st_size)
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// mkdir -p, with errno kept: a full or read-only disk is named as such, under `reportAs`
    /// (the directory the user gave) rather than the inner path that failed.
    public static func makeDirectories(_ path: String, reportAs: String? = nil) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            var st = stat()
            if stat(prefix, &st) == 0 {
                if (st.st_mode & S_IFMT) == S_IFDIR { continue }
                throw StoreError.io(path: reportAs ?? prefix, reason: "\(prefix) is not a directory")
            }
            // 0777 less the umask, as mkdir -p makes them (a group-shared store keeps group write).
            if mkdir(prefix, 0o777) != 0 {
                if errno == EEXIST, stat(prefix, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { continue }
                let code = errno == EEXIST ? ENOTDIR : errno
                if let reportAs, code != ENOSPC && code != EDQUOT && code != EACCES && code != EPERM && code != EROFS {
                    throw StoreError.io(path: reportAs, reason: "cannot create \(prefix): \(String(cString: strerror(code)))")
                }
                throw StoreError.posix(path: reportAs ?? prefix, code: code)
            }
        }
    }

    /// Writes a small file atomically: temp file, fsync, rename, fsync directory.
    /// `sync: false` for files that are only a cache (a lost one is rebuilt).
    /// Streams a file through `body` beside `path` and renames it into place once it is complete
    /// and fsynced: a failure leaves no half file under the name.
    public static func writeThroughTemporary(_ path: String, _ body: (Int32) async throws -> Void) async throws {
        let temp = "\(path).partial-\(getpid())"
        // A file of that name is a leftover of a killed run with this PID, or planted: replaced, never followed.
        unlink(temp)
        let fd = try open(temp, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o644)
        do {
            try await body(fd)
            try fsync(fd, path: temp)
            close(fd)
            try rename(temp, path)
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
    }

    public static func writeAtomically(_ data: Data, to path: String, mode: mode_t = 0o644, sync: Bool = true) throws {
        let temp = try writeBeside(data, for: path, mode: mode, sync: sync)
        do { try rename(temp, path) } catch { unlink(temp); throw error }
        fsyncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// The first half of `writeAtomically`: `data` in a new file next to `path` (synced unless
    /// told not to), whose name is returned for the rename; nothing is left if it fails.
    public static func writeBeside(_ data: Data, for path: String, mode: mode_t = 0o644, sync: Bool = true) throws -> String {
        let temp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = try open(temp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: mode)
        do {
            try writeAll(fd, data, path: temp)
            if sync { try fsync(fd, path: temp) }
            Glibc.close(fd)
            return temp
        } catch {
            Glibc.close(fd)
            unlink(temp)
            throw error
        }
    }

    public static func readFile(_ path: String, limit: Int = 256 << 20) throws -> Data {
        let fd = try open(path, flags: O_RDONLY)
        defer { Glibc.close(fd) }
        var data = Data()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let n = try read(fd, into: buffer, path: path)
            if n == 0 { break }
            data.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            if data.count > limit { throw StoreError.io(path: path, reason: "file is larger than \(limit) bytes") }
        }
        return data
    }
}

/// An advisory lock on a file (flock): shared for many readers or writers of blobs, exclusive for GC and tags.
public final class FileLock: @unchecked Sendable {
    private let fd: Int32
    public init(path: String, exclusive: Bool, wait: Bool = true) throws {
        fd = try FileIO.open(path, flags: O_RDWR | O_CREAT, mode: 0o644)
        var operation = exclusive ? LOCK_EX : LOCK_SH
        if !wait { operation |= LOCK_NB }
        while flock(fd, operation) != 0 {
            if errno == EINTR { continue }
            let code = errno
            Glibc.close(fd)
            if code == EWOULDBLOCK { throw StoreError.busy(path: path) }
            throw StoreError.io(path: path, reason: FileIO.errnoText(code))
        }
    }
    public func unlock() { flock(fd, LOCK_UN) }
    deinit { Glibc.close(fd) }
}
