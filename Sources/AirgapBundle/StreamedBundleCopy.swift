import AirgapContent
import AirgapOCI
import Foundation

extension BundleReader {
    /// The bundle as the source of a streamed copy, read once, front to back: `admit` sees the
    /// signed metadata before any blob (what it throws ends the read with nothing written), the
    /// copy begins with the plan that metadata gives, and each blob entry passes into the writer
    /// the copy hands out; a blob the sink holds already is only hashed, as every byte of the
    /// bundle is. The copy is neither committed nor aborted here: that is decided on the whole
    /// result (and what else the caller checks in it).
    public func read(into copy: StreamedCopy, admit: @escaping (BundleMetadata, SignatureStatus) async throws -> Void = { _, _ in }) async throws -> BundleReadResult {
        try await read(verifiedMetadata: { metadata, signature in
            try await admit(metadata, signature)
            try await copy.begin(CopyPlan(carriedBy: metadata))
        }, blobHandler: { digest, size, data, _ in
            guard let writer = try await copy.writer(for: digest, size: size) else {
                var hasher = DigestHasher()
                try data.readData { hasher.update($0) }
                return hasher.finalize()
            }
            do {
                // The entry is read to its end whatever the writer says, so the stream stays at an
                // entry boundary and a damaged blob is one finding, not a misread after it.
                var refused: (any Error)?
                try data.readData { chunk in
                    guard refused == nil else { return }
                    do { try writer.write(chunk) } catch { refused = error }
                }
                if let refused { throw refused }
                let actual = try await writer.commit()
                copy.finished(digest, size: size)
                return actual
            } catch {
                await writer.abandon(keepForResume: false)
                throw error
            }
        })
    }
}

extension CopyPlan {
    /// What a bundle's signed metadata says it carries, as a plan for a streamed copy: every blob
    /// with its size (a sink checks its free space against what it lacks), every image under its
    /// name, all blobs under the first image (a store or an archive has one namespace). Platforms
    /// and layers come with the manifests, later in the stream: the names a sink finally gets
    /// are the verified bundle's, at commit.
    public init(carriedBy metadata: BundleMetadata) {
        self.init()
        let names = metadata.images.map { (try? Reference(parsing: $0.reference)) ?? Naming.unnamed }
        blobs = metadata.blobs.map { .init(descriptor: Descriptor(mediaType: $0.mediaType, digest: $0.digest, size: $0.size), image: 0) }
        images = zip(metadata.images, names).map { image, name in
            let top = Descriptor(mediaType: image.mediaType, digest: image.digest, size: image.size)
            return CopyPlan.Image(request: CopyRequest(reference: name, pinned: top), name: name, sourceTop: top, top: top,
                                  originalIndexDigest: image.originalIndexDigest, platforms: [], manifests: [])
        }
    }
}
