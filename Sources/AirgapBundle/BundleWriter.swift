import AirgapOCI
import AirgapStore
import AirgapTar
import enum Crypto.Curve25519
import Foundation

/// Everything a bundle will contain, decided before a byte is written.
public struct BundlePlan: Sendable {
    public var metadata: BundleMetadata
    /// The OCI view: `index.json` bytes.
    public var ociIndex: Data
    /// The Docker archive view: `manifest.json` bytes.
    public var dockerManifest: Data
    public init(metadata: BundleMetadata, ociIndex: Data, dockerManifest: Data) {
        self.metadata = metadata; self.ociIndex = ociIndex; self.dockerManifest = dockerManifest
    }

    public static let ociLayout = Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8)

    /// The bundle's entries after the signature block, in order, with their contents' digests.
    /// Blob digests come from the plan: SHA256SUMS is complete before any blob is read.
    public func checksums(metadataBytes: Data) -> Checksums {
        var entries: [(String, Digest)] = [
            (BundleMetadata.entryName, Digest.sha256(of: metadataBytes)),
            ("oci-layout", Digest.sha256(of: Self.ociLayout)),
            ("index.json", Digest.sha256(of: ociIndex)),
            ("manifest.json", Digest.sha256(of: dockerManifest)),
        ]
        for blob in metadata.blobs { entries.append(("blobs/sha256/\(blob.digest.encoded)", blob.digest)) }
        return Checksums(entries: entries)
    }
}

/// Writes a bundle in its canonical encoding (`CanonicalTar`): metadata, checksums and signature
/// first, then the OCI layout and Docker view, then every blob once, sorted by digest, streamed
/// from the store and re-hashed on the way.
public struct BundleWriter {
    public let store: LocalStore
    public init(store: LocalStore) { self.store = store }

    public func write(_ plan: BundlePlan, signingKey: Curve25519.Signing.PrivateKey?, to sink: @escaping TarWriter.Sink,
                      progress: (Int64) -> Void = { _ in }) throws {
        let metadataBytes = try CanonicalJSON.encode(plan.metadata, pretty: true)
        let sums = plan.checksums(metadataBytes: metadataBytes).data
        let writer = CanonicalTarWriter(sink: sink)
        try writer.addFile(BundleMetadata.entryName, data: metadataBytes)
        try writer.addFile(BundleMetadata.checksumsName, data: sums)
        if let signingKey { try writer.addFile(BundleMetadata.signatureName, data: try BundleKeys.sign(sums, with: signingKey)) }
        try writer.addFile("oci-layout", data: BundlePlan.ociLayout)
        try writer.addFile("index.json", data: plan.ociIndex)
        try writer.addFile("manifest.json", data: plan.dockerManifest)
        for blob in plan.metadata.blobs {
            try writer.beginFile("blobs/sha256/\(blob.digest.encoded)", size: blob.size)
            try StoreBlobCopier(store: store).copy(blob.digest, size: blob.size) { bytes in
                try writer.write(bytes)
                progress(Int64(bytes.count))
            }
        }
        try writer.close()
    }
}

/// Streams a store blob, re-hashing it so a damaged store is caught before it spreads.
public struct StoreBlobCopier {
    public let store: LocalStore
    public init(store: LocalStore) { self.store = store }

    public func copy(_ digest: Digest, size: Int64, to body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let fd = try store.openBlob(digest)
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var hasher = DigestHasher(digest.algorithm)
        var remaining = size
        while remaining > 0 {
            let n = try FileIO.read(fd, into: buffer, path: store.blobPath(digest))
            guard n > 0 else { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<min(n, Int(remaining))])
            hasher.update(chunk)
            try body(chunk)
            remaining -= Int64(chunk.count)
        }
        let actual = hasher.finalize()
        guard remaining == 0, actual == digest else {
            throw StoreError.digestMismatch(expected: digest, actual: actual, source: "store blob \(store.blobPath(digest))")
        }
    }
}
