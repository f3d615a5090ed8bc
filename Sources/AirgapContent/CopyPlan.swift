import AirgapOCI
import Foundation

/// One image to copy: where it is at the source, which platforms, and its name at the destination.
public struct CopyRequest: Sendable {
    /// Where the image is at the source (its repository is where its blobs are read from).
    public var reference: Reference
    public var platforms: [Platform]
    public var allPlatforms: Bool
    /// Its name at the destination; nil: `Naming.destinationName(of: reference)`.
    public var name: Reference?
    /// The top descriptor when the caller already knows it (a store entry, a bundle's index entry).
    public var pinned: Descriptor? {
        get { rare?.pinned }
        set { rare = Rare(pinned: newValue, attachment: attachment) }
    }
    /// Where the request was written (`images.yaml:12`), put in front of an error resolving it.
    public var origin: String?
    /// The image gets no name at the destination (an unnamed store entry saved by ID).
    public var unnamed = false
    /// Look for its signatures, attestations, SBOMs and referrers (when the planner has a finder).
    public var attachments = false
    /// Set when this request is itself an attachment: to what, and of which kind.
    public var attachment: AttachmentLink? {
        get { rare?.attachment }
        set { rare = Rare(pinned: pinned, attachment: newValue) }
    }
    /// What most requests lack, boxed: 10,000 requests are planned at once, and the two inline
    /// were half of each (the box is replaced, never changed).
    fileprivate var rare: Rare?
    fileprivate final class Rare: Sendable {
        let pinned: Descriptor?
        let attachment: AttachmentLink?
        init?(pinned: Descriptor?, attachment: AttachmentLink?) {
            guard pinned != nil || attachment != nil else { return nil }
            self.pinned = pinned; self.attachment = attachment
        }
    }

    public init(reference: Reference, platforms: [Platform] = [], allPlatforms: Bool = false, name: Reference? = nil,
                pinned: Descriptor? = nil, origin: String? = nil, unnamed: Bool = false) {
        self.reference = reference; self.platforms = platforms; self.allPlatforms = allPlatforms
        self.name = name; self.origin = origin; self.unnamed = unnamed
        rare = Rare(pinned: pinned, attachment: nil)
    }

    public var destinationName: Reference { Naming.destinationName(of: reference, explicit: name) }
}

/// Everything a copy will do, decided before a byte of a blob moves: every digest and size is known.
public struct CopyPlan: Sendable {
    public struct PlatformImage: Sendable {
        public var manifest: Descriptor
        public var platform: Platform
        public var config: Descriptor
        public var layers: [Descriptor]
    }

    public struct Image: Sendable {
        /// What was asked for, as far as anything reads it once the image is planned: where it is,
        /// where it was written and what it is attached to (its platforms and pin did their work
        /// in planning, and its name is `name`). Boxed: a plan of 10,000 images holds one each,
        /// read far less often than the rest (the box is replaced, never changed).
        public var request: CopyRequest {
            get {
                var request = CopyRequest(reference: asked.reference, name: name, origin: asked.origin, unnamed: asked.unnamed)
                request.attachments = asked.attachments
                request.attachment = asked.attachment?.attachment
                return request
            }
            set { asked = Asked(newValue) }
        }
        private var asked: Asked
        private final class Asked: Sendable {
            let reference: Reference
            let origin: String?
            let unnamed: Bool, attachments: Bool
            /// The request's box, shared: the attachment link of the few images that are attachments.
            let attachment: CopyRequest.Rare?
            init(_ request: CopyRequest) {
                reference = request.reference; origin = request.origin; unnamed = request.unnamed
                attachments = request.attachments; attachment = request.rare?.attachment == nil ? nil : request.rare
            }
        }
        /// The name at the destination.
        public var name: Reference
        /// What the source named (an index, perhaps of more platforms than were chosen).
        public var sourceTop: Descriptor { narrowed?.sourceTop ?? top }
        /// What the destination names: the index kept whole, one platform's manifest (with its
        /// platform), or a filtered index of the chosen platforms.
        public let top: Descriptor
        /// The source's index digest when `top` is one platform's manifest or a filtered index.
        public var originalIndexDigest: Digest? { narrowed?.originalIndexDigest }
        /// What the source named, boxed, when it is not `top` (most images are copied as they are).
        private let narrowed: Narrowed?
        private final class Narrowed: Sendable {
            let sourceTop: Descriptor
            let originalIndexDigest: Digest?
            init(sourceTop: Descriptor, originalIndexDigest: Digest?) { self.sourceTop = sourceTop; self.originalIndexDigest = originalIndexDigest }
        }
        public var platforms: [PlatformImage]
        /// Manifests and indexes to write, children first, `top` last.
        public var manifests: [Descriptor]
        /// False for an image that gets no name at the destination.
        public var named: Bool { !asked.unnamed }
        /// What the image is attached to, if it is an attachment (`request.attachment`, unboxed).
        public var attachment: AttachmentLink? { asked.attachment?.attachment }
        /// Where the image is at the source (`request.reference`, unboxed).
        public var sourceReference: Reference { asked.reference }
        /// Signatures kept outside the registry (containers' lookaside stores), carried as blobs
        /// whose bytes are in the plan's documents.
        public var lookasideSignatures: [LookasideSignature] = []

