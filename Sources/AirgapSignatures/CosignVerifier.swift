import AirgapContent
import AirgapOCI
import enum Crypto.P256
import Foundation

/// What the signature check of one image found.
public enum SignatureOutcome: Error, Sendable, Equatable, CustomStringConvertible {
    /// A signature by this key over the image's digest and repository.
    case verified(key: String, signature: Digest)
    /// No signature is attached to the image.
    case unsigned
    /// Signatures are attached, but none verifies with the keys given.
    case otherKey(count: Int)
    /// A signature by a trusted key, but over another image.
    case digestMismatch(claimed: String)
    /// A signature by a trusted key over this digest, but for another repository.
    case identityMismatch(claimed: String)
    /// A signature by a trusted key whose payload is not a cosign simple-signing payload.
    case malformed(String)

    public var isVerified: Bool { if case .verified = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .verified(let key, _): return "signed by \(key)"
        case .unsigned: return "unsigned (no signature is attached to it)"
        case .otherKey(let count): return "signed, but not by a key given (\(count) signature\(count == 1 ? "" : "s") checked)"
        case .digestMismatch(let claimed): return "a trusted signature names another image (\(claimed)): digest mismatch"
        case .identityMismatch(let claimed): return "a trusted signature is for another repository (\(claimed)): identity mismatch"
        case .malformed(let why): return "a trusted signature's payload is not a cosign payload (\(why))"
        }
    }

    /// Which outcome to report when several signatures disagree: a trusted key over the wrong
    /// thing says more than a key we do not know, which says more than nothing at all.
    var rank: Int {
        switch self {
        case .verified: return 5
        case .digestMismatch, .identityMismatch: return 4
        case .malformed: return 3
        case .otherKey: return 2
        case .unsigned: return 1
        }
    }
}

/// Checks cosign key-based signatures (cosign's SIGNATURE_SPEC): each layer of a `sha256-<hex>.sig`
/// manifest is a simple-signing payload, signed with ECDSA P-256 over its bytes (SHA-256, ASN.1 DER,
/// base64 in the `dev.cosignproject.cosign/signature` annotation). A signature counts when it
/// verifies with a key given, names the image's digest (`critical.image.docker-manifest-digest`)
/// and its repository (`critical.identity.docker-reference`; cosign writes the repository without
/// a tag, and Docker Hub as `index.docker.io`).
public struct CosignVerifier: Sendable {
    public static let payloadMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
    public static let signatureAnnotation = "dev.cosignproject.cosign/signature"
    public static let payloadType = "cosign container image signature"
    /// A payload is a few hundred bytes; a bigger one is not read.
    static let payloadLimit: Int64 = 1 << 20

    public let keys: [ImageKey]
    public init(keys: [ImageKey]) { self.keys = keys.filter { $0.kind == .cosign } }

    /// The payload blobs a signature manifest names (what `check` needs read), each once.
    public static func payloads(of manifests: [Data]) -> [Descriptor] {
        var seen = Set<Digest>()
        return manifests.flatMap { (try? ImageManifest.decode($0, what: "signature manifest"))?.layers ?? [] }
            .filter { $0.mediaType.rawValue == payloadMediaType && $0.size <= payloadLimit && seen.insert($0.digest).inserted }
    }

    /// - Parameters:
    ///   - subjects: the digests the image is known by (its top; the registry's index when one
    ///     platform of it travels).
    ///   - repository: where the image came from (the identity a signature must name).
    ///   - signatures: the signature manifests attached to those subjects.
    ///   - payloads: their payload blobs by digest, verified against their digests by whoever read them.
    public func check(subjects: [Digest], repository: Reference, signatures: [Data], payloads: [Digest: Data]) -> SignatureOutcome {
        var best = SignatureOutcome.unsigned
        var checked = 0
        func consider(_ outcome: SignatureOutcome) { if outcome.rank > best.rank { best = outcome } }
        for data in signatures {
            let manifest: ImageManifest
            do { manifest = try ImageManifest.decode(data, what: "signature manifest") } catch {
                consider(.malformed("the signature manifest is not an image manifest"))
                continue
            }
            for layer in manifest.layers where layer.mediaType.rawValue == Self.payloadMediaType {
                checked += 1
                guard let encoded = layer.annotations?[Self.signatureAnnotation], let raw = Data(base64Encoded: encoded),
                      let signature = try? P256.Signing.ECDSASignature(derRepresentation: raw) else {
                    consider(.otherKey(count: checked))
                    continue
                }
                guard let payload = payloads[layer.digest], Digest.sha256(of: payload) == layer.digest else {
                    consider(.malformed("its payload \(layer.digest) is missing or larger than 1 MiB"))
                    continue
                }
                guard let key = keys.first(where: { $0.key.isValidSignature(signature, for: payload) }) else {
                    consider(.otherKey(count: checked))
                    continue
                }
                consider(Self.claims(payload, subjects: subjects, repository: repository, key: key, signature: layer.digest))
                if best.isVerified { return best }
            }
        }
        if case .otherKey = best { return .otherKey(count: checked) }
        return best
    }

