import AirgapOCI
import Foundation

/// What is attached to an image manifest and travels with it: cosign's tags (`sha256-<hex>.sig`,
/// `.att`, `.sbom`) and OCI 1.1 referrers, kept as the referrers tag schema's index (`sha256-<hex>`),
/// which every registry can hold and every referrers-aware client reads when the API is absent.
public enum AttachmentKind: String, Codable, Sendable, CaseIterable {
    case signature, attestation, sbom, referrers

    /// The tag that holds it, in the subject's repository.
    public func tag(for subject: Digest) -> String {
        let base = "\(subject.algorithm.rawValue)-\(subject.encoded)"
        switch self {
        case .signature: return base + ".sig"
        case .attestation: return base + ".att"
        case .sbom: return base + ".sbom"
        case .referrers: return base
        }
    }

    /// The kind and subject a tag names, if it is one of these tags.
    public static func parse(tag: String) -> (AttachmentKind, Digest)? {
        let kinds: [(String, AttachmentKind)] = [(".sig", .signature), (".att", .attestation), (".sbom", .sbom)]
        var rest = Substring(tag), kind = AttachmentKind.referrers
        for (suffix, candidate) in kinds where tag.hasSuffix(suffix) {
            rest = rest.dropLast(suffix.count)
            kind = candidate
        }
        guard let dash = rest.firstIndex(of: "-"),
              let digest = try? Digest(parsing: "\(rest[..<dash]):\(rest[rest.index(after: dash)...])") else { return nil }
        return (kind, digest)
    }
}

/// Where an attachment hangs: the manifest it is attached to, in which image.
public struct AttachmentLink: Sendable, Hashable {
    public var kind: AttachmentKind
    public var subject: Digest
    /// The destination name of the image the subject belongs to (or of the attachment it signs).
    public var subjectName: Reference
    public init(kind: AttachmentKind, subject: Digest, subjectName: Reference) {
        self.kind = kind; self.subject = subject; self.subjectName = subjectName
    }
}

/// A source that can say what is attached to a manifest (a registry).
public protocol AttachmentListing: Sendable {
    /// Every tag of the repository.
    func tags(in repository: Reference) async throws -> [String]
    /// The referrers API's index for `subject`; nil when the source has no referrers API.
    func referrers(of subject: Digest, in repository: Reference) async throws -> Data?
}

/// A source that will not list a repository's tags: its images travel without attachments.
public struct AttachmentListingRefused: Error, Sendable {
    public var message: String
    public init(message: String) { self.message = message }
}

/// Finds the attachments of planned images: by tag, and through the referrers API where the
/// registry has one and no referrers tag exists (the API's answer becomes that tag's index,
/// re-encoded in digest order so that two exports of the same registry state are the same bytes).
public struct AttachmentFinder: Sendable {
    public let listing: any AttachmentListing
    /// Attachments of attachments (a signature of an SBOM), up to this depth.
    public var depth = 4
    /// Attachments found for one export, at most.
    public var limit = 10_000
    /// Bytes one attachment may hold (its manifests, configs and layers): signatures, attestations
    /// and SBOMs are small; a "signature" tag pointing at a big image is refused.
    public var attachmentBytes: Int64 = 64 << 20
    /// Tags read from one repository; a list that long may hide tags past it (a note says so).
    public static let tagLimit = 100_000
    public init(listing: any AttachmentListing) { self.listing = listing }

    /// A request for an attachment, and the referrers index's bytes when the API made it.
    public struct Found: Sendable {
        public var request: CopyRequest
        public var synthesized: Data?
    }

