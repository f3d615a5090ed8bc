import AirgapBundle
import AirgapContent
import AirgapImageSet
import AirgapOCI
import AirgapRegistry
import AirgapSignatures
import AirgapStore
import AirgapTar
import enum Crypto.Curve25519
import Foundation

/// `airgap-export bundle`: registry → bundle, as a plan over the copy engine. Every reference is
/// resolved first (the bundle's metadata and signature need every digest and size), then each
/// blob streams once from the registry straight into its tar entry, verified on the way. The
/// store is a cache, not a hop: blobs it holds (confirmed) are read from it, and with `cache`
/// every blob fetched is kept in it too. With `--since`, what the receipt holds is never fetched.
public struct BundleExporter {
    public struct Options {
        public var output: String
        public var signingKey: Curve25519.Signing.PrivateKey?
        public var receipt: (Receipt, sha256: String)?
        public var splitSize: Int64?
        /// The signed creation time; nil: now (or `SOURCE_DATE_EPOCH`).
        public var created: String?
        /// Every image must be signed with one of these (`--image-key`), besides the manifest's `verify:` keys.
        public var imageKeys: [ImageKey]
        /// Where containers' simple-signing signatures are looked up (registries.d); nil: none.
        public var registriesD: RegistriesD?
        public init(output: String, signingKey: Curve25519.Signing.PrivateKey?, receipt: (Receipt, sha256: String)? = nil, splitSize: Int64? = nil,
                    created: String? = nil, imageKeys: [ImageKey] = [], registriesD: RegistriesD? = nil) {
            self.output = output; self.signingKey = signingKey; self.receipt = receipt; self.splitSize = splitSize; self.created = created
            self.imageKeys = imageKeys; self.registriesD = registriesD
        }
    }

    public struct Summary: Sendable {
        public var images: Int
        public var blobs: Int
        public var uniqueBytes: Int64
        public var bytesSavedByDedup: Int64
        public var leftOutBlobs: Int
        public var bundleBytes: Int64
        public var volumes: VolumeList
    }

    /// A store to read blobs from when it holds them; nil: the registry only.
    public let store: LocalStore?
    /// Keep every blob fetched in `store` too.
    public let cache: Bool
    public let events: TransferEvents
    public init(store: LocalStore?, cache: Bool = false, events: @escaping TransferEvents = { _ in }) {
        self.store = store; self.cache = cache; self.events = events
    }

    public static func requests(_ set: ImageSet) -> [CopyRequest] {
        set.images.map { entry in
            var request = CopyRequest(reference: entry.reference,
                                      platforms: entry.platforms ?? set.platforms,
                                      allPlatforms: entry.platforms == nil ? set.allPlatforms : entry.allPlatforms,
                                      name: entry.insideName,
                                      origin: "\(set.path):\(entry.line)")
            request.attachments = entry.referrers ?? set.referrers
            return request
        }
    }

    /// `set` is consumed: once its entries are requests they are let go (10,000 of them are 2 MB).
    public func export(_ set: consuming ImageSet, client: RegistryClient, options: Options) async throws -> Summary {
        let manifest = BundleMetadata.SourceManifest(name: (set.path as NSString).lastPathComponent, sha256: Digest.sha256(of: set.data).encoded)
        let registry = RegistrySource(client: client)
        var source: any ContentSource = registry
        if let store { source = CachedSource(registry: source, cache: store, keep: cache) }
        // Build contexts: fetched and read first (their Dockerfiles name more images to carry).
        let contexts = set.contexts.isEmpty ? nil : try ContextExport(scratch: NSTemporaryDirectory() + "airgap-contexts-\(UUID().uuidString)")
        defer { contexts?.remove() }
        let prepared = try contexts?.prepare(set) ?? []
        if let contexts { source = ScratchFirstSource(scratch: StoreSource(store: contexts.store), rest: source) }
        let held = Set(options.receipt?.0.blobs ?? [])
        var planner = CopyPlanner(source: source, held: held, events: events)
        planner.attachments = AttachmentFinder(listing: registry)
        // Past a few MiB the plan's documents wait beside the bundle, in a file with no name.
        planner.documentSpill = try SpillFile(in: (options.output as NSString).deletingLastPathComponent)
        var requests = Self.requests(set)
        let bases = ContextExport.addBaseRequests(prepared, to: &requests, referrers: set.referrers)
        // Keys each image must be signed with (an image the manifest lists: its own `verify:`,
        // else the set's; an image a build pulls: the set's); an image to verify has its
        // signatures looked for (and carried, so that the inside can check them again).
        var keysOf: [String: [ImageKey]] = [:]
        var loaded: [String: ImageKey] = [:]
        let keyPaths = set.images.map { $0.verifyKeys ?? set.verifyKeys } + bases.map { _ in set.verifyKeys }
        for (i, paths) in zip(Array(set.images.indices) + bases, keyPaths) {
            var keys = options.imageKeys
            for path in paths {
                if loaded[path] == nil { loaded[path] = try ImageKey.load(path: path) }
                keys.append(loaded[path]!)
            }
            guard !keys.isEmpty else { continue }
            requests[i].attachments = true
            keysOf[requests[i].destinationName.description] = keys
        }
        set.images = []
        set.data = Data()
        // The plan holds each request from here on: the list is let go rather than kept to the end.
        var plan = try await planner.plan(consume requests)
        if let registriesD = options.registriesD { try await addLookasideSignatures(&plan, registriesD: registriesD, client: client) }
        if !keysOf.isEmpty { try await checkSignatures(&plan, keysOf: keysOf, source: source) }
        if let contexts {
            // The contexts name their bases by the digests just planned, so they are planned last.
            let artifacts = try contexts.pack(prepared, pinnedBy: plan, events: events)
            var second = CopyPlanner(source: source, held: held, events: events)
            second.concurrency = planner.concurrency
            second.documentSpill = planner.documentSpill
            try plan.append(try await second.plan(artifacts))
        }
        return try await write(plan, from: source, options: options, manifest: manifest)
    }

