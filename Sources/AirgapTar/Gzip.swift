import CArchive
import Foundation

/// In-memory gzip through libarchive's raw format; used to make small generated layers.
public enum Gzip {
    public static func compress(_ data: Data) throws -> Data {
        guard let a = archive_write_new() else { throw TarError("libarchive could not start a writer") }
        defer { archive_write_free(a) }
        archive_write_set_format_raw(a)
        archive_write_add_filter_gzip(a)
        // No timestamp in the gzip header: the same input gives the same bytes.
        archive_write_set_filter_option(a, "gzip", "timestamp", nil)
        archive_write_set_bytes_in_last_block(a, 1)
        let capacity = data.count + data.count / 10 + 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        var used = 0
        guard archive_write_open_memory(a, buffer, capacity, &used) == ARCHIVE_OK else { throw TarError("gzip: cannot open") }
        guard let entry = archive_entry_new() else { throw TarError("out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_filetype(entry, airgap_AE_IFREG)
        archive_entry_set_pathname(entry, "data")
        guard archive_write_header(a, entry) == ARCHIVE_OK else { throw TarError("gzip: cannot start") }
        let written = data.withUnsafeBytes { archive_write_data(a, $0.baseAddress, $0.count) }
        guard written == data.count, archive_write_close(a) == ARCHIVE_OK else { throw TarError("gzip: cannot compress") }
        return Data(bytes: buffer, count: used)
    }
}
