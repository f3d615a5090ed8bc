import AirgapOCI
import AirgapTar
import Foundation

/// `airgap/SHA256SUMS`: one `<hex>  <name>` line per entry, in the bundle's entry order,
/// readable by `sha256sum -c` after extraction.
public struct Checksums: Sendable, Equatable {
    public var entries: [(name: String, digest: Digest)]

    public init(entries: [(name: String, digest: Digest)]) { self.entries = entries }

    public static func == (a: Checksums, b: Checksums) -> Bool {
        a.entries.map(\.name) == b.entries.map(\.name) && a.entries.map(\.digest) == b.entries.map(\.digest)
    }

    public var data: Data {
        var out = Data(capacity: entries.count * Self.lineBytes)
        Self.append(entries, to: &out)
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
        var entries: [(String, Digest)] = []
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
            entries.append((name, digest))
        }
        return Checksums(entries: entries)
    }

    public func digest(of name: String) -> Digest? { entries.first { $0.name == name }?.digest }
}