    /// Every image that must be signed is checked before a byte of a layer moves: the signature
    /// payloads are fetched (concurrently, verified by digest) into the plan, which then writes
    /// them from memory.
    func checkSignatures(_ plan: inout CopyPlan, keysOf: [String: [ImageKey]], source: any ContentSource) async throws {
        let checked = plan.images.filter { $0.attachment == nil && keysOf[$0.name.description] != nil }
        var wanted: [(Descriptor, Reference)] = []
        var seen = Set<Digest>()
        for image in checked {
            for attached in CosignVerifier.signatures(of: image, in: plan).manifests {
                guard let manifest = try plan.documents.bytes(attached.top.digest) else { continue }
                for payload in CosignVerifier.payloads(of: [manifest]) where seen.insert(payload.digest).inserted {
                    wanted.append((payload, attached.sourceReference))
                }
            }
        }
        let fetched = try await mapConcurrently(wanted, limit: 8) { payload, repository in
            (payload.digest, try await source.document(payload, in: repository))
        }
        for (digest, data) in fetched { if let data { try plan.documents.keep(data, for: digest) } }
        // One platform of a signed index travels as that platform's manifest: the index itself is
        // carried too, so that the inside can see from verified bytes that it lists the manifest.
        for i in plan.images.indices where plan.images[i].originalIndexDigest != nil && plan.images[i].attachment == nil && keysOf[plan.images[i].name.description] != nil {
            let image = plan.images[i]
            guard !plan.documents.contains(image.sourceTop.digest), let data = try await source.document(image.sourceTop, in: image.sourceReference) else { continue }
            try plan.documents.keep(data, for: image.sourceTop.digest)
            plan.blobs.append(.init(descriptor: image.sourceTop, image: i))
        }
        for image in checked {
            let outcome = try ImageVerifier(keys: keysOf[image.name.description] ?? []).check(image, in: plan)
            guard outcome.isVerified else {
                let origin = image.request.origin.map { "\($0): " } ?? ""
                throw ContentError(.verification, "\(origin)\(image.sourceReference.familiarDescription) is not carried: \(outcome); nothing was written")
            }
            events(.note("\(image.sourceReference.familiarDescription): \(outcome)"))
        }
    }

    /// containers' simple-signing signatures of every image's manifests, from the lookaside store
    /// registries.d names for its repository (or containers/image's default), carried as blobs.
    func addLookasideSignatures(_ plan: inout CopyPlan, registriesD: RegistriesD, client: RegistryClient) async throws {
        var added: [Digest] = []
        for i in plan.images.indices where plan.images[i].attachment == nil && plan.images[i].request.attachments {
            let image = plan.images[i]
            let base = registriesD.entry(for: image.sourceReference)?.lookaside ?? LookasideFiles.defaultURL
            for subject in image.manifestDigests {
                let directory = RegistriesD.directory(base: base, repository: image.sourceReference, digest: subject)
                var signatures: [Data] = []
                if let path = LookasideFiles.path(directory) {
                    signatures = try LookasideFiles.read(directory: path)
                } else if directory.hasPrefix("http://") || directory.hasPrefix("https://") {
                    for n in 1...LookasideFiles.perManifestLimit {
                        guard let data = try await client.fetchFile("\(directory)/signature-\(n)", limit: LookasideFiles.signatureLimit) else { break }
                        signatures.append(data)
                    }
                }
                for data in signatures {
                    let blob = Descriptor(mediaType: CopyPlan.lookasideSignatureType, digest: Digest.sha256(of: data), size: Int64(data.count))
                    plan.images[i].lookasideSignatures.append(.init(subject: subject, blob: blob))
                    guard !plan.documents.contains(blob.digest) else { continue }
                    try plan.documents.keep(data, for: blob.digest)
                    plan.blobs.append(.init(descriptor: blob, image: i))
                    added.append(blob.digest)
                }
            }
        }
        if !added.isEmpty { events(.note("\(added.count) simple-signing signature\(added.count == 1 ? "" : "s") from lookaside stores carried")) }
    }

