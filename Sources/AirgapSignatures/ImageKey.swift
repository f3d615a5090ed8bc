import AirgapOCI
import enum Crypto.Insecure
import enum Crypto.P256
import Foundation

/// A public key images must be signed with (`--image-key`, `verify: {key: …}`), told apart by
/// content: a cosign key (PEM "PUBLIC KEY", ECDSA P-256, as `cosign generate-key-pair` writes
/// cosign.pub) or an OpenPGP public key (binary or armored, as `gpg --export [--armor]` writes)
/// for containers' simple-signing signatures.
public struct ImageKey: Sendable {
    public enum Kind: Sendable { case cosign, openPGP }
    public let path: String
    public let kind: Kind
    /// cosign: the key's SubjectPublicKeyInfo DER; OpenPGP: the binary key packets (a keyring gpgv reads).
    public let der: Data
    /// cosign: `sha256:` of the DER (what `openssl pkey -pubin -outform DER | sha256sum` prints);
    /// OpenPGP: `openpgp:` and the primary key's fingerprint, as gpg prints it.
    public let fingerprint: String

    public init(path: String, key: P256.Signing.PublicKey) {
        self.path = path
        kind = .cosign
        der = key.derRepresentation
        fingerprint = Digest.sha256(of: der).description
    }

    init(path: String, openPGP packets: Data) {
        self.path = path
        kind = .openPGP
        der = packets
        fingerprint = "openpgp:" + (Self.v4Fingerprint(packets) ?? Digest.sha256(of: packets).description)
    }

    /// Parsed from bytes that were a valid key when this value was made (cosign keys only).
    public var key: P256.Signing.PublicKey { try! P256.Signing.PublicKey(derRepresentation: der) }

    /// Reads a key file; one sentence naming the file and what to give instead when it is not one.
    public static func load(path: String) throws -> ImageKey {
        guard let data = FileManager.default.contents(atPath: path), data.count < 1 << 20 else {
            throw SignatureError("cannot read the image key \(path); check the path given to --image-key (or verify.key)")
        }
        let text = String(decoding: data, as: UTF8.self)
        if text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
            guard let packets = dearmor(text), v4Fingerprint(packets) != nil else {
                throw SignatureError("\(path) is not a readable OpenPGP public key; export it again with 'gpg --export KEYID > key.gpg'")
            }
            return ImageKey(path: path, openPGP: packets)
        }
        if let first = data.first, first & 0x80 != 0, v4Fingerprint(data) != nil {
            return ImageKey(path: path, openPGP: data)
        }
        if text.contains("PRIVATE KEY-----") || text.contains("PGP PRIVATE KEY BLOCK") {
            throw SignatureError("\(path) is a private key; give the public key (cosign.pub, or 'gpg --export KEYID'), which is all the check needs")
        }
        guard text.contains("-----BEGIN PUBLIC KEY-----") else {
            throw SignatureError("\(path) is neither a cosign public key (cosign.pub, '-----BEGIN PUBLIC KEY-----') nor an OpenPGP public key ('gpg --export KEYID')")
        }
        do {
            return ImageKey(path: path, key: try P256.Signing.PublicKey(pemRepresentation: text))
        } catch {
            throw SignatureError("\(path) is not an ECDSA P-256 public key (cosign's key type); give the cosign.pub that belongs to the signing key")
        }
    }

    /// ASCII armor → packets: the base64 body between the header block and the checksum line.
    static func dearmor(_ text: String) -> Data? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK") }),
              let end = lines[begin...].firstIndex(where: { $0.hasPrefix("-----END PGP PUBLIC KEY BLOCK") }) else { return nil }
        var body = Array(lines[(begin + 1)..<end])
        if let blank = body.firstIndex(of: "") { body = Array(body[(blank + 1)...]) }
        return Data(base64Encoded: body.filter { !$0.hasPrefix("=") }.joined())
    }

    /// The v4 fingerprint of the first packet when it is a public key packet.
    static func v4Fingerprint(_ data: Data) -> String? {
        guard let first = packets(data).first, first.tag == 6 else { return nil }
        return fingerprint(first.body)
    }

    /// Every primary key's v4 fingerprint in a keyring (`gpg --export` of several keys).
    public var primaryFingerprints: [String] {
        kind == .openPGP ? Self.packets(der).filter { $0.tag == 6 }.compactMap { Self.fingerprint($0.body) } : []
    }

    /// RFC 4880 12.2: SHA-1 over 0x99, the two-byte length and a version 4 key packet's body.
    static func fingerprint(_ body: ArraySlice<UInt8>) -> String? {
        guard body.first == 4, body.count < 65536 else { return nil }
        var hashed = Data([0x99, UInt8(body.count >> 8), UInt8(body.count & 0xff)])
        hashed.append(contentsOf: body)
        return Insecure.SHA1.hash(data: hashed).map { String(format: "%02X", $0) }.joined()
    }

    /// OpenPGP packets (old and new header formats); stops at the first malformed header.
    static func packets(_ data: Data) -> [(tag: UInt8, body: ArraySlice<UInt8>)] {
        let bytes = [UInt8](data)
        var found: [(tag: UInt8, body: ArraySlice<UInt8>)] = []
        var at = 0
        while at + 2 <= bytes.count, found.count < 10_000 {
            let header = bytes[at]
            guard header & 0x80 != 0 else { break }
            var tag: UInt8, length = 0, offset = at + 1
            if header & 0x40 == 0 {
                tag = (header >> 2) & 0x0f
                guard header & 3 < 3 else { break }
                let n = [1, 2, 4][Int(header & 3)]
                guard offset + n <= bytes.count else { break }
                for i in 0..<n { length = length << 8 | Int(bytes[offset + i]) }
                offset += n
            } else {
                tag = header & 0x3f
                let first = Int(bytes[offset])
                if first < 192 { length = first; offset += 1 }
                else if first < 224 { guard offset + 1 < bytes.count else { break }; length = (first - 192) << 8 + Int(bytes[offset + 1]) + 192; offset += 2 }
                else if first == 255 { guard offset + 4 < bytes.count else { break }; length = Int(bytes[offset + 1]) << 24 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 8 | Int(bytes[offset + 4]); offset += 5 }
                else { break }
            }
            guard length >= 0, offset + length <= bytes.count else { break }
            found.append((tag, bytes[offset..<(offset + length)]))
            at = offset + length
        }
        return found
    }
}

public struct SignatureError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
