import CArchive
import Foundation

/// One tar entry header. `name` is data, never a file-system path.
public struct TarEntry: Sendable {
    public enum Kind: Sendable, Equatable { case file, directory, symlink, hardlink, other(String) }
    public var name: String
    public var kind: Kind
    public var size: Int64
    public var linkTarget: String?
    public var mode: UInt32
}

/// Streams a tar (optionally gzip-, zstd-, xz- or bzip2-compressed) through libarchive.
///
/// Reads come through a callback with a page-aligned buffer (libarchive is several times faster
/// that way than with `archive_read_open_filename`).
public final class TarReader {
    private let archive: OpaquePointer
    private let context: ReadContext
    private var entryOpen = false

    final class ReadContext {
        let source: any ByteSource
        let buffer: UnsafeMutableRawBufferPointer
        var error: (any Error)?
        init(source: any ByteSource, bufferSize: Int) {
            self.source = source
            buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4096)
        }
        deinit { buffer.deallocate() }
    }

    /// `decompress: false` reads plain tar only (bundles: their byte offsets must be file offsets).
    /// `raw`: the source is not read as a tar: its one entry is the whole (decompressed) stream.
    public init(source: any ByteSource, bufferSize: Int = 1 << 20, decompress: Bool = true, raw: Bool = false) throws {
        guard let a = archive_read_new() else { throw TarError("libarchive could not start a reader") }
        archive = a
        context = ReadContext(source: source, bufferSize: bufferSize)
        if decompress {
            archive_read_support_filter_gzip(a)
            archive_read_support_filter_zstd(a)
            archive_read_support_filter_xz(a)
            archive_read_support_filter_bzip2(a)
        }
        if raw { archive_read_support_format_raw(a) } else { archive_read_support_format_tar(a) }
        let status = archive_read_open(a, Unmanaged.passUnretained(context).toOpaque(), nil, { _, clientData, bufferOut in
            let ctx = Unmanaged<ReadContext>.fromOpaque(clientData!).takeUnretainedValue()
            do {
                let n = try ctx.source.read(into: ctx.buffer)
                bufferOut?.pointee = UnsafeRawPointer(ctx.buffer.baseAddress!)
                return n
            } catch {
                ctx.error = error
                return -1
            }
        }, nil)
        if status != ARCHIVE_OK { throw failure("cannot start reading the archive") }
    }

    deinit { archive_read_free(archive) }

    private func failure(_ what: String) -> TarError {
        if let error = context.error { return TarError("\(what): \(error)") }
        let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
        return TarError("\(what) at \(context.source.positionDescription): \(message)")
    }

    /// The next header, or nil at the end of the archive. Unread data of the previous entry is skipped.
    public func next() throws -> TarEntry? {
        var entryPointer: OpaquePointer?
        let status = archive_read_next_header(archive, &entryPointer)
        if status == ARCHIVE_EOF { return nil }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let e = entryPointer else {
            throw failure("the archive is truncated or damaged")
        }
        let name: String
        if let utf8 = archive_entry_pathname_utf8(e) { name = String(cString: utf8) }
        else if let raw = archive_entry_pathname(e) { name = String(cString: raw) }
        else { throw failure("an entry has no name") }
        let type = archive_entry_filetype(e)
        var kind: TarEntry.Kind
        var link: String?
        if let hard = archive_entry_hardlink(e) {
            kind = .hardlink
            link = String(cString: hard)
        } else {
            switch type {
            case UInt32(airgap_AE_IFREG): kind = .file
            case UInt32(airgap_AE_IFDIR): kind = .directory
            case UInt32(airgap_AE_IFLNK):
                kind = .symlink
                link = archive_entry_symlink(e).map { String(cString: $0) }
            case UInt32(airgap_AE_IFCHR): kind = .other("character device")
            case UInt32(airgap_AE_IFBLK): kind = .other("block device")
            case UInt32(airgap_AE_IFIFO): kind = .other("named pipe")
            case UInt32(airgap_AE_IFSOCK): kind = .other("socket")
            default: kind = .other("unknown type")
            }
        }
        let size = archive_entry_size_is_set(e) != 0 ? archive_entry_size(e) : 0
        guard size >= 0 else { throw failure("entry '\(name)' declares a negative size") }
        entryOpen = true
        return TarEntry(name: name, kind: kind, size: size, linkTarget: link, mode: UInt32(archive_entry_perm(e)))
    }

    /// Streams the current entry's data to `body` in blocks. Throws if the archive ends early.
    public func readData(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var block: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        var expectedOffset: Int64 = 0
        while true {
            let status = archive_read_data_block(archive, &block, &size, &offset)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN else { throw failure("the archive is truncated or damaged") }
            guard offset == expectedOffset else { throw TarError("an entry is sparse, which image archives never are") }
            if size > 0, let block {
                try body(UnsafeRawBufferPointer(start: block, count: size))
            }
            expectedOffset += Int64(size)
        }
    }

    /// Offset in the uncompressed stream of the current entry's header (its first header block).
    public var headerPosition: Int64 { archive_read_header_position(archive) }

    /// Offset in the uncompressed stream of the current entry's data, read right after `next()`
    /// (what the format has consumed: its header blocks, pax and GNU extensions included). A
    /// caller that reads the data again from there checks it against what `readData` gave.
    public var dataPosition: Int64 { archive_filter_bytes(archive, 0) }

    /// A reader over one in-memory entry body (so code taking a reader can be fed bytes already read).
    public static func memory(_ data: Data) throws -> TarReader {
        var tar = Data()
        let writer = try TarWriter { tar.append(contentsOf: $0) }
        try writer.addFile("data", data: data)
        try writer.close()
        let reader = try TarReader(source: DataSource(tar))
        _ = try reader.next()
        return reader
    }

    /// Reads the current entry whole into memory, refusing more than `limit` bytes.
    public func readAll(limit: Int) throws -> Data {
        var data = Data()
        try readData { bytes in
            guard data.count + bytes.count <= limit else { throw TarError("an entry is larger than the \(limit)-byte limit for metadata") }
            data.append(contentsOf: bytes)
        }
        return data
    }
}

extension TarReader {
    /// Hands `body` the decompressed stream of a compressed layer (what its diff_id is the digest
    /// of); false, having stopped, once it passes `limit` bytes (a compression bomb).
    public static func decompressed(_ source: any ByteSource, limit: Int64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        let reader = try TarReader(source: source, raw: true)
        guard try reader.next() != nil else { return true }
        var total: Int64 = 0
        struct TooLarge: Error {}
        do {
            try reader.readData { chunk in
                total += Int64(chunk.count)
                guard total <= limit else { throw TooLarge() }
                try body(chunk)
            }
        } catch is TooLarge {
            return false
        }
        return true
    }

    /// What a layer takes unpacked, as Docker's SIZE counts it: the bytes of its regular files
    /// (the tar's headers and padding, links and directories add nothing).
    /// nil once the total passes `limit`: skipping a file's data still inflates it, so a layer
    /// that claims more than any real one (a compression bomb) costs no more than the limit.
    public static func unpackedSize(of source: any ByteSource, limit: Int64 = .max) throws -> Int64? {
        let reader = try TarReader(source: source)
        var total: Int64 = 0
        while let entry = try reader.next() {
            if entry.kind == .file { total += entry.size }
            if total > limit { return nil }
        }
        return total
    }
}