        public init(request: CopyRequest, name: Reference, sourceTop: Descriptor, top: Descriptor, originalIndexDigest: Digest?,
                    platforms: [PlatformImage], manifests: [Descriptor]) {
            asked = Asked(request)
            self.name = name; self.top = top
            narrowed = sourceTop == top && originalIndexDigest == nil ? nil : Narrowed(sourceTop: sourceTop, originalIndexDigest: originalIndexDigest)
            self.platforms = platforms; self.manifests = manifests
        }

        /// Every manifest digest the image is known by at the source, each once: the source's
        /// top, the top written, and every manifest under them (what signatures may name).
        public var manifestDigests: [Digest] {
            var digests = [sourceTop.digest]
            for d in [top.digest] + manifests.map(\.digest) + platforms.map(\.manifest.digest) where !digests.contains(d) { digests.append(d) }
            return digests
        }
    }

    /// A simple-signing (GPG) signature of one of an image's manifests.
    public struct LookasideSignature: Sendable {
        public var subject: Digest
        public var blob: Descriptor
        public init(subject: Digest, blob: Descriptor) { self.subject = subject; self.blob = blob }
    }
    /// The media type the bundle lists a lookaside signature blob with (it is no OCI type).
    public static let lookasideSignatureType: MediaType = "application/vnd.airgap.containers.signature.v1"

    /// A config or layer to copy, once, with every image that needs it: the first is where it is
    /// read from (that image's source repository), the rest add their destination names. Images
    /// by position in `images`, not names: a plan of 10,000 images has 30,000 blobs, and a list
    /// of names each cost 6 MB.
    public struct Blob: Sendable {
        public var descriptor: Descriptor
        /// The image it was planned for, by position in `images`.
        public var image: Int
        /// Other images that need it under a name of another repository.
        public var otherImages: [Int32] = []
        public init(descriptor: Descriptor, image: Int) {
            self.descriptor = descriptor; self.image = image
        }
        /// Every image that needs it, the first first.
        public var images: [Int] { [image] + otherImages.map(Int.init) }
    }

    /// The repository at the source a blob is read from.
    public func source(of blob: Blob) -> Reference {
        images.indices.contains(blob.image) ? images[blob.image].sourceReference : Naming.unnamed
    }

    /// The destination name a blob is written under where one name is enough (a store, a tar).
    public func firstName(of blob: Blob) -> Reference {
        images.indices.contains(blob.image) ? images[blob.image].name : Naming.unnamed
    }

    /// Every destination name that needs a blob (a registry: each repository), each once.
    public func names(of blob: Blob) -> [Reference] {
        blob.images.map { images.indices.contains($0) ? images[$0].name : Naming.unnamed }
    }

    public var images: [Image] = []
    /// Bytes of every manifest and index to write, and of configs read while planning.
    public var documents = PlanDocuments()
    public var blobs: [Blob] = []
    /// Blobs the destination holds already (a receipt said so): not copied. Manifests always travel.
    public var leftOut: [Descriptor] = []
    public var planningSeconds: Double = 0

