import Foundation

/// The stream compressions libarchive reads for us, told apart by their first bytes.
public enum Compression: String, Sendable {
    case gzip, zstd, xz, bzip2

    public static func detect(_ head: some Collection<UInt8>) -> Compression? {
        let bytes = Array(head.prefix(6))
        if bytes.starts(with: [0x1f, 0x8b]) { return .gzip }
        if bytes.starts(with: [0x28, 0xb5, 0x2f, 0xfd]) { return .zstd }
        if bytes.starts(with: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) { return .xz }
        if bytes.starts(with: [0x42, 0x5a, 0x68]) { return .bzip2 } // "BZh"
        return nil
    }

    /// Reads the first bytes of a regular file (fewer if it is shorter); nil for anything else,
    /// which is never read here (opening a FIFO would block).
    public static func detect(path: String) -> Compression? {
        guard let (fd, _) = try? FileSequenceSource.openRegularFile(path) else { return nil }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 6)
        let n = head.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 6) }
        return detect(head.prefix(max(0, n)))
    }

    /// The command that undoes it, for error messages.
    public var decompressCommand: String {
        switch self {
        case .gzip: "gunzip"
        case .zstd: "unzstd"
        case .xz: "unxz"
        case .bzip2: "bunzip2"
        }
    }
}
