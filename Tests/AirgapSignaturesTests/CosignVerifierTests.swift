import AirgapContent
import AirgapOCI
import AirgapSignatures
import enum Crypto.P256
import enum Crypto.Curve25519
import Foundation
import Testing

/// cosign signatures made here with swift-crypto, checked by the verifier; the end-to-end tests
/// check signatures made by an independent implementation (Python's cryptography).
@Suite struct CosignVerifierTests {
    let signer = P256.Signing.PrivateKey()
    let image = Digest.sha256(of: Data("the image manifest".utf8))
    let repository = try! Reference(parsing: "registry.example/team/app")

    func payload(digest: String, identity: String, type: String = "cosign container image signature") -> Data {
        Data(#"{"critical":{"identity":{"docker-reference":"\#(identity)"},"image":{"docker-manifest-digest":"\#(digest)"},"type":"\#(type)"},"optional":null}"#.utf8)
    }

    /// A `.sig` manifest with one layer per payload, and the payloads by digest.
    func signatures(_ payloads: [(Data, P256.Signing.PrivateKey)]) throws -> (Data, [Digest: Data]) {
        var blobs: [Digest: Data] = [:]
        let layers = try payloads.map { payload, key in
            let d = Digest.sha256(of: payload)
            blobs[d] = payload
            let signature = try key.signature(for: payload).derRepresentation.base64EncodedString()
            return Descriptor(mediaType: MediaType(rawValue: CosignVerifier.payloadMediaType), digest: d, size: Int64(payload.count),
                              annotations: [CosignVerifier.signatureAnnotation: signature])
        }
        let config = Descriptor(mediaType: .ociConfig, digest: Digest.sha256(of: Data("{}".utf8)), size: 2)
        let manifest = try CanonicalJSON.encode(ImageManifest(mediaType: .ociManifest, config: config, layers: layers))
        return (manifest, blobs)
    }

    func check(_ signatures: [(Data, [Digest: Data])], keys: [P256.Signing.PublicKey]? = nil) async throws -> SignatureOutcome {
        let verifier = CosignVerifier(keys: (keys ?? [signer.publicKey]).map { ImageKey(path: "k.pub", key: $0) })
        let blobs = signatures.reduce(into: [Digest: Data]()) { $0.merge($1.1) { a, _ in a } }
        return verifier.check(subjects: [image], repository: repository, signatures: signatures.map(\.0), payloads: blobs)
    }

    @Test func aSignatureByTheKeyOverTheDigestAndRepositoryVerifies() async throws {
        let outcome = try await check([try signatures([(payload(digest: image.description, identity: "registry.example/team/app"), signer)])])
        #expect(outcome.isVerified, "\(outcome)")
        if case .verified(let key, _) = outcome { #expect(key == Digest.sha256(of: signer.publicKey.derRepresentation).description) }
    }

    @Test func whatFailsSaysWhy() async throws {
        let other = P256.Signing.PrivateKey()
        #expect(try await check([]) == .unsigned)
        #expect(try await check([try signatures([(payload(digest: image.description, identity: "registry.example/team/app"), other)])]) == .otherKey(count: 1))
        let elsewhere = Digest.sha256(of: Data("another image".utf8)).description
        #expect(try await check([try signatures([(payload(digest: elsewhere, identity: "registry.example/team/app"), signer)])]) == .digestMismatch(claimed: elsewhere))
        #expect(try await check([try signatures([(payload(digest: image.description, identity: "registry.example/team/other"), signer)])])
                == .identityMismatch(claimed: "registry.example/team/other"))
        let wrongType = try await check([try signatures([(payload(digest: image.description, identity: "registry.example/team/app", type: "atomic container signature"), signer)])])
        #expect(!wrongType.isVerified)
        // A trusted key over the wrong image is reported over an unknown key's signature.
        let mixed = try await check([try signatures([(payload(digest: image.description, identity: "registry.example/team/app"), other),
                                                     (payload(digest: elsewhere, identity: "registry.example/team/app"), signer)])])
        #expect(mixed == .digestMismatch(claimed: elsewhere))
    }

    @Test func oneGoodSignatureAmongOthersIsEnough() async throws {
        let other = P256.Signing.PrivateKey()
        let outcome = try await check([try signatures([(payload(digest: image.description, identity: "registry.example/team/app"), other),
                                                       (payload(digest: image.description, identity: "registry.example/team/app"), signer)])])
        #expect(outcome.isVerified)
    }

    @Test func aPayloadChangedAfterSigningDoesNotVerify() async throws {
        let (sigs, blobs) = try signatures([(payload(digest: image.description, identity: "registry.example/team/app"), signer)])
        let d = blobs.keys.first!
        var changed = blobs[d]!
        changed[10] ^= 0x01
        // Bytes that no longer match their digest are not even checked; bytes that do (an
        // attacker who also rewrote the manifest) fail the signature.
        #expect(try await check([(sigs, [d: changed])]) == .malformed("its payload \(d) is missing or larger than 1 MiB"))
        let forged = Data(String(decoding: sigs, as: UTF8.self).replacingOccurrences(of: d.description, with: Digest.sha256(of: changed).description).utf8)
        #expect(try await check([(forged, [Digest.sha256(of: changed): changed])]) == .otherKey(count: 1))
    }

    @Test func dockerHubIsOneRepositoryUnderItsNames() async throws {
        let hub = try Reference(parsing: "docker.io/library/httpd")
        let verifier = CosignVerifier(keys: [ImageKey(path: "k.pub", key: signer.publicKey)])
        let (sigs, blobs) = try signatures([(payload(digest: image.description, identity: "index.docker.io/library/httpd"), signer)])
        let outcome = verifier.check(subjects: [image], repository: hub, signatures: [sigs], payloads: blobs)
        #expect(outcome.isVerified, "\(outcome)")
    }

    @Test func keyFilesAreToldApart() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try signer.publicKey.pemRepresentation.write(toFile: dir + "/cosign.pub", atomically: true, encoding: .utf8)
        try signer.pemRepresentation.write(toFile: dir + "/cosign.key", atomically: true, encoding: .utf8)
        try "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ==\n-----END PGP PUBLIC KEY BLOCK-----\n".write(toFile: dir + "/gpg.asc", atomically: true, encoding: .utf8)
        try Curve25519.Signing.PrivateKey().publicKey.rawRepresentation.write(to: URL(fileURLWithPath: dir + "/raw"))
        #expect(try ImageKey.load(path: dir + "/cosign.pub").fingerprint.hasPrefix("sha256:"))
        #expect(throws: SignatureError.self) { try ImageKey.load(path: dir + "/cosign.key") }
        #expect(throws: SignatureError.self) { try ImageKey.load(path: dir + "/gpg.asc") }
        #expect(throws: SignatureError.self) { try ImageKey.load(path: dir + "/raw") }
        #expect(throws: SignatureError.self) { try ImageKey.load(path: dir + "/missing") }
    }
}