    public init() {}

    /// A plan that only names what a streamed copy brought in (a bundle's index.json entries, an
    /// archive's images): each top under its name, or unnamed.
    public init(naming tops: [(name: Reference?, top: Descriptor)]) {
        images = tops.map { name, top in
            var request = CopyRequest(reference: name ?? Naming.unnamed, pinned: top, unnamed: name == nil)
            request.name = name
            return Image(request: request, name: name ?? Naming.unnamed, sourceTop: top, top: top, originalIndexDigest: nil, platforms: [], manifests: [])
        }
    }

    /// Every manifest and index of the plan, each once, children before parents.
    public var manifests: [Descriptor] {
        var seen = Set<Digest>(minimumCapacity: images.count)
        var out: [Descriptor] = []
        for image in images { for m in image.manifests where seen.insert(m.digest).inserted { out.append(m) } }
        return out
    }

    /// What a tar sink writes after its metadata: every manifest and blob, once, sorted by digest.
    /// Built in one array, sorted, then rid of repeats in place: no set of 40,000 digests beside it.
    public var digestOrder: [Descriptor] {
        var out: [Descriptor] = []
        out.reserveCapacity(images.reduce(0) { $0 + $1.manifests.count } + blobs.count)
        for image in images { out.append(contentsOf: image.manifests) }
        for blob in blobs { out.append(blob.descriptor) }
        // The standard sort is stable: of equal digests the first listed (a manifest before a blob) is kept.
        out.sort { $0.digest < $1.digest }
        var kept = 0
        for i in out.indices where kept == 0 || out[i].digest != out[kept - 1].digest {
            out.swapAt(kept, i)
            kept += 1
        }
        out.removeSubrange(kept...)
        return out
    }

    /// Adds a plan made after this one (build contexts, planned once the images they pull are
    /// pinned): its images follow, and a blob both need stays one blob with both sets of names.
    public mutating func append(_ other: CopyPlan) throws {
        var indexOf: [Digest: Int] = [:]
        for (i, blob) in blobs.enumerated() where indexOf[blob.descriptor.digest] == nil { indexOf[blob.descriptor.digest] = i }
        let shift = images.count
        images += other.images
        try documents.merge(other.documents)
        for var blob in other.blobs {
            blob.image += shift
            blob.otherImages = blob.otherImages.map { $0 + Int32(shift) }
            guard let i = indexOf[blob.descriptor.digest] else {
                indexOf[blob.descriptor.digest] = blobs.count
                blobs.append(blob)
                continue
            }
            for image in blob.images where !names(of: blobs[i]).contains(where: { $0.name == images[image].name.name }) {
                blobs[i].otherImages.append(Int32(image))
            }
        }
        let out = Set(leftOut.map(\.digest))
        leftOut += other.leftOut.filter { !out.contains($0.digest) }
        planningSeconds += other.planningSeconds
    }

    /// Bytes of every image counted on its own, as if nothing were shared (for the dedup summary).
    public var perImageBytes: Int64 {
        images.reduce(0) { total, image in
            total + image.platforms.reduce(0) { $0 + $1.manifest.size + $1.config.size + $1.layers.reduce(0) { $0 + $1.size } }
        }
    }
}

/// Resolves requests against a source into a `CopyPlan`, applying the one platform policy:
/// every chosen platform → the index byte for byte; one → that platform's manifest (the source's
/// digest); a subset → a new, filtered index that records the original's digest.
public struct CopyPlanner: Sendable {
    public let source: any ContentSource
    public var limits = GraphLimits()
    /// Requests resolved at once (each is a few small round trips).
    public var concurrency = 8
    /// Blobs the destination holds already (a receipt): left out and never read from the source.
    public var held: Set<Digest> = []
    /// Index entries may be absent at the source (a store that holds a platform subset).
    public var allowAbsent = false
    /// Bytes of configs (read while planning, for the platform) the plan keeps to write from
    /// memory; past it they are read again when copied, so a plan of 10,000 images stays small.
    public var configBudget: Int64 = 16 << 20
    private let kept = ConfigBudget()
    public let events: TransferEvents
    /// Finds what is attached to the planned images (requests with `attachments`); nil: nothing is looked for.
    public var attachments: AttachmentFinder?
    /// Where the plan's documents go past `documentMemory` bytes (a plan of thousands of images); nil: memory.
    public var documentSpill: (any DocumentSpill)?
    public var documentMemory = 2 << 20

