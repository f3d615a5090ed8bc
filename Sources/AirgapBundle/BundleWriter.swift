import AirgapOCI
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

/// The bundle's canonical encoding (`CanonicalTar`): metadata, checksums and signature first,
/// then the OCI layout and the Docker view; `BundleSink` then adds every blob once, in digest order.
public enum BundleWriter {
    public static func writeHeader(_ plan: BundlePlan, signingKey: Curve25519.Signing.PrivateKey?, to writer: CanonicalTarWriter) throws {
        let metadataBytes = try CanonicalJSON.encodeLarge(plan.metadata, pretty: true)
        let sums = plan.checksums(metadataBytes: metadataBytes).data
        try writer.addFile(BundleMetadata.entryName, data: metadataBytes)
        try writer.addFile(BundleMetadata.checksumsName, data: sums)
        if let signingKey { try writer.addFile(BundleMetadata.signatureName, data: try BundleKeys.sign(sums, with: signingKey)) }
        try writer.addFile("oci-layout", data: BundlePlan.ociLayout)
        try writer.addFile("index.json", data: plan.ociIndex)
        try writer.addFile("manifest.json", data: plan.dockerManifest)
    }
}
