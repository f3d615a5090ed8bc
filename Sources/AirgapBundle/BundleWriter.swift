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
        /// What the tar will take on disk, at most: its entries, a header block each, and the metadata.
        var tarBytes: Int64 = 0
    }

    /// What a tar of these entries takes on disk, at most (a header and padding each, 1 MiB for the rest).
    static func tarBytes(sizes: some Sequence<Int64>) -> Int64 {
        sizes.reduce(Int64(1 << 20)) { $0 + $1 + 1024 }
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
        let (emptyIndex, entries) = Self.ociIndex(plan)
        index = try spill.append { write in try CanonicalJSON.encodeLarge(emptyIndex, generating: ["manifests": entries], into: write) }
        docker = dockerView || provenance != nil ? try spill.append { write in try CanonicalJSON.encodeLarge(Self.dockerView(plan), into: write) } : nil
        guard let provenance else { metadata = nil; checksums = nil; summary = Summary(); return }
        let (listed, images, blobs) = try Self.metadata(plan, provenance)
        let metadataPiece = try spill.append { write in
            try CanonicalJSON.encodeLarge(listed, pretty: true, generating: ["images": images, "blobs": blobs], into: write)
        }
        metadata = metadataPiece
        summary = Summary(images: images.elementCount, blobs: blobs.count, leftOut: listed.requiredOnInside.count,
                          uniqueBytes: (blobs + listed.requiredOnInside).reduce(Int64(0)) { $0 + $1.size },
                          tarBytes: Self.tarBytes(sizes: blobs.lazy.map(\.size)) + index.size + docker!.size + metadataPiece.size)
        // The bundle's entries after the signature block, in order, with their contents' digests.
        // Blob digests come from the plan: SHA256SUMS is complete before any blob is read.
        let head: [(name: String, digest: Digest)] = [
            (BundleMetadata.entryName, metadataPiece.digest),
            ("oci-layout", Digest.sha256(of: Self.ociLayout)),
            ("index.json", index.digest),
            ("manifest.json", docker!.digest),
        ]
        var sums = Data(capacity: (head.count + blobs.count) * Checksums.lineBytes)
        Checksums.append(head, to: &sums)
        Checksums.append(blobs.lazy.map { (name: Naming.blobPath($0.digest), digest: $0.digest) }, to: &sums)
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
        try writeNames(to: tar)
    }

    /// index.json and, with a Docker view, manifest.json: what names the images.
    func writeNames(to tar: CanonicalTarWriter) throws {
        try copy(index, as: "index.json", to: tar)
        if let docker { try copy(docker, as: "manifest.json", to: tar) }
    }

    private func copy(_ piece: SpillFile.Piece, as name: String, to tar: CanonicalTarWriter) throws {
        try tar.beginFile(name, size: piece.size)
        try spill.read(piece) { try tar.write($0) }
    }

    /// index.json: one entry per named top (an unnamed one once), in plan order, each made as it
    /// is written.
    private static func ociIndex(_ plan: CopyPlan) -> (ImageIndex, entries: GeneratedElements<Descriptor>) {
        let listed = distinctIndexEntries(plan)
        return (ImageIndex(mediaType: .ociIndex, manifests: []), GeneratedElements(count: listed.count) { indexEntry(plan.images[Int(listed[$0])]) })
    }

    private static func indexEntry(_ image: CopyPlan.Image) -> Descriptor {
        var entry = Descriptor(mediaType: image.top.mediaType, digest: image.top.digest, size: image.top.size, platform: image.top.platform)
        if image.named { entry.annotations = Naming.indexAnnotations(image.name) }
        return entry
    }

    /// The positions of the images whose index entry is not an earlier one's again, in plan order.
    /// Positions sorted by top digest put the candidates for a repeat side by side, so only a run
    /// of one digest is ever hashed (not 10,000 entries with a dictionary of annotations each).
    static func distinctIndexEntries(_ plan: CopyPlan) -> [Int32] {
        var order = Array(Int32(0)..<Int32(plan.images.count))
        order.sort { (plan.images[Int($0)].top.digest, $0) < (plan.images[Int($1)].top.digest, $1) }
        var repeated = [Bool](repeating: false, count: plan.images.count)
        var start = 0
        while start < order.count {
            let digest = plan.images[Int(order[start])].top.digest
            var end = start + 1
            while end < order.count, plan.images[Int(order[end])].top.digest == digest { end += 1 }
            if end - start > 1 {
                var seen = Set<Descriptor>()
                for i in order[start..<end] where !seen.insert(indexEntry(plan.images[Int(i)])).inserted { repeated[Int(i)] = true }
            }
            start = end
        }
        return order.indices.lazy.filter { !repeated[$0] }.map { Int32($0) }
    }

    /// The Docker archive view: one entry per image, for its first chosen platform, each made as
    /// it is written. An attachment or an artifact (a Helm chart, an SBOM) is no image an engine can load.
    private static func dockerView(_ plan: CopyPlan) -> GeneratedElements<DockerArchiveEntry> {
        let loadable = plan.images.indices.lazy.filter { i in
            plan.images[i].attachment == nil && plan.images[i].platforms.first?.config.mediaType.isImageConfig == true
        }.map { Int32($0) }
        let positions = Array(loadable)
        return GeneratedElements(count: positions.count) { n in
            let image = plan.images[Int(positions[n])], first = image.platforms[0]
            return DockerArchiveEntry(config: Naming.blobPath(first.config.digest), layers: first.layers.map { Naming.blobPath($0.digest) },
                                      repoTags: image.named ? Naming.repoTag(image.name).map { [$0] } : nil)
        }
    }

    /// bundle.json without its two long lists (left empty), and those lists: its images made one
    /// at a time as they are written, its blobs (which SHA256SUMS lists too).
    private static func metadata(_ plan: CopyPlan, _ provenance: Provenance) throws -> (BundleMetadata, images: GeneratedElements<BundleMetadata.Image>, blobs: [BundleMetadata.Blob]) {
        // Each attachment under the first image listed before it with the name it is attached to.
        var attachmentsOf: [Int: [BundleMetadata.Attachment]] = [:]
        let subjects = Set(plan.images.compactMap { $0.attachment?.subjectName.description })
        if !subjects.isEmpty {
            var position: [String: Int] = [:]
            for (i, image) in plan.images.enumerated() {
                if let link = image.attachment, let subject = position[link.subjectName.description] {
                    attachmentsOf[subject, default: []].append(.init(reference: image.name.description, kind: link.kind, subject: link.subject, digest: image.top.digest))
                }
                let reference = image.name.description
                if subjects.contains(reference), position[reference] == nil { position[reference] = i }
            }
        }
        let images = GeneratedElements(count: plan.images.count) { i -> BundleMetadata.Image in
            let image = plan.images[i]
            var listed = BundleMetadata.Image(reference: image.name.description, source: image.sourceReference.description, digest: image.top.digest,
                                              mediaType: image.top.mediaType, size: image.top.size, originalIndexDigest: image.originalIndexDigest,
                                              platforms: image.platforms.map { .init(platform: $0.platform.description, manifest: $0.manifest.digest, config: $0.config.digest) })
            if !image.lookasideSignatures.isEmpty {
                listed.lookasideSignatures = image.lookasideSignatures.map { .init(subject: $0.subject, digest: $0.blob.digest, size: $0.blob.size) }
            }
            // Only names the context naming rule gives are read as contexts (no decode per image).
            if image.top.mediaType.isImageManifest, image.name.tag?.hasSuffix(BuildContextArtifact.tagSuffix) == true, let data = try plan.documents.bytes(image.top.digest),
               let manifest = try? ImageManifest.decode(data), let context = BuildContextArtifact(manifest: manifest) {
                listed.context = context
            }
            if let link = image.attachment { listed.attachedTo = link.subjectName.description }
            listed.attachments = attachmentsOf[i]
            return listed
        }
        let carried = plan.digestOrder.map { BundleMetadata.Blob(digest: $0.digest, size: $0.size, mediaType: $0.mediaType) }
        let required = plan.leftOut.sorted { $0.digest < $1.digest }.map { BundleMetadata.Blob(digest: $0.digest, size: $0.size, mediaType: $0.mediaType) }
        let metadata = BundleMetadata(tool: .init(name: "airgap", version: BundleMetadata.toolVersion), created: provenance.created, manifest: provenance.manifest,
                                      images: [], blobs: [], requiredOnInside: required, since: provenance.since,
                                      sinceRegistry: required.isEmpty ? nil : provenance.sinceRegistry)
        return (metadata, images, carried)
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