    public init(source: any ContentSource, held: Set<Digest> = [], allowAbsent: Bool = false, events: @escaping TransferEvents = { _ in }) {
        self.source = source; self.held = held; self.allowAbsent = allowAbsent; self.events = events
    }

    public static let originalIndexAnnotation = "io.airgap.original-index-digest"

    public func plan(_ requests: [CopyRequest]) async throws -> CopyPlan {
        let started = ContinuousClock.now
        var plan = CopyPlan()
        plan.documents.spill = documentSpill
        plan.documents.memoryBudget = documentMemory
        plan.images.reserveCapacity(requests.count)
        var blobIndex: [Digest: Int] = [:]
        // The repositories of a blob named by many (a base layer shared by 10,000 images): one set
        // rather than a scan each; a blob of a few names (most) is scanned and needs no set.
        // Keyed by the name's own strings (shared, not a new "host/path" string each).
        struct Repository: Hashable { let registry: String, path: String }
        var repositoriesOf: [Int: Set<Repository>] = [:]
        func named(_ i: Int, _ name: Reference) -> Bool {
            let blob = plan.blobs[i]
            if blob.otherImages.count < 8 {
                return blob.images.contains { plan.images[$0].name.registry == name.registry && plan.images[$0].name.repository == name.repository }
            }
            if repositoriesOf[i] == nil { repositoriesOf[i] = Set(plan.names(of: blob).map { Repository(registry: $0.registry, path: $0.repository) }) }
            return !repositoriesOf[i]!.insert(Repository(registry: name.registry, path: name.repository)).inserted
        }
        var leftOut = Set<Digest>()
        // Each planned image goes into the plan as it arrives (in request order), so the plan is
        // the one copy of the images in memory.
        func add(_ image: CopyPlan.Image, _ documents: [Digest: Data]) throws {
            plan.images.append(image)
            try plan.documents.keep(documents)
            for platform in image.platforms {
                for blob in [platform.config] + platform.layers {
                    if held.contains(blob.digest) {
                        if leftOut.insert(blob.digest).inserted { plan.leftOut.append(blob) }
                        continue
                    }
                    if let i = blobIndex[blob.digest] {
                        if !named(i, image.name) { plan.blobs[i].otherImages.append(Int32(plan.images.count - 1)) }
                    } else {
                        blobIndex[blob.digest] = plan.blobs.count
                        plan.blobs.append(.init(descriptor: blob, image: plan.images.count - 1))
                    }
                }
            }
        }
        /// `synthesized`: empty, or a top document for each request. Positions, not pairs, are
        /// handed out: a zipped copy of 10,000 requests was 4 MB.
        func planAll(_ requests: [CopyRequest], synthesized: [Data?], deliver: ((CopyPlan.Image, [Digest: Data])) throws -> Void) async throws {
            try await forEachConcurrently(Array(requests.indices), limit: concurrency, { i in
                let request = requests[i]
                do { return try await self.planOne(request, topData: synthesized.isEmpty ? nil : synthesized[i]) } catch {
                    guard let origin = request.origin else { throw error }
                    throw Self.prefixed(error, origin)
                }
            }, inOrder: deliver)
        }
        try await planAll(requests, synthesized: []) { try add($0.0, $0.1) }
        if let finder = attachments {
            // Attachments of what was planned, then of those attachments (a signature of an SBOM).
            var known = Set(requests.map { $0.destinationName.description })
            let tags = TagCache()
            var frontier = 0 // the images planned last, whose attachments are looked for next
            for _ in 0..<finder.depth {
                // A temporary, so that no second reference makes the next append copy the images.
                let from = frontier
                frontier = plan.images.count
                let found = try await finder.find(for: from == 0 ? plan.images : Array(plan.images[from...]), known: &known, tagCache: tags, events: events)
                guard !found.isEmpty else { break }
                try await planAll(found.map(\.request), synthesized: found.map(\.synthesized)) { image, documents in
                    let bytes = image.manifests.reduce(0) { $0 + $1.size } + image.platforms.reduce(0) { $0 + $1.config.size + $1.layers.reduce(0) { $0 + $1.size } }
                    guard bytes <= finder.attachmentBytes else {
                        throw ContentError(.unsupported, "\(image.request.reference.familiarDescription), attached to \(image.request.attachment?.subjectName.familiarDescription ?? "an image") as its \(image.request.attachment?.kind.rawValue ?? "attachment"), holds \(bytes >> 20) MiB, more than an attachment may (\(finder.attachmentBytes >> 20) MiB); leave attachments out with 'referrers: false' if that is expected")
                    }
                    try add(image, documents)
                }
            }
        }
        let elapsed = ContinuousClock.now - started
        plan.planningSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        events(.planned(images: plan.images.count, seconds: plan.planningSeconds))
        return plan
    }

