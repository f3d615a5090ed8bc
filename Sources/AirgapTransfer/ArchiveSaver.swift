import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapStore
import AirgapTar
import Foundation

/// `image save`: store → archive, as a plan over the copy engine. One tar that is at once an OCI
/// image layout and (with `.docker`) a Docker archive, in the bundle's canonical encoding: each
/// blob once however many images share it, metadata first, blobs in digest order. An index the
/// store holds only some platforms of is saved by the platform policy (one → its manifest, a
/// subset → a filtered index), since readers expect every entry of an index to be there.
public struct ArchiveSaver {
    public enum Format: String, Sendable, CaseIterable { case docker, oci }
    public let store: LocalStore
    public init(store: LocalStore) { self.store = store }

    public struct Summary: Sendable { public var images: Int; public var blobs: Int; public var bytes: Int64 }

    /// `path`: the file `sink` writes, if it is one (its free space is checked before a byte).
    public func save(_ images: [StoredImage], format: Format, to sink: @escaping TarWriter.Sink, path: String? = nil) async throws -> Summary {
        let source = StoreSource(store: store)
        let unnamed = Naming.unnamed
        let requests = images.map { image in
            CopyRequest(reference: image.reference ?? unnamed, allPlatforms: true, name: image.reference, pinned: image.entry,
                        unnamed: image.reference == nil)
        }
        let plan = try await CopyPlanner(source: source, allowAbsent: true).plan(requests)
        try await CopyEngine(source: source, sink: BundleSink(archive: .init(sink: sink, dockerView: format == .docker, path: path))).run(plan)
        let written = plan.digestOrder
        return Summary(images: plan.images.count, blobs: written.count, bytes: written.reduce(0) { $0 + $1.size })
    }
}
