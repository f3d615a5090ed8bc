import CArchive
import Foundation

/// Writes a POSIX pax tar through libarchive to any sink, with fixed owners, modes and times so that
/// the same entries always give the same bytes.
public final class TarWriter {
    public typealias Sink = (UnsafeRawBufferPointer) throws -> Void
    private let archive: OpaquePointer
    var rawArchive: OpaquePointer { archive }
    private let context: WriteContext
    private var closed = false
    /// The modification time every entry gets (reproducible output).
    public static let fixedModificationTime = 0

    final class WriteContext {
        let sink: Sink
        var error: (any Error)?
        var bytesWritten: Int64 = 0
        init(sink: @escaping Sink) { self.sink = sink }
    }

    public init(sink: @escaping Sink) throws {
        guard let a = archive_write_new() else { throw TarError("libarchive could not start a writer") }
        archive = a
        context = WriteContext(sink: sink)
        archive_write_set_format_pax_restricted(a)
        archive_write_add_filter_none(a)
        // Hand the sink 1 MiB at a time (not tar's 10 KiB records), and end the archive right after
        // its end-of-archive blocks instead of padding the last record.
        archive_write_set_bytes_per_block(a, 1 << 20)
        archive_write_set_bytes_in_last_block(a, 1)
        let status = archive_write_open(a, Unmanaged.passUnretained(context).toOpaque(), nil, { _, clientData, buffer, length in
            let ctx = Unmanaged<WriteContext>.fromOpaque(clientData!).takeUnretainedValue()
            do {
                try ctx.sink(UnsafeRawBufferPointer(start: buffer, count: length))
                ctx.bytesWritten += Int64(length)
                return length
            } catch {
                ctx.error = error
                return -1
            }
        }, nil)
        guard status == ARCHIVE_OK else {
            throw TarError("cannot start writing the archive")
        }
    }

    public var bytesWritten: Int64 { context.bytesWritten }

    private func failure(_ what: String) -> any Error {
        if let error = context.error { return error }
        let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
        return TarError("\(what): \(message)")
    }

    /// Starts a regular file entry; write exactly `size` bytes with `write` afterwards.
    public func beginFile(_ name: String, size: Int64, mode: Int32 = 0o644) throws {
        guard let entry = archive_entry_new() else { throw TarError("out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname_utf8(entry, name)
        archive_entry_set_filetype(entry, UInt32(airgap_AE_IFREG))
        archive_entry_set_perm(entry, mode_t(mode))
        archive_entry_set_size(entry, size)
        archive_entry_set_mtime(entry, TarWriter.fixedModificationTime, 0)
        archive_entry_set_uid(entry, 0)
        archive_entry_set_gid(entry, 0)
        guard archive_write_header(archive, entry) == ARCHIVE_OK else { throw failure("cannot write the header of \(name)") }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = archive_write_data(archive, bytes.baseAddress! + offset, bytes.count - offset)
            guard n > 0 else { throw failure("cannot write archive data") }
            offset += n
        }
    }

    public func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }

    /// A whole small file in one call.
    public func addFile(_ name: String, data: Data) throws {
        try beginFile(name, size: Int64(data.count))
        try write(data)
    }

    public func addDirectory(_ name: String) throws {
        guard let entry = archive_entry_new() else { throw TarError("out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname_utf8(entry, name.hasSuffix("/") ? name : name + "/")
        archive_entry_set_filetype(entry, UInt32(airgap_AE_IFDIR))
        archive_entry_set_perm(entry, 0o755)
        archive_entry_set_mtime(entry, TarWriter.fixedModificationTime, 0)
        guard archive_write_header(archive, entry) == ARCHIVE_OK else { throw failure("cannot write the header of \(name)") }
    }

    /// A symbolic link (build contexts keep them, as Docker's context tar does), with the fixed owner and time.
    public func addSymlink(_ name: String, target: String) throws {
        guard let entry = archive_entry_new() else { throw TarError("out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname_utf8(entry, name)
        archive_entry_set_filetype(entry, UInt32(airgap_AE_IFLNK))
        archive_entry_set_symlink_utf8(entry, target)
        archive_entry_set_perm(entry, 0o777)
        archive_entry_set_mtime(entry, TarWriter.fixedModificationTime, 0)
        archive_entry_set_uid(entry, 0)
        archive_entry_set_gid(entry, 0)
        guard archive_write_header(archive, entry) == ARCHIVE_OK else { throw failure("cannot write the header of \(name)") }
    }

    /// Writes the end-of-archive marker and flushes.
    public func close() throws {
        guard !closed else { return }
        closed = true
        guard archive_write_close(archive) == ARCHIVE_OK else { throw failure("cannot finish the archive") }
    }

    deinit {
        if !closed { archive_write_close(archive) }
        archive_write_free(archive)
    }
}

/// A sink writing to a file descriptor.
public func fileSink(fd: Int32, path: String) -> TarWriter.Sink {
    { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw TarError("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }
}
