import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapStore
import Foundation

/// Where pushed images land: `HOST[:PORT][/PREFIX]`; `docker.io/library/httpd:2.4` becomes
/// `HOST/PREFIX/library/httpd:2.4` (the source registry name is dropped, the path kept).
public struct PushTarget: Sendable, CustomStringConvertible {
    public var registry: String
    public var prefix: String

    public init(parsing text: String) throws {
        var rest = text
        for scheme in ["https://", "http://"] where rest.hasPrefix(scheme) { rest.removeFirst(scheme.count) }
        while rest.hasSuffix("/") { rest.removeLast() }
        let parts = rest.split(separator: "/", maxSplits: 1)
        guard let host = parts.first.map(String.init), Reference.isValidRegistry(host) else {
            // An address the user typed: a usage error (exit 2), like a bad image reference.
            throw OCIError.invalidReference(text, reason: "expected HOST[:PORT][/PREFIX], for example registry.internal:5000/mirror")
        }
        registry = host
        prefix = parts.count > 1 ? String(parts[1]) : ""
        if !prefix.isEmpty, (try? Reference(parsing: "\(host)/\(prefix)/x")) == nil {
            throw OCIError.invalidReference(text, reason: "the prefix '\(prefix)' is not a repository path (lower-case letters, digits, '.', '_', '-')")
        }
    }

    public var description: String { prefix.isEmpty ? registry : "\(registry)/\(prefix)" }

    public func rewrite(_ reference: Reference) -> Reference { Naming.rewrite(reference, registry: registry, prefix: prefix) }
}

/// `airgap-import push`: a verified bundle → a registry, as a plan over the copy engine. Blobs go
/// straight from their byte ranges in the bundle files (re-hashed on the way up, committed only
/// when they match), every blob of every image first, then the manifests by digest, then the
/// tags: a push that fails anywhere before the tags creates none.
public struct BundlePusher {
    public let client: RegistryClient
    public let events: TransferEvents
    public var concurrency = 4
    public init(client: RegistryClient, events: @escaping TransferEvents = { _ in }) { self.client = client; self.events = events }

    public struct Outcome: Sendable { public var pushed: [(Reference, Digest)] }

    public func push(_ result: BundleReadResult, to target: PushTarget) async throws -> Outcome {
        guard let bundle = VerifiedBundle(result) else {
            throw TransferError.bad("the bundle failed verification; nothing was pushed")
        }
        let plan = try await CopyPlanner(source: bundle, events: events).plan(bundle.requests(renaming: target.rewrite))
        try await CopyEngine(source: bundle, sink: RegistrySink(client: client, concurrency: concurrency), events: events).run(plan)
        for image in plan.images { events(.manifestWritten(image.name, image.top.digest)) }
        return Outcome(pushed: plan.images.map { ($0.name, $0.top.digest) })
    }
}

/// `receipt --registry`: what an internal registry already holds under a prefix.
public enum RegistryReceipt {
    public static func make(client: RegistryClient, target text: String) async throws -> Receipt {
        let target = try PushTarget(parsing: text)
        let repositories = try await client.catalog(registry: target.registry).filter { target.prefix.isEmpty || $0.hasPrefix(target.prefix + "/") }
        var blobs = Set<Digest>()
        var images: [Receipt.Image] = []
        for repository in repositories {
            let base = Reference(registry: target.registry, repository: repository, tag: nil, digest: nil)
            for tag in try await client.listTags(base) {
                let reference = base.withTag(tag)
                let source = RegistrySource(client: client)
                let (top, data) = try await source.resolve(reference)
                images.append(.init(reference: reference.description, digest: top.digest))
                let walk = GraphWalk(root: top, subject: reference.familiarDescription, allowAbsent: true)
                let graph = try await GraphWalk.run(walk) { d in
                    d.digest == top.digest ? data : try? await source.document(d, in: reference)
                }
                blobs.formUnion(graph.manifests.map(\.digest))
                blobs.formUnion(graph.blobs.map(\.digest))
            }
        }
        return Receipt(tool: "airgap \(BundleMetadata.toolVersion)", describes: .init(store: nil, registry: target.description),
                       blobs: Array(blobs), images: images)
    }
}
