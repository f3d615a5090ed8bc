import AirgapContent
import AirgapOCI
import Foundation

/// What a served registry answers from: every named image of a source (a verified bundle, the
/// store), walked once before the listener opens, under the names `push --to HOST/PREFIX` would
/// give them. Only descriptors are kept: documents are read from the source when asked for (the
/// source checks them), blobs from their file segments, hashed as they are served.
public final class ServedContent: Sendable {
    public struct Repository: Sendable {
        /// Tag → the top manifest or index it names.
        public var tags: [String: Descriptor] = [:]
        /// Every manifest and index reachable from the repository's tags, by digest.
        public var documents: [Digest: Descriptor] = [:]
        /// Configs and layers (and, as distribution allows, the documents too) by digest.
        public var blobs: [Digest: Descriptor] = [:]
        /// Subject digest → manifests that name it as their `subject` (the referrers API).
        public var referrers: [Digest: [Descriptor]] = [:]
        /// The original repositories (`docker.io/library/httpd`) served under this name.
        public var origins: Set<String> = []
    }

    public struct Image: Sendable {
        public var original: Reference
        public var served: Reference
        public var descriptor: Descriptor
    }

    public let source: any ContentSource
    public let repositories: [String: Repository]
    public let images: [Image]
    /// Simple-signing (GPG) signatures for containers' lookaside protocol: repository path (the
    /// served one, and the original one for pulls by original name) → manifest digest → signatures.
    public let lookaside: [String: [Digest: [Data]]]
    /// Sum of the distinct blob sizes served.
    public let blobBytes: Int64
    public let blobCount: Int

    init(source: any ContentSource, repositories: [String: Repository], images: [Image], lookaside: [String: [Digest: [Data]]],
         blobBytes: Int64, blobCount: Int) {
        self.source = source
        self.repositories = repositories
        self.images = images
        self.lookaside = lookaside
        self.blobBytes = blobBytes
        self.blobCount = blobCount
    }

    /// The registries the images came from (`docker.io`, `quay.io`): mirror configs name them.
    public var originalRegistries: [String] { Array(Set(images.map(\.original.registry))).sorted() }

    /// Walks every named image of `source`. `prefix` is the path every name is served under;
    /// `host` only spells the served references in messages.
    /// A simple-signing signature of one of an image's manifests (from a bundle's lookaside blobs).
    public struct LookasideSignature: Sendable {
        public var image: Reference
        public var subject: Digest
        public var bytes: Data
        public init(image: Reference, subject: Digest, bytes: Data) { self.image = image; self.subject = subject; self.bytes = bytes }
    }

    public static func build(source: any ContentSource, names: [(Reference, Descriptor)], prefix: String, host: String,
                             signatures: [LookasideSignature] = [], warn: (String) -> Void = { _ in }) async throws -> ServedContent {
        var repositories: [String: Repository] = [:]
        var images: [Image] = []
        var sizes: [Digest: Int64] = [:]
        for (original, top) in names {
            let served = Naming.rewrite(original, registry: host, prefix: prefix)
            var repository = repositories[served.repository] ?? Repository()
            // Two registries' repositories may share a served name; one tag cannot name two things.
            if let tag = original.tag, let taken = repository.tags[tag], taken.digest != top.digest {
                let other = repository.origins.sorted().first { $0 != original.name } ?? original.name
                throw ContentError(.unsupported, "\(other):\(tag) and \(original.familiarDescription) are different images that would both be served as \(served.repository):\(tag); serve them from separate bundles or stores, or serve with another --prefix for one of them")
            }
            repository.origins.insert(original.name)
            let walk = GraphWalk(root: top, subject: original.familiarDescription, allowAbsent: true)
            let graph = try await GraphWalk.run(walk) { descriptor in try await source.document(descriptor, in: original) }
            if !graph.absent.isEmpty {
                warn("\(original.familiarDescription): \(graph.absent.count) of its platforms are not in \(source.description); clients asking for them get 404")
            }
            for descriptor in graph.manifests {
                repository.documents[descriptor.digest] = descriptor
                repository.blobs[descriptor.digest] = descriptor
                if let data = graph.documents[descriptor.digest], let subject = Self.subject(of: data) {
                    var referrer = Descriptor(mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size)
                    referrer.artifactType = subject.artifactType
                    referrer.annotations = subject.annotations
                    if !(repository.referrers[subject.digest] ?? []).contains(where: { $0.digest == descriptor.digest }) {
                        repository.referrers[subject.digest, default: []].append(referrer)
                    }
                }
            }
            for blob in graph.blobs {
                guard source.fileSegments(blob) != nil else {
                    throw ContentError(.missing, "\(original.familiarDescription) needs \(blob.digest), which \(source.description) does not hold; it cannot be served whole")
                }
                repository.blobs[blob.digest] = blob
                sizes[blob.digest] = blob.size
            }
            if let tag = original.tag { repository.tags[tag] = top }
            repositories[served.repository] = repository
            images.append(Image(original: original, served: served, descriptor: top))
        }
        var lookaside: [String: [Digest: [Data]]] = [:]
        for signature in signatures {
            let served = Naming.rewrite(signature.image, registry: host, prefix: prefix)
            for path in Set([served.repository, signature.image.repository]) where !(lookaside[path]?[signature.subject] ?? []).contains(signature.bytes) {
                lookaside[path, default: [:]][signature.subject, default: []].append(signature.bytes)
            }
        }
        return ServedContent(source: source, repositories: repositories, images: images, lookaside: lookaside,
                             blobBytes: sizes.values.reduce(0, +), blobCount: sizes.count)
    }

    /// A manifest's or index's `subject`, with what the referrers API lists it by.
    static func subject(of data: Data) -> (digest: Digest, artifactType: String?, annotations: [String: String]?)? {
        if let manifest = try? ImageManifest.decode(data, what: "manifest"), let subject = manifest.subject {
            return (subject.digest, manifest.artifactType ?? manifest.config.mediaType.rawValue, manifest.annotations)
        }
        if let index = try? ImageIndex.decode(data, what: "index"), let subject = index.subject {
            return (subject.digest, index.artifactType, index.annotations)
        }
        return nil
    }
}
