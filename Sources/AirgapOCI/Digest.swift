import Crypto
import Foundation

/// A content digest such as `sha256:4d3c…`. Parsing validates the algorithm and the encoding,
/// so a `Digest` value is always well formed and safe to use as a file name.
public struct Digest: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public enum Algorithm: String, Sendable, Codable {
        case sha256, sha512
        var hexLength: Int { self == .sha256 ? 64 : 128 }
    }

    /// A sha256 as its 32 bytes (four big-endian words), not 64 characters of text: a plan of
    /// 10,000 images holds some 100,000 digests, and a string of its own each cost 112 bytes of
    /// heap. sha512, rare, stays text.
    private enum Storage: Hashable, Sendable {
        case sha256(UInt64, UInt64, UInt64, UInt64)
        case sha512(String)
    }
    private let storage: Storage

    public var algorithm: Algorithm {
        if case .sha256 = storage { return .sha256 }
        return .sha512
    }

    /// Lower-case hex of the hash.
    public var encoded: String {
        switch storage {
        case .sha512(let hex): return hex
        case .sha256(let a, let b, let c, let d):
            let words = (a, b, c, d)
            return String(unsafeUninitializedCapacity: 64) { out in
                withUnsafeBytes(of: words) { raw in
                    for w in 0..<4 {
                        let word = raw.load(fromByteOffset: w * 8, as: UInt64.self)
                        for i in 0..<16 { out[w * 16 + i] = Self.hex(UInt8(truncatingIfNeeded: word >> (60 - 4 * UInt64(i)) & 0xf)) }
                    }
                }
                return 64
            }
        }
    }
    private static func hex(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10 }

    public init(algorithm: Algorithm, encoded: String) throws {
        guard encoded.utf8.count == algorithm.hexLength,
              encoded.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else {
            throw OCIError.invalidDigest("\(algorithm.rawValue):\(encoded)",
                                         reason: "expected \(algorithm.hexLength) lower-case hex characters")
        }
        guard algorithm == .sha256 else { storage = .sha512(encoded); return }
        var words = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &words) { raw in
            let w = raw.bindMemory(to: UInt64.self)
            for (i, c) in encoded.utf8.enumerated() { w[i / 16] = w[i / 16] << 4 | UInt64(c <= 0x39 ? c - 0x30 : c - 0x61 + 10) }
        }
        storage = .sha256(words.0, words.1, words.2, words.3)
    }

    /// A sha256 from the hash's 32 bytes.
    init(sha256 bytes: some Sequence<UInt8>) {
        var words = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &words) { raw in
            let w = raw.bindMemory(to: UInt64.self)
            for (i, byte) in bytes.enumerated() where i < 32 { w[i / 8] = w[i / 8] << 8 | UInt64(byte) }
        }
        storage = .sha256(words.0, words.1, words.2, words.3)
    }

    public init(parsing text: String) throws {
        guard let colon = text.firstIndex(of: ":") else {
            throw OCIError.invalidDigest(text, reason: "expected ALGORITHM:HEX such as sha256:<64 hex>")
        }
        let name = String(text[..<colon])
        guard let algorithm = Algorithm(rawValue: name) else {
            throw OCIError.invalidDigest(text, reason: "unsupported algorithm '\(name)' (sha256 and sha512 are supported)")
        }
        try self.init(algorithm: algorithm, encoded: String(text[text.index(after: colon)...]))
    }

    public var description: String { "\(algorithm.rawValue):\(encoded)" }

    /// The 12-character short ID Docker prints.
    public var shortID: String { String(encoded.prefix(12)) }

    /// The order of `description`: the words compare as the hex does, and both algorithm names
    /// are six letters.
    public static func < (lhs: Digest, rhs: Digest) -> Bool {
        switch (lhs.storage, rhs.storage) {
        case let (.sha256(a0, a1, a2, a3), .sha256(b0, b1, b2, b3)): return (a0, a1, a2, a3) < (b0, b1, b2, b3)
        case let (.sha512(a), .sha512(b)): return a < b
        case (.sha256, .sha512): return true
        case (.sha512, .sha256): return false
        }
    }

    public static func sha256(of bytes: some DataProtocol) -> Digest {
        Digest(sha256: SHA256.hash(data: bytes))
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do { try self.init(parsing: text) } catch {
            // Rethrown as a decoding error so the message carries the field's path.
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)", underlyingError: error))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Streaming hasher for either digest algorithm; the one way the code base turns bytes into a `Digest`.
public struct DigestHasher: @unchecked Sendable { // value type; the hash state is plain memory
    private enum State { case sha256(SHA256), sha512(SHA512) }
    private var state: State
    public private(set) var byteCount: Int64 = 0

    public init(_ algorithm: Digest.Algorithm = .sha256) {
        state = algorithm == .sha256 ? .sha256(SHA256()) : .sha512(SHA512())
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        byteCount += Int64(bytes.count)
        switch state {
        case .sha256(var h): h.update(bufferPointer: bytes); state = .sha256(h)
        case .sha512(var h): h.update(bufferPointer: bytes); state = .sha512(h)
        }
    }

    public mutating func update(_ data: some DataProtocol) {
        for region in data.regions { region.withUnsafeBytes { update($0) } }
    }

    public func finalize() -> Digest {
        switch state {
        case .sha256(let h): return Digest(sha256: h.finalize())
        case .sha512(let h): return try! Digest(algorithm: .sha512, encoded: h.finalize().hexString)
        }
    }
}

extension Sequence where Element == UInt8 {
    public var hexString: String {
        let table = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            out.append(table[Int(byte >> 4)])
            out.append(table[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