    /// Puts where a request was written in front of the error's sentence, keeping its kind.
    public static func prefixed(_ error: any Error, _ origin: String) -> any Error {
        if let e = error as? any PrefixableError { return e.prefixed(origin) }
        return error
    }

    /// `topData`: the top document's bytes when no source holds them (a referrers index the API made).
    func planOne(_ request: CopyRequest, topData given: Data? = nil) async throws -> (CopyPlan.Image, [Digest: Data]) {
        let reference = request.reference
        let subject = reference.familiarDescription
        let (top, topData): (Descriptor, Data)
        if let pinned = request.pinned, let given {
            (top, topData) = (pinned, given)
        } else if let pinned = request.pinned {
            guard let data = try await source.document(pinned, in: reference) else {
                throw ContentError(.missing, "\(subject): its manifest \(pinned.digest) is not in \(source.description)")
            }
            (top, topData) = (pinned, data)
        } else {
            (top, topData) = try await source.resolve(reference)
        }
        events(.resolved(reference, top))

        let chosen = ChosenChildren()
        let walk = GraphWalk(root: top, subject: subject, limits: limits, allowAbsent: allowAbsent) { _, index, depth in
            guard depth == 0 else { return index.manifests }
            let picked = try Self.choose(from: index, for: request, subject: subject)
            chosen.set(candidates: index.manifests.filter { $0.mediaType.isImageManifest }, picked: picked)
            return picked
        }
        let source = self.source
        let graph = try await GraphWalk.run(walk) { d in
            d.digest == top.digest ? topData : try await source.document(d, in: reference)
        }
        var documents = graph.documents

        // The platform policy: what the destination's index.json entry names.
        var destinationTop = top
        var original: Digest?
        var manifests = graph.manifests
        var leaves = graph.images
        if top.mediaType.isIndex {
            let present = chosen.picked.filter { graph.documents[$0.digest] != nil }
            if !request.allPlatforms && present.count < chosen.picked.count, let lacking = chosen.picked.first(where: { graph.documents[$0.digest] == nil }) {
                throw ContentError(.missing, "\(subject) has no image for \(lacking.platform?.description ?? lacking.digest.description) in \(source.description); pull that platform first")
            }
            guard !present.isEmpty else {
                throw ContentError(.missing, "\(subject): none of the images its index names is in \(source.description)")
            }
            // The walk decoded it already (it is a valid index, or the walk had thrown).
            let index = try ImageIndex.decode(topData)
            let everyEntry = index.manifests.allSatisfy { graph.documents[$0.digest] != nil }
            if everyEntry {
                // Every entry is here: the index byte for byte.
            } else if present.count == 1 {
                destinationTop = present[0]
                original = top.digest
                documents[top.digest] = nil
                manifests.removeAll { $0.digest == top.digest }
                leaves = leaves.filter { $0.descriptor.digest == present[0].digest || present[0].mediaType.isIndex }
            } else {
                var filtered = index
                let keep = Set(present.map(\.digest))
                filtered.manifests = filtered.manifests.filter { keep.contains($0.digest) }
                var annotations = filtered.annotations ?? [:]
                annotations[Self.originalIndexAnnotation] = top.digest.description
                filtered.annotations = annotations
                let data = try CanonicalJSON.encode(filtered)
                destinationTop = Descriptor(mediaType: top.mediaType, digest: Digest.sha256(of: data), size: Int64(data.count))
                documents[destinationTop.digest] = data
                documents[top.digest] = nil
                original = top.digest
                manifests.removeAll { $0.digest == top.digest }
                manifests.append(destinationTop)
            }
        }

        var platforms: [CopyPlan.PlatformImage] = []
        for leaf in leaves {
            var platform = leaf.descriptor.platform
            // An attachment has no platform to find (its config is copied like any blob).
            if platform == nil, request.attachment == nil, !held.contains(leaf.manifest.config.digest) {
                // No index names the platform: the config says it (and then travels from memory).
                if let data = try await source.document(leaf.manifest.config, in: reference) {
                    if kept.take(Int64(data.count), limit: configBudget) { documents[leaf.manifest.config.digest] = data }
                    platform = (try? ImageConfig.decode(data))?.platform
                }
            }
            platforms.append(.init(manifest: leaf.descriptor, platform: platform ?? Platform(os: "unknown", architecture: "unknown"),
                                   config: leaf.manifest.config, layers: leaf.manifest.layers))
        }
        if destinationTop.mediaType.isImageManifest, destinationTop.platform == nil, top.mediaType.isIndex {
            destinationTop.platform = platforms.first?.platform
        }
        let image = CopyPlan.Image(request: request, name: request.destinationName, sourceTop: top, top: destinationTop,
                                   originalIndexDigest: original, platforms: platforms, manifests: manifests)
        return (image, documents)
    }

