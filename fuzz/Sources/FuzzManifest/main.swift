import AirgapContent
import AirgapOCI
import Foundation

// The same bytes go to every decoder a registry or a bundle feeds: image manifest, index,
// config. Whatever decodes must hold only well-formed descriptors (the decoders promise that).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    if let manifest = try? ImageManifest.decode(data) {
        for descriptor in [manifest.config] + manifest.layers {
            precondition(descriptor.size >= 0, "a manifest with a negative size decoded")
        }
    }
    if let index = try? ImageIndex.decode(data) {
        for descriptor in index.manifests { precondition(descriptor.size >= 0, "an index with a negative size decoded") }
    }
    _ = try? ImageConfig.decode(data)
    _ = try? JSONSerialization.jsonObject(with: data)
    // The one graph walk over the same bytes as a top document (its children absent): a graph or a
    // ContentError, never a trap, and its output holds to its own promises.
    for type in [MediaType.ociManifest, .ociIndex, .dockerSchema1Signed] {
        let root = Descriptor(mediaType: type, digest: Digest.sha256(of: data), size: Int64(data.count))
        if let graph = try? GraphWalk.run(GraphWalk(root: root, subject: "fuzz", allowAbsent: true), load: { $0.digest == root.digest ? data : nil }) {
            precondition(graph.manifests.last?.digest == root.digest, "the root is not last")
            precondition(Set(graph.blobs.map(\.digest)).count == graph.blobs.count, "a blob listed twice")
        }
    }
    return 0
}
