import AirgapOCI
import AirgapRegistry
import AirgapStore
import Foundation

/// What to pull: a reference, which platforms, and the name it gets in the store.
public struct PullRequest: Sendable {
    public var reference: Reference
    public var platforms: [Platform]
    public var allPlatforms: Bool
    /// Name in the store (defaults to `reference`); a digest-pinned image may get a tag here.
    public var storeName: Reference?
    /// Where the request was written (`images.yaml:12`), put in front of an error resolving it.
    public var origin: String?

    public init(reference: Reference, platforms: [Platform] = [], allPlatforms: Bool = false, storeName: Reference? = nil,
                origin: String? = nil) {
        self.reference = reference
        self.platforms = platforms
        self.allPlatforms = allPlatforms
        self.storeName = storeName
        self.origin = origin
    }
}

/// A resolved image: its top descriptor (manifest or index) and the platform manifests chosen.
public struct ResolvedImage: Sendable {
    public var request: PullRequest
    public var top: Descriptor
    /// Chosen single-platform manifests with their blobs.
    public var images: [(manifest: Descriptor, platform: Platform?, blobs: [Descriptor])]
    public var blobs: [Descriptor] { images.flatMap(\.blobs) }
    public var name: Reference { request.storeName ?? request.reference }
    public init(request: PullRequest, top: Descriptor, images: [(manifest: Descriptor, platform: Platform?, blobs: [Descriptor])]) {
        self.request = request; self.top = top; self.images = images
    }
}

/// Registry → store. Resolves every reference first (manifests verified and stored), then fetches
/// the union of blobs once each, several at a time, then tags everything in one step.
public struct ImagePuller: Sendable {
    public let client: RegistryClient
    public let store: LocalStore
    public var concurrency = 4
    public let events: TransferEvents

    public init(client: RegistryClient, store: LocalStore, concurrency: Int = 4, events: @escaping TransferEvents = { _ in }) {
        self.client = client
        self.store = store
        self.concurrency = concurrency
        self.events = events
    }

    public func pull(_ requests: [PullRequest]) async throws -> [ResolvedImage] {
        let lease = try store.ingestLease()
        defer { lease.unlock() }
        let started = ContinuousClock.now
        // Resolution is small requests, each a round trip: many at once (a 1,000-image set).
        let resolved = try await mapConcurrently(requests, limit: max(concurrency, 8)) { request in
            do { return try await self.resolve(request) } catch {
                guard let origin = request.origin else { throw error }
                switch error {
                case let e as RegistryError: throw RegistryError(e.kind, "\(origin): \(e.message)")
                case let e as TransferError: throw TransferError(e.kind, "\(origin): \(e.message)")
                default: throw error
                }
            }
        }
        events(.planned(images: resolved.count, seconds: Self.seconds(since: started)))
        try await fetchBlobs(resolved)
        try store.setTags(resolved.map { (Optional($0.name), $0.top) })
        return resolved
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Fetches and stores the manifests of one reference, choosing platforms from an index.
    public func resolve(_ request: PullRequest) async throws -> ResolvedImage {
        let reference = request.reference
        let top = try await client.fetchManifest(reference)
        try store.ingest(top.data, expected: top.digest, source: "manifest of \(reference)")
        events(.resolved(reference, top.descriptor))
        var images: [(Descriptor, Platform?, [Descriptor])] = []
        if top.mediaType.isIndex {
            let index = try decoded(ImageIndex.self, top.data, what: "index \(reference)")
            let candidates = index.manifests.filter { $0.mediaType.isImageManifest }
            var chosen: [Descriptor]
            if request.allPlatforms {
                chosen = candidates
            } else {
                let wanted = request.platforms.isEmpty ? [Platform.host] : request.platforms
                let platforms = candidates.map { $0.platform ?? Platform(os: "unknown", architecture: "unknown") }
                chosen = []
                for platform in wanted {
                    guard let i = platform.bestMatch(in: platforms) else {
                        let offered = platforms.map(\.description).joined(separator: ", ")
                        throw TransferError(.invalidInput, "\(reference.familiarDescription) has no image for \(platform) (it offers \(offered)); choose one with --platform")
                    }
                    if !chosen.contains(candidates[i]) { chosen.append(candidates[i]) }
                }
            }
            for child in chosen {
                let fetched = try await client.fetchManifest(reference, selector: child.digest.description)
                guard fetched.digest == child.digest, Int64(fetched.data.count) == child.size else {
                    throw TransferError.bad("\(reference.registry) served a manifest for \(child.digest) that does not match the index")
                }
                try store.ingest(fetched.data, expected: child.digest, source: "manifest \(child.digest)")
                let manifest = try decoded(ImageManifest.self, fetched.data, what: "manifest \(child.digest)")
                images.append((child, child.platform, manifest.blobs))
            }
        } else {
            let manifest = try decoded(ImageManifest.self, top.data, what: "manifest \(reference)")
            images.append((top.descriptor, nil, manifest.blobs))
        }
        return ResolvedImage(request: request, top: top.descriptor, images: images.map { (manifest: $0.0, platform: $0.1, blobs: $0.2) })
    }

    private func decoded<T: Decodable>(_ type: T.Type, _ data: Data, what: String) throws -> T {
        do { return try CanonicalJSON.decode(type, from: data, what: what) } catch { throw TransferError.bad("\(error)") }
    }

    /// Each distinct blob once, from the first repository that needs it.
    func fetchBlobs(_ resolved: [ResolvedImage]) async throws {
        var seen = Set<Digest>()
        var work: [(Reference, Descriptor)] = []
        for image in resolved {
            for blob in image.blobs where seen.insert(blob.digest).inserted {
                work.append((image.request.reference, blob))
            }
        }
        let client = self.client, store = self.store, events = self.events
        let fetch: @Sendable ((Reference, Descriptor)) async throws -> Void = { item in
            let (reference, blob) = item
            if store.hasBlob(blob.digest, size: blob.size) && store.confirmBlob(blob.digest, size: blob.size) {
                events(.blobSkipped(blob.digest, size: blob.size))
                return
            }
            events(.blobStarted(blob.digest, size: blob.size))
            try await client.fetchBlob(reference, blob, into: store) { bytes in events(.blobProgress(blob.digest, bytes: bytes)) }
            events(.blobFinished(blob.digest, size: blob.size))
        }
        // Small blobs (configs, thin layers) cost a round trip each, not bandwidth: many at once.
        // Big ones share the bandwidth and the disk, so fewer; both kinds run side by side.
        let small = work.filter { $0.1.size < Self.smallBlob }, large = work.filter { $0.1.size >= Self.smallBlob }
        let limit = concurrency
        async let smallDone: Void = forEachConcurrently(small, limit: limit * 4, fetch)
        try await forEachConcurrently(large, limit: limit, fetch)
        try await smallDone
    }

    static let smallBlob: Int64 = 1 << 20
}
