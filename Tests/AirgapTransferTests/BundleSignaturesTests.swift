import AirgapContent
import AirgapOCI
import AirgapSignatures
import AirgapTransfer
import enum Crypto.P256
import Foundation
import Testing

/// The inside's signature check reads what gets a name from index.json and the verified
/// documents only; what bundle.json says (which an unsigned bundle or a compromised exporter
/// writes) cannot exempt an image or lend it another's signature.
@Suite struct BundleSignaturesTests {
    let signer = P256.Signing.PrivateKey()
    var documents: [Digest: Data] = [:]
    var entries: [Descriptor] = []

    mutating func document(_ data: Data, _ type: MediaType = .ociManifest) -> Descriptor {
        let d = Descriptor(mediaType: type, digest: Digest.sha256(of: data), size: Int64(data.count))
        documents[d.digest] = data
        return d
    }

    mutating func image(_ seed: String) throws -> Descriptor {
        let config = Descriptor(mediaType: .ociConfig, digest: Digest.sha256(of: Data(seed.utf8)), size: Int64(seed.utf8.count))
        return document(try CanonicalJSON.encode(ImageManifest(mediaType: .ociManifest, config: config, layers: [])))
    }

    /// A cosign signature manifest of `subject`, naming `identity`.
    mutating func signature(of subject: Digest, identity: String) throws -> Descriptor {
        let payload = Data(#"{"critical":{"identity":{"docker-reference":"\#(identity)"},"image":{"docker-manifest-digest":"\#(subject)"},"type":"cosign container image signature"},"optional":null}"#.utf8)
        let blob = document(payload, MediaType(rawValue: CosignVerifier.payloadMediaType))
        var layer = blob
        layer.annotations = [CosignVerifier.signatureAnnotation: try signer.signature(for: payload).derRepresentation.base64EncodedString()]
        let config = Descriptor(mediaType: .ociConfig, digest: Digest.sha256(of: Data("{}".utf8)), size: 2)
        return document(try CanonicalJSON.encode(ImageManifest(mediaType: .ociManifest, config: config, layers: [layer])))
    }

    mutating func name(_ d: Descriptor, _ reference: String) {
        var entry = d
        entry.annotations = [Descriptor.refNameAnnotation: reference]
        entries.append(entry)
    }

    func check() throws -> [String: SignatureOutcome] {
        let results = try BundleSignatures.check(index: ImageIndex(mediaType: .ociIndex, manifests: entries), documents: documents, lookaside: [:],
                                                 keys: [ImageKey(path: "k.pub", key: signer.publicKey)])
        return Dictionary(results.map { ($0.image, $0.outcome) }, uniquingKeysWith: { a, _ in a })
    }

    @Test mutating func onlyRealAttachmentsAreExemptAndSignaturesBindToTheirName() throws {
        let signed = try image("signed"), unsigned = try image("unsigned")
        name(signed, "reg.example/team/app:signed")
        name(try signature(of: signed.digest, identity: "reg.example/team/app"), "reg.example/team/app:sha256-\(signed.digest.encoded).sig")
        name(unsigned, "reg.example/team/app:evil")
        // An unsigned image dressed as an attachment of something no image here has.
        let stranger = Digest.sha256(of: Data("nothing".utf8))
        name(unsigned, "reg.example/team/app:sha256-\(stranger.encoded).sig")
        // The signed image and its signature under another repository: the signature names the first.
        name(signed, "reg.example/other/app:signed")
        name(try signature(of: signed.digest, identity: "reg.example/team/app"), "reg.example/other/app:sha256-\(signed.digest.encoded).sig")

        let outcomes = try check()
        #expect(outcomes["reg.example/team/app:signed"]?.isVerified == true, "\(outcomes)")
        #expect(outcomes["reg.example/team/app:evil"] == .unsigned)
        #expect(outcomes["reg.example/team/app:sha256-\(stranger.encoded).sig"] == .unsigned, "a tag alone does not make an attachment")
        #expect(outcomes["reg.example/team/app:sha256-\(signed.digest.encoded).sig"] == nil, "a real signature is not itself checked")
        #expect(outcomes["reg.example/other/app:signed"] == .identityMismatch(claimed: "reg.example/team/app"))
    }

    /// One platform of a signed index: accepted only when the bundle holds the index and it lists the manifest.
    @Test mutating func anIndexSignatureCountsOnlyWithTheIndexInTheBundle() throws {
        let platform = try image("amd64")
        let indexData = try CanonicalJSON.encode(ImageIndex(mediaType: .ociIndex, manifests: [platform]))
        let indexDigest = Digest.sha256(of: indexData)
        name(platform, "reg.example/team/app:1")
        name(try signature(of: indexDigest, identity: "reg.example/team/app"), "reg.example/team/app:sha256-\(indexDigest.encoded).sig")
        #expect(try check()["reg.example/team/app:1"]?.isVerified == false, "without the index, nothing ties its signature to the manifest")
        _ = document(indexData, .ociIndex)
        #expect(try check()["reg.example/team/app:1"]?.isVerified == true)
    }

    @Test func gpgvStatusLinesThatTakeASignatureBack() {
        let good = "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 7BA8BDBE68D502BF someone\n[GNUPG:] VALIDSIG AAAA 2026-12-03 1 0 4 0 1 10 00 0FE81F528AE48BAE347C7C827BA8BDBE68D502BF\n"
        #expect(SimpleSigningVerifier.goodSignature(status: good) == "0FE81F528AE48BAE347C7C827BA8BDBE68D502BF")
        for refusal in ["REVKEYSIG 7BA8BDBE68D502BF someone", "EXPKEYSIG 7BA8BDBE68D502BF someone", "EXPSIG 7BA8BDBE68D502BF someone"] {
            let status = "[GNUPG:] NEWSIG\n[GNUPG:] \(refusal)\n[GNUPG:] VALIDSIG AAAA 2026-12-03 1 0 4 0 1 10 00 0FE81F528AE48BAE347C7C827BA8BDBE68D502BF\n"
            #expect(SimpleSigningVerifier.goodSignature(status: status) == nil, "\(refusal)")
        }
        #expect(SimpleSigningVerifier.goodSignature(status: "[GNUPG:] VALIDSIG AAAA x 1 0 4 0 1 10 00 FPR\n") == nil, "no GOODSIG")
    }
}
