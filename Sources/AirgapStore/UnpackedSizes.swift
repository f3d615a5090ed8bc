import AirgapOCI
import AirgapTar
import Foundation

/// Each layer's unpacked size, measured once from the blob the store holds and kept in
/// `.airgap/unpacked-sizes.json`: the SIZE Docker users expect is the unpacked one, and a layer
/// never changes under its digest. A store on read-only media measures and keeps nothing.
public final class UnpackedSizes {
    private let store: LocalStore
    private var sizes: [String: Int64]
    private var changed = false
    private var path: String { store.lockDirectory + "/unpacked-sizes.json" }

    init(store: LocalStore) {
        self.store = store
        let path = store.lockDirectory + "/unpacked-sizes.json"
        sizes = (try? FileIO.readFile(path, limit: 64 << 20)).flatMap { try? JSONDecoder().decode([String: Int64].self, from: $0) } ?? [:]
    }

    /// The image's layers unpacked; a layer that cannot be read counts its stored size.
    public func size(of image: StoredImage) -> Int64 {
        image.manifest.layers.reduce(0) { $0 + size(of: $1) }
    }

    /// Real layers unpack to a few times their compressed size; past this ratio the layer is
    /// counted as stored instead of inflated further.
    static let ratioLimit: Int64 = 64

    public func size(of layer: Descriptor) -> Int64 {
        guard layer.mediaType.isImageLayer else { return layer.size }
        if let known = sizes[layer.digest.description] { return known }
        let limit = max(layer.size, 1 << 20).multipliedReportingOverflow(by: Self.ratioLimit)
        // A blob that is not a readable tar, or a bomb, counts its stored size; that is kept too,
        // so it is measured once, not on every listing.
        let measured = (try? FileSequenceSource(paths: [store.blobPath(layer.digest)]))
            .flatMap { try? TarReader.unpackedSize(of: $0, limit: limit.overflow ? .max : limit.partialValue) } ?? layer.size
        sizes[layer.digest.description] = measured
        changed = true
        return measured
    }

    /// Keeps what was measured (best effort: a read-only store stays as it is).
    public func save() {
        guard changed, let data = try? CanonicalJSON.encode(sizes) else { return }
        try? FileIO.writeAtomically(data, to: path, mode: 0o644, sync: false)
        changed = false
    }

    deinit { save() }
}

extension LocalStore {
    public func unpackedSizes() -> UnpackedSizes { UnpackedSizes(store: self) }
}
