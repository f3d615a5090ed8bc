import AirgapOCI
import enum Crypto.P256
import Foundation

/// A public key images must be signed with (`--image-key`, `verify: {key: …}`): a cosign key (PEM
/// "PUBLIC KEY", ECDSA P-256, as `cosign generate-key-pair` writes cosign.pub).
public struct ImageKey: Sendable {
    public let path: String
    /// The key's SubjectPublicKeyInfo DER (swift-crypto's key type is not Sendable; its bytes are).
    public let der: Data
    /// `sha256:` of that DER (what `openssl pkey -pubin -outform DER | sha256sum` prints).
    public let fingerprint: String

    public init(path: String, key: P256.Signing.PublicKey) {
        self.path = path
        der = key.derRepresentation
        fingerprint = Digest.sha256(of: der).description
    }

    /// Parsed from bytes that were a valid key when this value was made.
    public var key: P256.Signing.PublicKey { try! P256.Signing.PublicKey(derRepresentation: der) }

    /// Reads a key file; one sentence naming the file and what to give instead when it is not one.
    public static func load(path: String) throws -> ImageKey {
        guard let data = FileManager.default.contents(atPath: path), data.count < 1 << 20 else {
            throw SignatureError("cannot read the image key \(path); check the path given to --image-key (or verify.key)")
        }
        let text = String(decoding: data, as: UTF8.self)
        if text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") || data.first.map({ $0 & 0x80 != 0 && !text.contains("-----BEGIN") }) == true {
            throw SignatureError("\(path) is an OpenPGP key; containers' GPG signatures (skopeo --sign-by) are not checked by this version: give a cosign public key (cosign.pub)")
        }
        if text.contains("PRIVATE KEY-----") {
            throw SignatureError("\(path) is a private key; give the public key (cosign.pub), which is all the check needs")
        }
        guard text.contains("-----BEGIN PUBLIC KEY-----") else {
            throw SignatureError("\(path) is not a PEM public key; give a cosign public key (cosign.pub, '-----BEGIN PUBLIC KEY-----')")
        }
        do {
            return ImageKey(path: path, key: try P256.Signing.PublicKey(pemRepresentation: text))
        } catch {
            throw SignatureError("\(path) is not an ECDSA P-256 public key (cosign's key type); give the cosign.pub that belongs to the signing key")
        }
    }
}

public struct SignatureError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
