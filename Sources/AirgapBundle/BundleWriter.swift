import AirgapContent
import AirgapOCI
import AirgapStore
import AirgapTar
import enum Crypto.Curve25519
import Foundation

/// The documents a bundle (or an image archive) starts with, made from the copy plan alone: the
/// OCI index (full references), the Docker view (RepoTags) and, for a bundle, bundle.json, all
/// named by `Naming`. Each is encoded a piece at a time into a temporary file and hashed on the
/// way, one after the other, so that the 22 MB of them a 10,000-image export makes are never in
/// memory together; SHA256SUMS is made from their digests and the plan's blob list, signed, and
/// the tar is written from the file.
struct BundleHeader {
    /// What bundle.json says, in numbers (the export's summary line).
    struct Summary: Sendable {
        var images = 0, blobs = 0, leftOut = 0
        var uniqueBytes: Int64 = 0
    }

    /// What only a bundle has: where its images came from and when it was made.
    struct Provenance {
        var manifest: BundleMetadata.SourceManifest?
        var since: String?
        var sinceRegistry: String?
        var created: String?
    }

    static let ociLayout = Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8)

    private let spill: SpillFile
    private let index: SpillFile.Piece
    private let docker: SpillFile.Piece?
    private let metadata: SpillFile.Piece?
    /// SHA256SUMS: held, since the signature is made over all of it at once.
    private let checksums: Data?
    let summary: Summary

    /// `provenance` nil: an image archive (no bundle.json, no SHA256SUMS).
    init(copy plan: CopyPlan, provenance: Provenance?, dockerView: Bool, temporaryDirectory: String) throws {
        spill = try SpillFile(in: temporaryDirectory)
        index = try spill.append { write in try CanonicalJSON.encodeLarge(Self.ociIndex(plan), into: write) }
        docker = dockerView || provenance != nil ? try spill.append { write in try CanonicalJSON.encodeLarge(Self.dockerView(plan), into: write) } : nil
        guard let provenance else { metadata = nil; checksums = nil; summary = Summary(); return }
        let listed = try Self.metadata(plan, provenance)
        let metadataPiece = try spill.append { write in try CanonicalJSON.encodeLarge(listed, pretty: true, into: write) }
        metadata = metadataPiece
        summary = Summary(images: listed.images.count, blobs: listed.blobs.count, leftOut: listed.requiredOnInside.count,
                          uniqueBytes: (listed.blobs + listed.requiredOnInside).reduce(Int64(0)) { $0 + $1.size })
        // The bundle's entries after the signature block, in order, with their contents' digests.
        // Blob digests come from the plan: SHA256SUMS is complete before any blob is read.
        let head: [(name: String, digest: Digest)] = [
            (BundleMetadata.entryName, metadataPiece.digest),
            ("oci-layout", Digest.sha256(of: Self.ociLayout)),
            ("index.json", index.digest),
            ("manifest.json", docker!.digest),
        ]
        var sums = Data(capacity: (head.count + listed.blobs.count) * Checksums.lineBytes)
        Checksums.append(head, to: &sums)
        Checksums.append(listed.blobs.lazy.map { (name: Naming.blobPath($0.digest), digest: $0.digest) }, to: &sums)
        checksums = sums
    }

    /// The bundle's canonical encoding (`CanonicalTar`): metadata, checksums and signature first,
    /// then the OCI layout and the Docker view; `BundleSink` then adds every blob once, in digest
    /// order. An archive has the OCI layout and, with a Docker view, manifest.json.
    func write(to tar: CanonicalTarWriter, signingKey: Curve25519.Signing.PrivateKey?) throws {
        if let metadata, let checksums {
            try copy(metadata, as: BundleMetadata.entryName, to: tar)
            try tar.addFile(BundleMetadata.checksumsName, data: checksums)
            if let signingKey { try tar.addFile(BundleMetadata.signatureName, data: try BundleKeys.sign(checksums, with: signingKey)) }
        }
        try tar.addFile("oci-layout", data: Self.ociLayout)
        try copy(index, as: "index.json", to: tar)
        if let docker { try copy(docker, as: "manifest.json", to: tar) }
    }

    private func copy(_ piece: SpillFile.Piece, as name: String, to tar: CanonicalTarWriter) throws {
        try tar.beginFile(name, size: piece.size)
        try spill.read(piece) { try tar.write($0) }
    }

    /// index.json: one entry per named top (an unnamed one once), in plan order.
    private static func ociIndex(_ plan: CopyPlan) -> ImageIndex {
        var entries: [Descriptor] = []
        var listed = Set<Descriptor>()
        for image in plan.images {
            var entry = Descriptor(mediaType: image.top.mediaType, digest: image.top.digest, size: image.top.size, platform: image.top.platform)
            if image.named { entry.annotations = Naming.indexAnnotations(image.name) }
            if listed.insert(entry).inserted { entries.append(entry) }
        }
        return ImageIndex(mediaType: .ociIndex, manifests: entries)
    }

    /// The Docker archive view: one entry per image, for its first chosen platform. An attachment
    /// or an artifact (a Helm chart, an SBOM) is no image an engine can load.
    private static func dockerView(_ plan: CopyPlan) -> [DockerArchiveEntry] {
        plan.images.compactMap { image in
            guard image.request.attachment == nil, let first = image.platforms.first, first.config.mediaType.isImageConfig else { return nil }
            return DockerArchiveEntry(config: Naming.blobPath(first.config.digest), layers: first.layers.map { Naming.blobPath($0.digest) },
                                      repoTags: image.named ? Naming.repoTag(image.name).map { [$0] } : nil)
        }
    }

    private static func metadata(_ plan: CopyPlan, _ provenance: Provenance) throws -> BundleMetadata {
        var images: [BundleMetadata.Image] = []
        images.reserveCapacity(plan.images.count)
        var position: [String: Int] = [:] // an attachment's subject, found without a scan per attachment
        for image in plan.images {
            var listedImage = BundleMetadata.Image(reference: image.name.description, source: image.request.reference.description, digest: image.top.digest,
                                                   mediaType: image.top.mediaType, size: image.top.size, originalIndexDigest: image.originalIndexDigest,
                                                   platforms: image.platforms.map { .init(platform: $0.platform.description, manifest: $0.manifest.digest, config: $0.config.digest) })
            if !image.lookasideSignatures.isEmpty {
                listedImage.lookasideSignatures = image.lookasideSignatures.map { .init(subject: $0.subject, digest: $0.blob.digest, size: $0.blob.size) }
            }
            // Only names the context naming rule gives are read as contexts (no decode per image).
            if image.top.mediaType.isImageManifest, image.name.tag?.hasSuffix(BuildContextArtifact.tagSuffix) == true, let data = plan.documents[image.top.digest],
               let manifest = try? ImageManifest.decode(data), let context = BuildContextArtifact(manifest: manifest) {
                listedImage.context = context
            }
            if let link = image.request.attachment {
                listedImage.attachedTo = link.subjectName.description
                if let i = position[link.subjectName.description] {
                    images[i].attachments = (images[i].attachments ?? []) + [.init(reference: image.name.description, kind: link.kind, subject: link.subject, digest: image.top.digest)]
                }
            }
            if position[listedImage.reference] == nil { position[listedImage.reference] = images.count }
            images.append(listedImage)
        }
        let carried = plan.digestOrder.map { BundleMetadata.Blob(digest: $0.digest, size: $0.size, mediaType: $0.mediaType) }
        let required = plan.leftOut.sorted { $0.digest < $1.digest }.map { BundleMetadata.Blob(digest: $0.digest, size: $0.size, mediaType: $0.mediaType) }
        return BundleMetadata(tool: .init(name: "airgap", version: BundleMetadata.toolVersion), created: provenance.created, manifest: provenance.manifest,
                              images: images, blobs: carried, requiredOnInside: required, since: provenance.since,
                              sinceRegistry: required.isEmpty ? nil : provenance.sinceRegistry)
    }
}

/// One image of a Docker archive's manifest.json (the keys are Docker's).
struct DockerArchiveEntry: Encodable {
    var config: String
    var layers: [String]
    /// nil: written as `null` (an untagged image), as Docker writes it.
    var repoTags: [String]?
    enum CodingKeys: String, CodingKey { case config = "Config", layers = "Layers", repoTags = "RepoTags" }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(config, forKey: .config)
        try c.encode(layers, forKey: .layers)
        if let repoTags { try c.encode(repoTags, forKey: .repoTags) } else { try c.encodeNil(forKey: .repoTags) }
    }
}
