import AirgapBundle
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

    public func rewrite(_ reference: Reference) -> Reference {
        Reference(registry: registry, repository: prefix.isEmpty ? reference.repository : "\(prefix)/\(reference.repository)",
                  tag: reference.tag, digest: reference.digest)
    }
}

/// `airgap-import push`: verified bytes straight from the bundle to the registry, no extraction.
/// A verification pass runs first (nothing is pushed from a bundle that fails it); then each blob is
/// read again from its place in the bundle files, re-hashed on the way up.
public struct BundlePusher {
    public let client: RegistryClient
    public let events: TransferEvents
    public var concurrency = 4
    public init(client: RegistryClient, events: @escaping TransferEvents = { _ in }) { self.client = client; self.events = events }

    public struct Outcome: Sendable { public var pushed: [(Reference, Digest)] }

    /// Pushes every blob of every image first, then the manifests by digest, then the tags: a push
    /// that fails anywhere before the tags creates none.
    public func push(_ result: BundleReadResult, to target: PushTarget) async throws -> Outcome {
        guard result.ok, let metadata = result.metadata, let index = result.index else {
            throw TransferError.bad("the bundle failed verification; nothing was pushed")
        }
        let volumeSizes = result.files.paths.map { FileIO.fileSize($0) ?? 0 }
        struct Image { var entry: Descriptor; var destination: Reference; var manifests: [Descriptor] }
        var images: [Image] = []
        // Each blob once, with every repository that needs it (the first gets the upload, the others a mount).
        var blobRepositories: [Digest: (blob: Descriptor, destinations: [Reference])] = [:]
        var blobOrder: [Digest] = []
        for entry in index.manifests {
            guard let name = entry.refName.flatMap({ try? Reference(parsing: $0) }) else { continue }
            let destination = target.rewrite(name)
            // Manifests to write (children first), and the blobs they need.
            var manifests: [Descriptor] = []
            var pending = [entry]
            while let d = pending.popLast() {
                guard let data = result.documents[d.digest] else { throw TransferError.bad("the bundle lacks the manifest \(d.digest)") }
                if d.mediaType.isIndex {
                    let child = try ImageIndex.decode(data)
                    for m in child.manifests where result.documents[m.digest] != nil { pending.append(m) }
                } else {
                    for blob in try ImageManifest.decode(data).blobs {
                        if blobRepositories[blob.digest] == nil { blobOrder.append(blob.digest); blobRepositories[blob.digest] = (blob, []) }
                        if !blobRepositories[blob.digest]!.destinations.contains(where: { $0.repository == destination.repository }) {
                            blobRepositories[blob.digest]!.destinations.append(destination)
                        }
                    }
                }
                manifests.insert(d, at: 0)
            }
            images.append(Image(entry: entry, destination: destination, manifests: manifests))
        }

        let requiredOnInside = Set(metadata.requiredOnInside.map(\.digest))
        let client = self.client, events = self.events
        let work = blobOrder.map { blobRepositories[$0]! }
        try await forEachConcurrently(work, limit: concurrency) { item in
            let blob = item.blob
            var holder: Reference?
            for destination in item.destinations {
                if let size = try await client.blobSize(destination, blob.digest, push: true), size == blob.size {
                    events(.blobSkipped(blob.digest, size: blob.size))
                    holder = holder ?? destination
                    continue
                }
                if let source = holder, try await client.mountBlob(destination, blob.digest, from: source.repository) {
                    events(.blobMounted(blob.digest, size: blob.size, from: source.repository))
                    continue
                }
                guard !requiredOnInside.contains(blob.digest) else {
                    throw TransferError(.invalidInput, "\(destination.familiarDescription) needs \(blob.digest), which the bundle left out (--since) and \(destination.registry) does not hold; push the earlier bundle first")
                }
                guard let offset = result.blobOffsets[blob.digest] else {
                    throw TransferError.bad("the bundle does not carry \(blob.digest)")
                }
                events(.blobStarted(blob.digest, size: blob.size))
                try await client.uploadBlob(destination, blob, from: Self.segments(offset: offset, length: blob.size, paths: result.files.paths, sizes: volumeSizes)) {
                    events(.blobProgress(blob.digest, bytes: $0))
                }
                events(.blobFinished(blob.digest, size: blob.size))
                holder = holder ?? destination
            }
        }
        // Every blob is in: manifests by digest (no tag yet), then the tags.
        for image in images {
            for manifest in image.manifests {
                try await client.putManifest(image.destination, selector: manifest.digest.description, data: result.documents[manifest.digest]!, mediaType: manifest.mediaType)
            }
        }
        var pushed: [(Reference, Digest)] = []
        for image in images {
            if let tag = image.destination.tag {
                try await client.putManifest(image.destination, selector: tag, data: result.documents[image.entry.digest]!, mediaType: image.entry.mediaType)
            }
            events(.manifestWritten(image.destination, image.entry.digest))
            pushed.append((image.destination, image.entry.digest))
        }
        return Outcome(pushed: pushed)
    }

    /// Maps an offset in the concatenated bundle onto the volume files.
    static func segments(offset: Int64, length: Int64, paths: [String], sizes: [Int64]) -> FileSegments {
        var result: [FileSegments.Segment] = []
        var start = offset, remaining = length
        for (path, size) in zip(paths, sizes) where remaining > 0 {
            if start >= size { start -= size; continue }
            let take = min(size - start, remaining)
            result.append(.init(path: path, offset: start, length: take))
            remaining -= take
            start = 0
        }
        return FileSegments(result)
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
                let top = try await client.fetchManifest(reference)
                images.append(.init(reference: reference.description, digest: top.digest))
                blobs.insert(top.digest)
                var manifests: [Data] = [top.data]
                if top.mediaType.isIndex {
                    for child in try ImageIndex.decode(top.data).manifests {
                        guard let fetched = try? await client.fetchManifest(reference, selector: child.digest.description) else { continue }
                        blobs.insert(fetched.digest)
                        manifests.append(fetched.data)
                    }
                }
                for data in manifests { if let m = try? ImageManifest.decode(data) { for b in m.blobs { blobs.insert(b.digest) } } }
            }
        }
        return Receipt(tool: "airgap \(BundleExporter.toolVersion)", describes: .init(store: nil, registry: target.description),
                       blobs: Array(blobs), images: images)
    }
}
