import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapStore
import Foundation

/// `image push`: store → registry, as a plan over the copy engine: blobs the registry lacks
/// (HEAD first, mounts between repositories), then manifests byte for byte, children before
/// their index, the tag last.
public struct ImagePusher: Sendable {
    public let client: RegistryClient
    public let store: LocalStore
    let concurrency: Int
    let events: TransferEvents

    public init(client: RegistryClient, store: LocalStore, concurrency: Int = 4, events: @escaping TransferEvents = { _ in }) {
        self.client = client
        self.store = store
        self.concurrency = concurrency
        self.events = events
    }

    /// Pushes a stored image (its index.json entry) to `target`. Returns the pushed top digest.
    @discardableResult
    public func push(_ image: StoredImage, to target: Reference) async throws -> Digest {
        let source = StoreSource(store: store)
        let request = CopyRequest(reference: image.reference ?? target, allPlatforms: true, name: target, pinned: image.entry)
        let plan = try await CopyPlanner(source: source, allowAbsent: true, events: events).plan([request])
        if let pushed = plan.images.first, pushed.top.digest != image.entry.digest {
            events(.note("\(image.reference?.familiarDescription ?? image.id.shortID) holds only some platforms of its index; pushing \(pushed.platforms.map(\.platform.description).joined(separator: ", ")) as \(pushed.top.digest)"))
        }
        try await CopyEngine(source: source, sink: RegistrySink(client: client, concurrency: concurrency), events: events).run(plan)
        for pushed in plan.images { events(.manifestWritten(pushed.name, pushed.top.digest)) }
        return plan.images[0].top.digest
    }
}