    /// The attachments of `images` (their tops and every manifest under them) not in `known`
    /// (destination names), one request each. Images are looked at concurrently (a tag list and
    /// perhaps a referrers query each); the results are merged in image order.
    func find(for images: [CopyPlan.Image], known: inout Set<String>, tagCache: TagCache,
              events: @escaping TransferEvents) async throws -> [Found] {
        // Positions, not copies: at 10,000 images a filtered copy of the images was the export's peak.
        let wanted = images.indices.filter { images[$0].request.attachments }
        let perImage = try await mapConcurrently(wanted, limit: 8) { i in
            try await self.candidates(for: images[i], tagCache: tagCache, events: events)
        }
        var found: [Found] = []
        for (i, candidates) in zip(wanted, perImage) {
            let image = images[i]
            for candidate in candidates where known.insert(candidate.request.destinationName.description).inserted {
                guard known.count <= limit else {
                    throw ContentError(.unsupported, "\(image.sourceReference.familiarDescription) has more than \(limit) attachments; leave them out with 'referrers: false'")
                }
                found.append(candidate)
            }
        }
        return found
    }

    /// What is attached to one image, by tag or through the referrers API.
    func candidates(for image: CopyPlan.Image, tagCache: TagCache, events: TransferEvents) async throws -> [Found] {
        let repository = image.sourceReference.bare
        let tags: Set<String>
        do { tags = Set(try await tagCache.tags(repository, listing)) } catch let refused as AttachmentListingRefused {
            events(.note("\(repository.familiarName): its tags cannot be listed (\(refused.message)); its signatures and referrers are not carried"))
            return []
        }
        if tags.count >= Self.tagLimit {
            events(.note("\(repository.familiarName) lists \(Self.tagLimit) tags or more; only those were searched for signatures and referrers"))
        }
        var found: [Found] = []
        for subject in image.manifestDigests {
            for kind in AttachmentKind.allCases {
                let tag = kind.tag(for: subject)
                var synthesized: Data?
                if !tags.contains(tag) {
                    guard kind == .referrers, let index = try await referrersIndex(of: subject, in: repository, cache: tagCache) else { continue }
                    synthesized = index
                }
                var request = CopyRequest(reference: repository.withTag(tag), allPlatforms: true, name: image.name.bare.withTag(tag), origin: image.request.origin)
                request.attachments = true
                request.attachment = AttachmentLink(kind: kind, subject: subject, subjectName: image.attachment?.subjectName ?? image.name)
                if let synthesized {
                    request.pinned = Descriptor(mediaType: .ociIndex, digest: Digest.sha256(of: synthesized), size: Int64(synthesized.count))
                }
                found.append(Found(request: request, synthesized: synthesized))
            }
        }
        return found
    }

    /// The API's referrers of `subject` as a canonical index (nil: no API, or nothing refers to it).
    func referrersIndex(of subject: Digest, in repository: Reference, cache: TagCache) async throws -> Data? {
        // A registry without the API says so once (distribution 2.8: 404); it is not asked again.
        guard !cache.lacksReferrersAPI(repository.registry) else { return nil }
        guard let data = try await listing.referrers(of: subject, in: repository) else {
            cache.noteLacksReferrersAPI(repository.registry)
            return nil
        }
        guard var index = try? ImageIndex.decode(data) else {
            throw ContentError(.verification, "the referrers of \(subject) in \(repository.familiarName) are not an image index")
        }
        index.manifests = index.manifests.filter { $0.mediaType.isManifest }
        guard !index.manifests.isEmpty else { return nil }
        index.manifests.sort { $0.digest < $1.digest }
        index.mediaType = .ociIndex
        return try CanonicalJSON.encode(index)
    }
}

/// Each repository's tag list, fetched once per plan, and the registries known to lack the referrers API.
final class TagCache: @unchecked Sendable {
    private let lock = NSLock()
    private var lists: [String: [String]] = [:]
    private var withoutAPI = Set<String>()
    func lacksReferrersAPI(_ registry: String) -> Bool { lock.withLock { withoutAPI.contains(registry) } }
    func noteLacksReferrersAPI(_ registry: String) { _ = lock.withLock { withoutAPI.insert(registry) } }
    func tags(_ repository: Reference, _ listing: any AttachmentListing) async throws -> [String] {
        if let cached = lock.withLock({ lists[repository.name] }) { return cached }
        let tags = try await listing.tags(in: repository)
        lock.withLock { lists[repository.name] = tags }
        return tags
    }
}

extension Reference {
    /// The repository alone, without tag or digest.
    var bare: Reference { Reference(registry: registry, repository: repository, tag: nil, digest: nil) }
}
