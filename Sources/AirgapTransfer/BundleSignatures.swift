import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapSignatures
import Foundation

/// The inside's check of image signatures, from the bundle's verified bytes only: what gets a
/// name inside is what index.json names; which of those are attachments, what they are attached
/// to, and which digests an image is known by are read from index.json and the documents, never
/// taken from bundle.json's word (an unsigned bundle, or a compromised exporter, could write
/// anything there).
public enum BundleSignatures {
    public struct Checked: Sendable {
        public var image: String
        public var outcome: SignatureOutcome
    }

    /// Every named entry that is not an attachment of a checked image, checked.
    /// - Parameters:
    ///   - lookaside: simple-signing signature blobs by the digest they say they sign (which
    ///     ones to try; each signature's own claim is what is checked).
    public static func check(index: ImageIndex, documents: [Digest: Data], lookaside: [Digest: [Digest]], keys: [ImageKey]) throws -> [Checked] {
        struct Entry { var name: Reference; var descriptor: Descriptor; var attachment: (AttachmentKind, Digest)? }
        let entries = index.manifests.compactMap { d -> Entry? in
            guard let name = d.refName.flatMap({ try? Reference(parsing: $0) }) else { return nil }
            return Entry(name: name, descriptor: d, attachment: name.tag.flatMap { AttachmentKind.parse(tag: $0) })
        }
        func reachable(_ top: Descriptor) -> Set<Digest> {
            var limits = GraphLimits()
            limits.depth = 8
            let walk = GraphWalk(root: top, subject: top.digest.description, limits: limits, allowAbsent: true)
            guard let graph = try? GraphWalk.run(walk, load: { documents[$0.digest] }) else { return [top.digest] }
            return Set(graph.manifests.map(\.digest) + [top.digest])
        }
        // The digests an entry is known by: its own, and any index the bundle holds that lists it
        // (one platform of a signed index travels as that platform's manifest).
        var parents: [Digest: [Digest]] = [:]
        for (digest, data) in documents {
            guard let parent = try? ImageIndex.decode(data, what: "index") else { continue }
            for child in parent.manifests where child.digest != digest { parents[child.digest, default: []].append(digest) }
        }
        func subjects(of top: Digest) -> [Digest] { [top] + (parents[top] ?? []).sorted() }
        // Attachments are recognised by their tag, and only when what they name belongs to an
        // image of the same repository (through other attachments too: a signature of an SBOM).
        var reach: [String: Set<Digest>] = [:]
        var attached = Set<Int>()
        for entry in entries where entry.attachment == nil {
            reach[entry.name.name, default: []].formUnion(reachable(entry.descriptor).union(subjects(of: entry.descriptor.digest)))
        }
        var changed = true
        while changed {
            changed = false
            for (i, entry) in entries.enumerated() where !attached.contains(i) {
                guard let (_, subject) = entry.attachment, reach[entry.name.name]?.contains(subject) == true else { continue }
                attached.insert(i)
                reach[entry.name.name, default: []].formUnion(reachable(entry.descriptor))
                changed = true
            }
        }
        let verifier = ImageVerifier(keys: keys)
        return try entries.enumerated().filter { !attached.contains($0.offset) }.map { _, entry in
            let subjects = subjects(of: entry.descriptor.digest)
            let signatures = entries.enumerated().filter { attached.contains($0.offset) }.compactMap { _, candidate -> Data? in
                guard candidate.name.name == entry.name.name, let (kind, subject) = candidate.attachment, kind == .signature,
                      subjects.contains(subject) else { return nil }
                return documents[candidate.descriptor.digest]
            }
            var payloads: [Digest: Data] = [:]
            for payload in CosignVerifier.payloads(of: signatures) { payloads[payload.digest] = documents[payload.digest] }
            let simpleSigning = subjects.flatMap { lookaside[$0] ?? [] }.compactMap { documents[$0] }
            // The identity a signature must name is the name the image gets inside.
            return Checked(image: entry.name.description,
                           outcome: try verifier.check(subjects: subjects, reference: entry.name, cosign: signatures, payloads: payloads, simpleSigning: simpleSigning))
        }
    }

    /// The check of a verified read: index.json and the documents it holds.
    public static func check(_ read: BundleReadResult, keys: [ImageKey]) throws -> [Checked] {
        guard let index = read.index else { return [] }
        var lookaside: [Digest: [Digest]] = [:]
        for image in read.metadata?.images ?? [] {
            for signature in image.lookasideSignatures ?? [] { lookaside[signature.subject, default: []].append(signature.digest) }
        }
        return try check(index: index, documents: read.documents, lookaside: lookaside, keys: keys)
    }
}
