import AirgapContent
import AirgapOCI
import AirgapTar
import Foundation

/// `airgap/SHA256SUMS`: one `<hex>  <name>` line per entry, in the bundle's entry order,
/// readable by `sha256sum -c` after extraction.
public struct Checksums: Sendable, Equatable {
    /// One line. A blob's name (`blobs/sha256/<its digest>`) is not kept as text: a
    /// 10,000-image bundle lists 30,000 of them, 96 bytes of heap each.
    public struct Entry: Sendable, Equatable {
        public let digest: Digest
        /// nil: the name is the blob path of `digest`.
        private let label: String?
        public init(name: String, digest: Digest) {
            self.digest = digest
            label = name.hasPrefix("blobs/sha256/") && name.utf8.count == 77 && Naming.digest(ofBlobPath: name) == digest ? nil : name
        }
        public var name: String { label ?? Naming.blobPath(digest) }
        /// The sha256 a `blobs/sha256/<hex>` name claims, if the name is one.
        public var blobDigest: Digest? {
            guard let label else { return digest }
            guard label.hasPrefix("blobs/sha256/") else { return nil }
            return try? Digest(algorithm: .sha256, encoded: String(label.dropFirst("blobs/sha256/".count)))
        }
    }
    public var entries: [Entry]

    public init(entries: [(name: String, digest: Digest)]) { self.entries = entries.map { Entry(name: $0.name, digest: $0.digest) } }
    init(entries: [Entry]) { self.entries = entries }

    public var data: Data {
        var out = Data(capacity: entries.count * Self.lineBytes)
        Self.append(entries.lazy.map { (name: $0.name, digest: $0.digest) }, to: &out)
        return out
    }

    /// About the bytes of one blob's line (reserved up front: the file is written straight into
    /// one buffer of its size, not joined from 30,000 line strings at 10,000 images).
    public static let lineBytes = 64 + 2 + 77 + 1

    /// Appends the lines of `entries`, which may be lazy, so the lines need not exist as values.
    public static func append<S: Sequence>(_ entries: S, to out: inout Data) where S.Element == (name: String, digest: Digest) {
        for entry in entries {
            out.append(contentsOf: entry.digest.encoded.utf8)
            out.append(contentsOf: [UInt8(ascii: " "), UInt8(ascii: " ")])
            out.append(contentsOf: entry.name.utf8)
            out.append(UInt8(ascii: "\n"))
        }
    }

    public static func parse(_ data: Data) throws -> Checksums {
        guard let text = String(data: data, encoding: .utf8) else { throw BundleError.format("airgap/SHA256SUMS is not UTF-8 text") }
        var entries: [Entry] = []
        var seen = Set<String>()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[1].hasPrefix(" "), let digest = try? Digest(algorithm: .sha256, encoded: String(parts[0])) else {
                throw BundleError.format("airgap/SHA256SUMS line \(number + 1) is not '<sha256>  <name>'")
            }
            let name = String(parts[1].dropFirst())
            // Only names every tar reader sees the same way (and that print safely).
            guard CanonicalTar.isAllowedName(name) else {
                throw BundleError.format("airgap/SHA256SUMS line \(number + 1) names an entry that cannot be in a bundle (\(EscapedText.quote(name)))")
            }
            guard seen.insert(name).inserted else { throw BundleError.format("airgap/SHA256SUMS names \(name) twice") }
            entries.append(Entry(name: name, digest: digest))
        }
        return Checksums(entries: entries)
    }

    public func digest(of name: String) -> Digest? { entries.first { $0.name == name }?.digest }
}
