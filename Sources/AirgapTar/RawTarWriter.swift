import CArchive
import Foundation

/// Writes any kind of tar entry, links and devices included. Only tests use it, to craft hostile
/// archives; the product writes through `TarWriter`, which makes regular files and directories only.
public final class RawTarWriter {
    public enum EntryType { case file, directory, symlink, hardlink, characterDevice }
    private let writer: TarWriter
    public init(sink: @escaping TarWriter.Sink) throws { writer = try TarWriter(sink: sink) }

    public func add(name: String, type: EntryType, data: Data = Data(), link: String? = nil) throws {
        switch type {
        case .file: try writer.addFile(name, data: data)
        case .directory: try writer.addDirectory(name)
        case .symlink, .hardlink, .characterDevice: try writer.addSpecial(name, type: type, link: link)
        }
    }

    public func close() throws { try writer.close() }
}

extension TarWriter {
    func addSpecial(_ name: String, type: RawTarWriter.EntryType, link: String?) throws {
        guard let entry = archive_entry_new() else { throw TarError("out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname_utf8(entry, name)
        switch type {
        case .symlink:
            archive_entry_set_filetype(entry, airgap_AE_IFLNK)
            archive_entry_set_symlink(entry, link)
        case .hardlink:
            archive_entry_set_filetype(entry, airgap_AE_IFREG)
            archive_entry_set_hardlink(entry, link)
        default:
            archive_entry_set_filetype(entry, airgap_AE_IFCHR)
            archive_entry_set_rdev(entry, 0x0103)
        }
        archive_entry_set_perm(entry, 0o644)
        guard archive_write_header(rawArchive, entry) == ARCHIVE_OK else { throw TarError("cannot write the header of \(name)") }
    }
}
