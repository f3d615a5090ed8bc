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

    /// Written straight into one buffer of the final size (a line per blob: at 10,000 images an
    /// array of line strings and their join would be several times the 4 MB it makes).
    public var data: Data {
        var out = Data(capacity: entries.reduce(0) { $0 + $1.digest.encoded.utf8.count + $1.name.utf8.count + 3 })
        for entry in entries {
            out.append(contentsOf: entry.digest.encoded.utf8)
            out.append(contentsOf: [UInt8(ascii: " "), UInt8(ascii: " ")])
            out.append(contentsOf: entry.name.utf8)
            out.append(UInt8(ascii: "\n"))
        }
        return out
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
