import Crypto
import Foundation

/// A content digest such as `sha256:4d3c…`. Parsing validates the algorithm and the encoding,
/// so a `Digest` value is always well formed and safe to use as a file name.
public struct Digest: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public enum Algorithm: String, Sendable, Codable {
        case sha256, sha512
        var hexLength: Int { self == .sha256 ? 64 : 128 }
    }

    public let algorithm: Algorithm
    /// Lower-case hex of the hash.
    public let encoded: String

    public init(algorithm: Algorithm, encoded: String) throws {
        guard encoded.utf8.count == algorithm.hexLength,
              encoded.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else {
            throw OCIError.invalidDigest("\(algorithm.rawValue):\(encoded)",
                                         reason: "expected \(algorithm.hexLength) lower-case hex characters")
        }
        self.algorithm = algorithm
        self.encoded = encoded
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

    /// The order of `description`, without building it: both algorithm names are six letters.
    public static func < (lhs: Digest, rhs: Digest) -> Bool {
        lhs.algorithm == rhs.algorithm ? lhs.encoded < rhs.encoded : lhs.algorithm.rawValue < rhs.algorithm.rawValue
    }

    public static func sha256(of bytes: some DataProtocol) -> Digest {
        let hex = SHA256.hash(data: bytes).hexString
        // Safe: the hash is always 64 lower-case hex characters.
        return try! Digest(algorithm: .sha256, encoded: hex)
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
        case .sha256(let h): return try! Digest(algorithm: .sha256, encoded: h.finalize().hexString)
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
