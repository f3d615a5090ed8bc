import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapStore
import Foundation

/// `image pull`: registry → store, as a plan over the copy engine. Everything is resolved first
/// (manifests verified, the platform policy applied), then the union of blobs moves once each,
/// several at a time, then the manifests, then every name in one index.json update. The store
/// stays a complete OCI layout: one platform of an index is stored as that platform's manifest.
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

    @discardableResult
    public func pull(_ requests: [CopyRequest]) async throws -> [CopyPlan.Image] {
        let source = RegistrySource(client: client)
        let plan = try await CopyPlanner(source: source, events: events).plan(requests)
        try await CopyEngine(source: source, sink: StoreSink(store: store, concurrency: concurrency), events: events).run(plan)
        return plan.images
    }
}
