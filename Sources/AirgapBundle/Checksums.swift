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
        Data(entries.map { "\($0.digest.encoded)  \($0.name)\n" }.joined().utf8)
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
