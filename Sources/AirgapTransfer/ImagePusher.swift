import AirgapOCI
import AirgapRegistry
import AirgapStore
import Foundation

/// Store → registry: blobs the registry lacks (HEAD first, mount when another repository pushed in
/// this run holds it), then manifests byte-identical, children before their index, the tag last.
public actor ImagePusher {
    public let client: RegistryClient
    public let store: LocalStore
    let concurrency: Int
    let events: TransferEvents
    /// Blobs known to be in some repository of the target registry (for cross-repository mounts).
    private var knownLocations: [Digest: String] = [:]

    public init(client: RegistryClient, store: LocalStore, concurrency: Int = 4, events: @escaping TransferEvents = { _ in }) {
        self.client = client
        self.store = store
        self.concurrency = concurrency
        self.events = events
    }

    /// Pushes a stored image (its index.json entry) to `target`. Returns the pushed top digest.
    @discardableResult
    public func push(_ image: StoredImage, to target: Reference) async throws -> Digest {
        var top = image.entry
        var manifests: [Descriptor] = []
        if image.entry.mediaType.isIndex {
            if let complete = try? store.contentClosure(of: image.entry, requireAll: true) {
                manifests = complete.presentManifests
            } else {
                // The index names platforms the store does not hold; a registry would refuse it.
                events(.note("\(image.reference?.familiarDescription ?? image.id.shortID) holds only some platforms of its index; pushing \(image.config.platform) alone"))
                top = image.manifestDescriptor
                manifests = [image.manifestDescriptor]
            }
        } else {
            manifests = [image.entry]
        }
        var blobs: [Descriptor] = []
        var seen = Set<Digest>()
        for manifest in manifests {
            let parsed = try ImageManifest.decode(try store.readBlob(manifest.digest))
            for blob in parsed.blobs where seen.insert(blob.digest).inserted { blobs.append(blob) }
        }
        try await pushBlobs(blobs, to: target)
        for manifest in manifests where manifest.digest != top.digest {
            try await client.putManifest(target, selector: manifest.digest.description, data: try store.readBlob(manifest.digest), mediaType: manifest.mediaType)
        }
        let selector = target.tag ?? top.digest.description
        try await client.putManifest(target, selector: selector, data: try store.readBlob(top.digest), mediaType: top.mediaType)
        events(.manifestWritten(target, top.digest))
        return top.digest
    }

    private func location(_ digest: Digest) -> String? { knownLocations[digest] }
    private func remember(_ digest: Digest, _ repository: String) { knownLocations[digest] = repository }

    func pushBlobs(_ blobs: [Descriptor], to target: Reference) async throws {
        let client = self.client, store = self.store, events = self.events
        try await forEachConcurrently(blobs, limit: concurrency) { blob in
            if let size = try await client.blobSize(target, blob.digest, push: true), size == blob.size {
                events(.blobSkipped(blob.digest, size: blob.size))
                await self.remember(blob.digest, target.repository)
                return
            }
            if let source = await self.location(blob.digest), source != target.repository,
               try await client.mountBlob(target, blob.digest, from: source) {
                events(.blobMounted(blob.digest, size: blob.size, from: source))
                return
            }
            guard store.hasBlob(blob.digest, size: blob.size) else {
                throw StoreError.blobMissing(blob.digest, needed: target.description)
            }
            events(.blobStarted(blob.digest, size: blob.size))
            try await client.uploadBlob(target, blob, fromFile: store.blobPath(blob.digest)) { events(.blobProgress(blob.digest, bytes: $0)) }
            events(.blobFinished(blob.digest, size: blob.size))
            await self.remember(blob.digest, target.repository)
        }
    }
}