    /// What a payload signed by a trusted key says, against what it must say.
    static func claims(_ payload: Data, subjects: [Digest], repository: Reference, key: ImageKey, signature: Digest) -> SignatureOutcome {
        let claims: SigningClaims
        switch SigningClaims.parse(payload, type: payloadType, subjects: subjects) {
        case .failure(let outcome): return outcome
        case .success(let parsed): claims = parsed
        }
        guard sameRepository(claims.identity, repository) else { return .identityMismatch(claimed: claims.identity) }
        return .verified(key: key.fingerprint, signature: signature)
    }

    /// `index.docker.io/library/x` and `docker.io/library/x` are one repository; tags and digests do not count.
    static func sameRepository(_ identity: String, _ repository: Reference) -> Bool {
        guard let claimed = try? Reference(parsing: identity) else { return false }
        func hub(_ registry: String) -> String {
            ["index.docker.io", "registry-1.docker.io", Reference.dockerHub].contains(registry) ? Reference.dockerHub : registry
        }
        return hub(claimed.registry) == hub(repository.registry) && claimed.repository == repository.repository
    }
}

extension CosignVerifier {
    /// The signature manifests a plan carries for one of its images (by digest), and the digests
    /// the image is known by.
    public static func signatures(of image: CopyPlan.Image, in plan: CopyPlan) -> (subjects: [Digest], manifests: [CopyPlan.Image]) {
        // The top written, and the source's index when a platform (or a subset) of it is written.
        let subjects = Array(Set([image.top.digest, image.sourceTop.digest])).sorted()
        let manifests = plan.images.filter { attached in
            guard let link = attached.attachment else { return false }
            return link.kind == .signature && link.subjectName == image.name && subjects.contains(link.subject)
        }
        return (subjects, manifests)
    }
}

/// Both kinds of signature against the keys given: cosign signatures (attached in the registry)
/// with cosign keys, simple-signing ones (from lookaside stores) with OpenPGP keys. An image
/// passes when any one signature verifies.
public struct ImageVerifier: Sendable {
    public let keys: [ImageKey]
    public init(keys: [ImageKey]) { self.keys = keys }

    public func check(subjects: [Digest], reference: Reference, cosign manifests: [Data], payloads: [Digest: Data],
                      simpleSigning: [Data]) throws -> SignatureOutcome {
        let cosign = CosignVerifier(keys: keys).check(subjects: subjects, repository: reference, signatures: manifests, payloads: payloads)
        if cosign.isVerified || simpleSigning.isEmpty { return cosign }
        let gpg = try SimpleSigningVerifier(keys: keys).check(subjects: subjects, reference: reference, signatures: simpleSigning)
        return gpg.rank >= cosign.rank ? gpg : cosign
    }

    /// One image of a plan: the signatures it carries, with payloads and lookaside signatures
    /// from the plan's documents (verified bytes).
    public func check(_ image: CopyPlan.Image, in plan: CopyPlan) throws -> SignatureOutcome {
        let (subjects, attached) = CosignVerifier.signatures(of: image, in: plan)
        let manifests = try attached.compactMap { try plan.documents.bytes($0.top.digest) }
        var payloads: [Digest: Data] = [:]
        for payload in CosignVerifier.payloads(of: manifests) { payloads[payload.digest] = try plan.documents.bytes(payload.digest) }
        let lookaside = try image.lookasideSignatures.filter { subjects.contains($0.subject) }.compactMap { try plan.documents.bytes($0.blob.digest) }
        return try check(subjects: subjects, reference: image.sourceReference, cosign: manifests, payloads: payloads, simpleSigning: lookaside)
    }
}

/// The claims of the simple-signing payload both kinds of signature sign (containers-signature(5);
/// cosign's flavour has another `type` and no tag in the reference).
struct SigningClaims {
    var digest: String
    var identity: String

    /// The claims, when the payload is of `type` and names one of `subjects`; else what is wrong.
    static func parse(_ payload: Data, type: String, subjects: [Digest]) -> Result<SigningClaims, SignatureOutcome> {
        guard let object = try? JSONSerialization.jsonObject(with: payload) as? [String: Any],
              let critical = object["critical"] as? [String: Any] else { return .failure(.malformed("no 'critical' object")) }
        guard (critical["type"] as? String) == type else { return .failure(.malformed("its type is not '\(type)'")) }
        guard let digest = (critical["image"] as? [String: Any])?["docker-manifest-digest"] as? String else {
            return .failure(.malformed("no critical.image.docker-manifest-digest"))
        }
        guard let identity = (critical["identity"] as? [String: Any])?["docker-reference"] as? String else {
            return .failure(.malformed("no critical.identity.docker-reference"))
        }
        guard subjects.contains(where: { $0.description == digest }) else { return .failure(.digestMismatch(claimed: digest)) }
        return .success(SigningClaims(digest: digest, identity: identity))
    }
}