    /// Runs a plan into a bundle.
    public func write(_ plan: CopyPlan, from source: any ContentSource, options: Options,
                      manifest: BundleMetadata.SourceManifest?) async throws -> Summary {
        let sink = BundleSink(.init(output: options.output, signingKey: options.signingKey, splitSize: options.splitSize,
                                    manifest: manifest, since: options.receipt?.sha256,
                                    sinceRegistry: options.receipt?.0.describes.registry, created: options.created))
        try await CopyEngine(source: source, sink: sink, events: events).run(plan)
        guard let volumes = sink.volumeList, let listed = sink.summary else {
            throw ContentError(.missing, "the bundle was not finished")
        }
        return Summary(images: listed.images, blobs: listed.blobs, uniqueBytes: listed.uniqueBytes,
                       bytesSavedByDedup: max(0, plan.perImageBytes - listed.uniqueBytes), leftOutBlobs: listed.leftOut,
                       bundleBytes: volumes.bundleSize, volumes: volumes)
    }
}

/// A registry with the store in front: tags are resolved at the registry, but documents and blobs
/// the store holds (confirmed: unchanged since hashed, or re-hashed) come from the store. With
/// `keep`, what is fetched is kept in the store as it passes.
struct CachedSource: ContentSource {
    let registry: any ContentSource
    let cache: LocalStore
    let keep: Bool
    var description: String { registry.description }

    func resolve(_ reference: Reference) async throws -> (Descriptor, Data) {
        let (top, data) = try await registry.resolve(reference)
        if keep { try cache.ingest(data, expected: top.digest, source: "manifest \(top.digest) of \(reference.familiarName)") }
        return (top, data)
    }

    private func cached(_ d: Descriptor) -> Bool { cache.hasBlob(d.digest, size: d.size) && cache.confirmBlob(d.digest, size: d.size) }

    func document(_ descriptor: Descriptor, in repository: Reference) async throws -> Data? {
        if cached(descriptor) { return try await StoreSource(store: cache).document(descriptor, in: repository) }
        guard let data = try await registry.document(descriptor, in: repository) else { return nil }
        if keep { try cache.ingest(data, expected: descriptor.digest, source: "blob \(descriptor.digest) of \(repository.familiarName)") }
        return data
    }

    func copyBlob(_ descriptor: Descriptor, in repository: Reference, into writer: any BlobWriter,
                  progress: @escaping @Sendable (Int64) -> Void) async throws {
        if cached(descriptor) {
            return try await StoreSource(store: cache).copyBlob(descriptor, in: repository, into: writer, progress: progress)
        }
        guard keep, writer.offset == 0 else {
            return try await registry.copyBlob(descriptor, in: repository, into: writer, progress: progress)
        }
        let lease = try cache.ingestLease()
        defer { lease.unlock() }
        let copy = try cache.beginIngest(expected: descriptor.digest, size: descriptor.size, source: "blob \(descriptor.digest) of \(repository.familiarName)")
        let tee = TeeBlobWriter(writer, copy)
        do {
            try await registry.copyBlob(descriptor, in: repository, into: tee, progress: progress)
            try copy.commit()
        } catch {
            copy.abandon()
            throw error
        }
    }
}

/// Writes every byte to two writers (a bundle entry and the cache); each verifies on its own, as
/// each is a destination. Whoever handed over `first` commits it (the engine); `CachedSource`
/// commits `second`, so `commit` and `abandon` here concern `first` only.
final class TeeBlobWriter: BlobWriter, @unchecked Sendable {
    let first: any BlobWriter, second: any BlobWriter
    init(_ first: any BlobWriter, _ second: any BlobWriter) { self.first = first; self.second = second }
    var offset: Int64 { first.offset }
    func write(_ bytes: UnsafeRawBufferPointer) throws { try first.write(bytes); try second.write(bytes) }
    func restart() throws { try first.restart(); try second.restart() }
    func commit() async throws -> Digest { try await first.commit() }
    func abandon(keepForResume: Bool) async { await first.abandon(keepForResume: keepForResume) }
}
