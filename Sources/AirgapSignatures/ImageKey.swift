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

    /// The v4 fingerprint of the first packet when it is a public key packet (RFC 4880 12.2:
    /// SHA-1 over 0x99, the two-byte length and the packet body).
    static func v4Fingerprint(_ data: Data) -> String? {
        let bytes = [UInt8](data.prefix(8192))
        guard bytes.count > 3, bytes[0] & 0x80 != 0 else { return nil }
        var tag: UInt8, length = 0, offset = 1
        if bytes[0] & 0x40 == 0 {
            tag = (bytes[0] >> 2) & 0x0f
            let sizes = [1, 2, 4]
            guard bytes[0] & 3 < 3 else { return nil }
            let n = sizes[Int(bytes[0] & 3)]
            guard bytes.count > 1 + n else { return nil }
            for i in 0..<n { length = length << 8 | Int(bytes[1 + i]) }
            offset = 1 + n
        } else {
            tag = bytes[0] & 0x3f
            let first = Int(bytes[1])
            if first < 192 { length = first; offset = 2 }
            else if first < 224 { guard bytes.count > 2 else { return nil }; length = (first - 192) << 8 + Int(bytes[2]) + 192; offset = 3 }
            else if first == 255 { guard bytes.count > 5 else { return nil }; length = Int(bytes[2]) << 24 | Int(bytes[3]) << 16 | Int(bytes[4]) << 8 | Int(bytes[5]); offset = 6 }
            else { return nil }
        }
        guard tag == 6, length > 0, length < 65536, offset + length <= bytes.count, bytes[offset] == 4 else { return nil }
        var hashed = Data([0x99, UInt8(length >> 8), UInt8(length & 0xff)])
        hashed.append(contentsOf: bytes[offset..<(offset + length)])
        return Insecure.SHA1.hash(data: hashed).map { String(format: "%02X", $0) }.joined()
    }
}

public struct SignatureError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
