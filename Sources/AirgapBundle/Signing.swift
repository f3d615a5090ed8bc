import AirgapOCI
import Crypto
import Foundation

/// Ed25519 keys in the PEM forms OpenSSL reads: PKCS#8 private keys and SPKI public keys.
public enum BundleKeys {
    // DER prefixes for Ed25519 (RFC 8410): the key bytes follow directly.
    static let privatePrefix: [UInt8] = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
    static let publicPrefix: [UInt8] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]

    public static func generate() -> Curve25519.Signing.PrivateKey { Curve25519.Signing.PrivateKey() }

    public static func privatePEM(_ key: Curve25519.Signing.PrivateKey) -> String {
        pem("PRIVATE KEY", Data(privatePrefix) + key.rawRepresentation)
    }

    public static func publicPEM(of key: Curve25519.Signing.PrivateKey) -> String { publicPEM(key.publicKey) }
    public static func publicKey(of key: Curve25519.Signing.PrivateKey) -> Curve25519.Signing.PublicKey { key.publicKey }
    public static func fingerprint(of key: Curve25519.Signing.PrivateKey) -> String { fingerprint(key.publicKey) }

    public static func publicPEM(_ key: Curve25519.Signing.PublicKey) -> String {
        pem("PUBLIC KEY", Data(publicPrefix) + key.rawRepresentation)
    }

    static func pem(_ label: String, _ der: Data) -> String {
        let base64 = der.base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n\(base64)\n-----END \(label)-----\n"
    }

    static func der(fromPEM text: String, label: String, path: String) throws -> Data {
        let begin = "-----BEGIN \(label)-----", end = "-----END \(label)-----"
        guard let start = text.range(of: begin), let stop = text.range(of: end, range: start.upperBound..<text.endIndex) else {
            // The two keys keygen writes, swapped: say which one is wanted.
            if label == "PUBLIC KEY", text.contains("-----BEGIN PRIVATE KEY-----") {
                throw BundleError.key("\(path) is the private signing key; give the public key (the .pub file keygen wrote next to it) to check a bundle, and keep the private key on the connected side")
            }
            if label == "PRIVATE KEY", text.contains("-----BEGIN PUBLIC KEY-----") {
                throw BundleError.key("\(path) is a public key; signing needs the private key (the .key file keygen wrote)")
            }
            throw BundleError.key("\(path) is not a PEM \(label.lowercased()) file (expected '\(begin)'); make one with 'airgap-export keygen'")
        }
        let body = text[start.upperBound..<stop.lowerBound].filter { !$0.isWhitespace }
        guard let der = Data(base64Encoded: String(body)) else { throw BundleError.key("\(path) holds damaged base64") }
        return der
    }

    public static func loadPrivateKey(path: String) throws -> Curve25519.Signing.PrivateKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BundleError.key("cannot read the private key \(path); check the path given to --key")
        }
        let der = try der(fromPEM: String(decoding: data, as: UTF8.self), label: "PRIVATE KEY", path: path)
        guard der.count == privatePrefix.count + 32, Array(der.prefix(privatePrefix.count)) == privatePrefix else {
            throw BundleError.key("\(path) is not an Ed25519 private key (PKCS#8); make one with 'airgap-export keygen'")
        }
        return try Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32))
    }

    public static func loadPublicKey(path: String) throws -> Curve25519.Signing.PublicKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BundleError.key("cannot read the public key \(path); check the path (a .pub file from 'airgap-export keygen')")
        }
        return try publicKey(pem: String(decoding: data, as: UTF8.self), path: path)
    }

    public static func publicKey(pem: String, path: String) throws -> Curve25519.Signing.PublicKey {
        let der = try der(fromPEM: pem, label: "PUBLIC KEY", path: path)
        guard der.count == publicPrefix.count + 32, Array(der.prefix(publicPrefix.count)) == publicPrefix else {
            throw BundleError.key("\(path) is not an Ed25519 public key (SPKI PEM); use the .pub file 'airgap-export keygen' wrote")
        }
        return try Curve25519.Signing.PublicKey(rawRepresentation: der.suffix(32))
    }

    /// sha256 of the public key's DER (SPKI) encoding: the signer fingerprint auditors compare.
    public static func fingerprint(_ key: Curve25519.Signing.PublicKey) -> String {
        "sha256:" + SHA256.hash(data: Data(publicPrefix) + key.rawRepresentation).hexString
    }

    public static func sign(_ data: Data, with key: Curve25519.Signing.PrivateKey) throws -> Data {
        try key.signature(for: data)
    }

    public static func verify(_ signature: Data, of data: Data, with key: Curve25519.Signing.PublicKey) -> Bool {
        key.isValidSignature(signature, for: data)
    }
}

public struct BundleError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case key, format, verification, io }
    public let kind: Kind
    public let message: String
    public var description: String { message }
    public static func key(_ m: String) -> BundleError { BundleError(kind: .key, message: m) }
    public static func format(_ m: String) -> BundleError { BundleError(kind: .format, message: m) }
    public static func verification(_ m: String) -> BundleError { BundleError(kind: .verification, message: m) }
    public static func io(_ m: String) -> BundleError { BundleError(kind: .io, message: m) }
}
