import AirgapOCI
import AirgapTar
import Foundation

// The differential target: whatever the canonical reader accepts as a whole archive, libarchive
// must read as exactly the same regular files with the same bytes, in the same order. (Go's
// archive/tar, GNU tar and Python are compared with it in the end-to-end tests.)
// libFuzzer owns main, so this file's top-level code never runs.

struct Entry: Equatable { var name: String; var digest: Digest }

func canonicalEntries(_ data: Data) -> [Entry]? {
    let reader = CanonicalTarReader(source: DataSource(data), bufferSize: 4096)
    var entries: [Entry] = []
    do {
        while let header = try reader.readAnyHeader(limit: 1 << 20) {
            var hasher = DigestHasher()
            try reader.readData(size: header.size, entry: header.name) { hasher.update($0) }
            entries.append(Entry(name: header.name, digest: hasher.finalize()))
        }
    } catch {
        return nil
    }
    return entries
}

func libarchiveEntries(_ data: Data) -> [Entry]? {
    guard let reader = try? TarReader(source: DataSource(data), decompress: false) else { return nil }
    var entries: [Entry] = []
    do {
        while let entry = try reader.next() {
            guard entry.kind == .file else { return nil }
            var hasher = DigestHasher()
            try reader.readData { hasher.update($0) }
            entries.append(Entry(name: entry.name, digest: hasher.finalize()))
        }
    } catch {
        return nil
    }
    return entries
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCanonicalTar(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let canonical = canonicalEntries(data) else { return 0 }
    let other = libarchiveEntries(data)
    precondition(other == canonical, "libarchive reads \(String(describing: other)) where the canonical reader accepted \(canonical)")
    // And the accepted archive is exactly what the writer makes of those entries.
    var rewritten = Data()
    let writer = CanonicalTarWriter { rewritten.append(contentsOf: $0) }
    let reader = CanonicalTarReader(source: DataSource(data), bufferSize: 4096)
    do {
        while let header = try reader.readAnyHeader(limit: 1 << 20) {
            try writer.beginFile(header.name, size: header.size)
            try reader.readData(size: header.size, entry: header.name) { try writer.write($0) }
        }
        try writer.close()
    } catch {
        preconditionFailure("an archive read once could not be read again: \(error)")
    }
    precondition(rewritten == data, "an accepted archive differs from the writer's encoding of its entries")
    return 0
}
