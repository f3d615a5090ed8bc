import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapSignatures
import Foundation

/// The inside's check of image signatures, from the bundle's own verified bytes: every image's
/// signatures (listed under it in bundle.json) against the keys given, as on export.
public enum BundleSignatures {
    public struct Checked: Sendable {
        public var image: String
        public var outcome: SignatureOutcome
    }

    /// Every image of the bundle (not its attachments), checked; `documents` are the verified read's.
    public static func check(_ metadata: BundleMetadata, documents: [Digest: Data], keys: [ImageKey]) throws -> [Checked] {
        let verifier = ImageVerifier(keys: keys)
        return try metadata.images.filter { $0.attachedTo == nil }.map { image in
            let subjects = [image.digest] + (image.originalIndexDigest.map { [$0] } ?? [])
            let manifests = (image.attachments ?? []).filter { $0.kind == .signature && subjects.contains($0.subject) }.compactMap { documents[$0.digest] }
            var payloads: [Digest: Data] = [:]
            for payload in CosignVerifier.payloads(of: manifests) { payloads[payload.digest] = documents[payload.digest] }
            guard let repository = try? Reference(parsing: image.source) else {
                return Checked(image: image.reference, outcome: .malformed("its source \(image.source) is not a reference"))
            }
            let lookaside = (image.lookasideSignatures ?? []).filter { subjects.contains($0.subject) }.compactMap { documents[$0.digest] }
            return Checked(image: image.reference, outcome: try verifier.check(subjects: subjects, reference: repository, cosign: manifests,
                                                                               payloads: payloads, simpleSigning: lookaside))
        }
    }
}
