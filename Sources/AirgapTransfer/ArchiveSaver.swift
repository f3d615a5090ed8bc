import AirgapBundle
import AirgapOCI
import AirgapStore
import AirgapTar
import Foundation

/// `image save`: one tar that is at once an OCI image layout and (with `.docker`) a Docker archive,
/// each blob once however many images share it, metadata first, blobs sorted by digest.
public struct ArchiveSaver {
    public enum Format: String, Sendable, CaseIterable { case docker, oci }
    public let store: LocalStore
    public init(store: LocalStore) { self.store = store }

    public struct Summary: Sendable { public var images: Int; public var blobs: Int; public var bytes: Int64 }

    public func save(_ images: [StoredImage], format: Format, to sink: @escaping TarWriter.Sink) throws -> Summary {
        var indexEntries: [Descriptor] = []
        var blobs: [Digest: Int64] = [:]
        var dockerEntries: [(config: Digest, tags: [String], layers: [Digest], manifest: Digest)] = []

        for image in images {
            // A complete index is kept as it is; a partial one (a platform subset was pulled) is saved as
            // the chosen platform's manifest, since readers expect every child of an index to be there.
            var descriptor = image.manifestDescriptor
            if image.entry.mediaType.isIndex, let complete = try? store.contentClosure(of: image.entry, requireAll: true) {
                descriptor = image.entry
                for d in complete.required { blobs[d] = store.blobSize(d) }
            }
            for blob in [image.manifestDescriptor] + image.manifest.blobs {
                guard let size = store.blobSize(blob.digest) else {
                    throw StoreError.blobMissing(blob.digest, needed: image.reference?.familiarDescription ?? image.id.shortID)
                }
                blobs[blob.digest] = size
            }
            var entry = Descriptor(mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size,
                                   platform: descriptor == image.manifestDescriptor ? image.config.platform : nil)
            if let reference = image.reference {
                entry.annotations = [Descriptor.refNameAnnotation: reference.description,
                                     Descriptor.containerdNameAnnotation: reference.description]
            }
            if !indexEntries.contains(entry) { indexEntries.append(entry) }

            let tag = image.reference.map { [$0.familiarDescription] } ?? []
            if let i = dockerEntries.firstIndex(where: { $0.manifest == image.manifestDescriptor.digest }) {
                dockerEntries[i].tags += tag
            } else {
                dockerEntries.append((image.id, tag, image.manifest.layers.map(\.digest), image.manifestDescriptor.digest))
            }
        }

        let writer = try TarWriter(sink: sink)
        try writer.addFile("oci-layout", data: Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
        try writer.addFile("index.json", data: try CanonicalJSON.encode(ImageIndex(mediaType: .ociIndex, manifests: indexEntries)))
        if format == .docker {
            let manifest: [JSONValue] = dockerEntries.map { e in
                .object(["Config": .string(Self.blobName(e.config)),
                         "RepoTags": e.tags.isEmpty ? .null : .array(e.tags.map(JSONValue.string)),
                         "Layers": .array(e.layers.map { .string(Self.blobName($0)) })])
            }
            try writer.addFile("manifest.json", data: try CanonicalJSON.encode(manifest))
        }
        var total: Int64 = 0
        for (digest, size) in blobs.sorted(by: { $0.key < $1.key }) {
            try writer.beginFile(Self.blobName(digest), size: size)
            try StoreBlobCopier(store: store).copy(digest, size: size) { try writer.write($0) }
            total += size
        }
        try writer.close()
        return Summary(images: indexEntries.count, blobs: blobs.count, bytes: total)
    }

    static func blobName(_ digest: Digest) -> String { "blobs/\(digest.algorithm.rawValue)/\(digest.encoded)" }
}