    /// Which entries of a top index a request wants.
    static func choose(from index: ImageIndex, for request: CopyRequest, subject: String) throws -> [Descriptor] {
        let candidates = index.manifests.filter { $0.mediaType.isImageManifest }
        if candidates.isEmpty {
            if index.manifests.contains(where: { $0.mediaType.isSchema1 }) {
                throw ContentError(.unsupported, "\(subject) is an index of Docker schema 1 images (deprecated since 2017, not supported); re-push them with a current engine or convert them with 'skopeo copy --format v2s2', then export again")
            }
            let nested = index.manifests.filter { $0.mediaType.isIndex }
            if !nested.isEmpty { return nested }
            throw ContentError(.unsupported, "\(subject) is an index that lists no image manifests")
        }
        if request.allPlatforms { return candidates }
        let wanted = request.platforms.isEmpty ? [Platform.host] : request.platforms
        let platforms = candidates.map { $0.platform ?? Platform(os: "unknown", architecture: "unknown") }
        var picked: [Descriptor] = []
        for platform in wanted {
            guard let i = platform.bestMatch(in: platforms) else {
                let offered = platforms.map(\.description).joined(separator: ", ")
                throw ContentError(.missing, "\(subject) has no image for \(platform) (it offers \(offered)); choose one with --platform")
            }
            if !picked.contains(candidates[i]) { picked.append(candidates[i]) }
        }
        return picked
    }
}

/// How many config bytes the requests planned at once have kept in memory.
final class ConfigBudget: @unchecked Sendable {
    private let lock = NSLock()
    private var used: Int64 = 0
    func take(_ bytes: Int64, limit: Int64) -> Bool {
        lock.withLock {
            guard used + bytes <= limit else { return false }
            used += bytes
            return true
        }
    }
}

/// The top index's candidates and the entries chosen from them, recorded by the walk's selection.
final class ChosenChildren: @unchecked Sendable {
    private(set) var candidates: [Descriptor] = []
    private(set) var picked: [Descriptor] = []
    func set(candidates: [Descriptor], picked: [Descriptor]) { self.candidates = candidates; self.picked = picked }
}

/// An error whose sentence can take a prefix (where the failing request was written).
public protocol PrefixableError: Error {
    func prefixed(_ prefix: String) -> any Error
}

extension ContentError: PrefixableError {
    public func prefixed(_ prefix: String) -> any Error { ContentError(kind, "\(prefix): \(message)", actual: actual) }
}
