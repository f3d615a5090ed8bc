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
    return 0
}
