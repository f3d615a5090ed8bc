import AirgapContent
import AirgapOCI
import AirgapStore
import AirgapTar
import Foundation

/// An image an archive named (or left unnamed) and that is now in the store.
public struct LoadedImage: Sendable {
    public var reference: Reference?
    public var descriptor: Descriptor
    /// Docker's image ID: the config digest (of the first image, for an index).
    public var id: Digest?
}

/// `image load`: reads an image archive in one streaming pass into the store.
///
/// Accepts this tool's format (OCI layout + Docker `manifest.json`), `docker save` output (legacy
/// `<id>/layer.tar` and Docker 25+ OCI form), skopeo's `docker-archive:` and `oci-archive:`, podman's
/// save output, each optionally gzip/zstd-compressed. Every file entry goes through the store's
/// ingest path, hashed on the way; `blobs/sha256/<hex>` entries must match their names. Tags are
/// written in one atomic step after everything checked out, so a bad archive names no image.
public struct ArchiveLoader {
    public let store: LocalStore
    /// Hears about what the load leaves out (a name that is not a valid reference).
    public var warn: (String) -> Void = { _ in }
    public init(store: LocalStore, warn: @escaping (String) -> Void = { _ in }) { self.store = store; self.warn = warn }

    static let metadataNames: Set<String> = ["manifest.json", "index.json", "oci-layout", "repositories"]
    static let metadataLimit = 64 << 20

    struct Staged { var digest: Digest; var size: Int64 }

    public func load(source: any ByteSource, sourceName: String) throws -> [LoadedImage] {
        let lease = try store.ingestLease()
        defer { lease.unlock() }
        var newBlobs = Set<Digest>()
        do {
            let images = try loadLeased(source: source, sourceName: sourceName, newBlobs: &newBlobs)
            // Drop what the archive carried but no image uses (legacy `json`/`VERSION` files and the like).
            var used = Set<Digest>()
            for image in images { used.formUnion(try store.contentClosure(of: image.descriptor, requireAll: false).required) }
            for digest in newBlobs where !used.contains(digest) { store.removeBlob(digest) }
            return images
        } catch {
            // Bad input changes nothing: remove every blob this load added.
            for digest in newBlobs { store.removeBlob(digest) }
            throw error
        }
    }

    private func loadLeased(source: any ByteSource, sourceName: String, newBlobs: inout Set<Digest>) throws -> [LoadedImage] {
        let reader: TarReader
        do { reader = try TarReader(source: source) } catch { throw TransferError.bad("\(sourceName) is not a readable tar archive: \(error)") }
        var files: [String: Staged] = [:]
        var metadata: [String: Data] = [:]
        var links: [String: (target: String, hard: Bool)] = [:]
        var entryCount = 0

        while true {
            let entry: TarEntry?
            do { entry = try reader.next() } catch { throw TransferError.bad("\(sourceName): \(error)") }
            guard let entry else { break }
            entryCount += 1
            let name = try EntryName.normalize(entry.name)
            if name.isEmpty { continue }
            guard files[name] == nil, metadata[name] == nil, links[name] == nil else {
                throw TransferError.bad("\(sourceName) holds the entry '\(name)' twice; refusing an ambiguous archive")
            }
            switch entry.kind {
            case .directory: continue
            case .symlink, .hardlink:
                links[name] = (entry.linkTarget ?? "", entry.kind == .hardlink)
            case .other(let what):
                throw TransferError.bad("\(sourceName) holds a \(what) entry '\(name)'; image archives hold only files and directories")
            case .file:
                if Self.metadataNames.contains(name) {
                    do { metadata[name] = try reader.readAll(limit: Self.metadataLimit) }
                    catch { throw TransferError.bad("\(sourceName): \(name): \(error)") }
                    continue
                }
                let expected = Self.digestFromBlobName(name)
                let session = try store.beginIngest(expected: expected, size: entry.size, source: "\(sourceName): entry '\(name)'")
                do {
                    try reader.readData { try session.write($0) }
                    let digest = try session.commit()
                    if session.addedNewBlob { newBlobs.insert(digest) }
                    files[name] = Staged(digest: digest, size: entry.size)
                } catch let error as ContentError {
                    session.abandon()
                    throw TransferError.bad(error.description)
                } catch let error as StoreError {
                    session.abandon()
                    throw error
                } catch {
                    session.abandon()
                    throw TransferError.bad("\(sourceName): entry '\(name)': \(error)")
                }
            }
        }
        guard entryCount > 0 else { throw TransferError.bad("\(sourceName) is empty; expected an image archive") }

        // Links alias another entry of the same archive (legacy docker save links shared layers).
        func lookup(_ name: String, depth: Int = 0) throws -> Staged? {
            if let staged = files[name] { return staged }
            guard let link = links[name], depth < 16 else { return nil }
            return try lookup(try EntryName.resolveLink(link.target, from: name, hard: link.hard), depth: depth + 1)
        }

        if let indexData = metadata["index.json"] {
            let index = try decode(ImageIndex.self, indexData, what: "\(sourceName): index.json")
            if !index.manifests.isEmpty {
                let dockerTags = try dockerRepoTags(metadata["manifest.json"], sourceName: sourceName, lookup: lookup)
                return try loadOCI(index: index, dockerTags: dockerTags, sourceName: sourceName)
            }
        }
        if let manifestData = metadata["manifest.json"] {
            return try loadDockerArchive(manifestData, sourceName: sourceName, lookup: lookup, newBlobs: &newBlobs)
        }
        throw TransferError.bad("\(sourceName) is not an image archive: it has neither index.json nor manifest.json")
    }

    static func digestFromBlobName(_ name: String) -> Digest? {
        Naming.digest(ofBlobPath: name)
    }

    private func decode<T: Decodable>(_ type: T.Type, _ data: Data, what: String) throws -> T {
        do { return try CanonicalJSON.decode(type, from: data, what: what) }
        catch { throw TransferError.bad("\(error)") }
    }

    // MARK: OCI layout (this tool, Docker 25+, skopeo oci-archive, podman)

    private func loadOCI(index: ImageIndex, dockerTags: [Digest: [Reference]], sourceName: String) throws -> [LoadedImage] {
        var result: [LoadedImage] = []
        for (position, entry) in index.manifests.enumerated() {
            guard entry.mediaType.isManifest else { continue } // other artifacts are not images
            try checkComplete(entry, what: "\(sourceName): index.json entry \(position + 1)")
            var names: [Reference] = []
            if let full = entry.annotations?[Descriptor.containerdNameAnnotation], let r = try? Reference(parsing: full) {
                names.append(r)
            } else if let refName = entry.refName, refName.contains("/") || refName.contains(":"), let r = try? Reference(parsing: refName) {
                names.append(r)
            }
            let id = try? configDigest(of: entry)
            if names.isEmpty, let id { names = dockerTags[id] ?? [] }
            if names.isEmpty, let given = entry.annotations?[Descriptor.containerdNameAnnotation] ?? entry.refName {
                warn("\(sourceName): index.json entry \(position + 1) is named '\(EscapedText.escape(given))', which is not a full image reference (REPOSITORY:TAG); it is loaded without a name (tag it with 'image tag')")
            }
            if names.isEmpty { result.append(LoadedImage(reference: nil, descriptor: entry, id: id)) }
            for name in names { result.append(LoadedImage(reference: name, descriptor: entry, id: id)) }
        }
        guard !result.isEmpty else { throw TransferError.bad("\(sourceName): index.json lists no image manifests") }
        try store.setTags(result.map { ($0.reference, $0.descriptor) })
        return result
    }

    /// Every blob a descriptor needs is present with the announced size; present index children
    /// are complete (the one graph walk, fed from what the archive put in the store).
    private func checkComplete(_ descriptor: Descriptor, what: String) throws {
        let graph: ImageGraph
        do {
            graph = try walk(descriptor, what: what)
        } catch let error as ContentError where error.kind == .missing {
            throw TransferError.bad("\(what) names \(descriptor.digest), which the archive does not contain")
        } catch let error as ContentError {
            throw TransferError.bad(error.message)
        }
        guard !graph.images.isEmpty else {
            throw TransferError.bad("\(what): the index \(descriptor.digest) has none of its images in the archive")
        }
        for blob in graph.blobs {
            guard let size = store.blobSize(blob.digest) else {
                throw TransferError.bad("\(what) names \(blob.digest), which the archive does not contain")
            }
            guard size == blob.size else {
                throw TransferError.bad("\(what) says \(blob.digest) has \(blob.size) bytes but the archive holds \(size)")
            }
        }
        for image in graph.images {
            _ = try decode(JSONValue.self, try store.readBlob(image.manifest.config.digest), what: "\(what): config \(image.manifest.config.digest)")
        }
    }

    private func walk(_ descriptor: Descriptor, what: String) throws -> ImageGraph {
        try GraphWalk.run(GraphWalk(root: descriptor, subject: what, allowAbsent: true)) { d in
            guard let size = store.blobSize(d.digest) else { return nil }
            guard size == d.size else {
                throw TransferError.bad("\(what) says \(d.digest) has \(d.size) bytes but the archive holds \(size)")
            }
            return try store.readBlob(d.digest)
        }
    }

    private func configDigest(of descriptor: Descriptor) throws -> Digest {
        guard let first = try walk(descriptor, what: "image").images.first else { throw TransferError.bad("no image") }
        return first.manifest.config.digest
    }

    // MARK: Docker archive (manifest.json)

    struct DockerManifestEntry: Decodable {
        var Config: String
        var RepoTags: [String]?
        var Layers: [String]
    }

    private func dockerRepoTags(_ data: Data?, sourceName: String, lookup: (String, Int) throws -> Staged?) throws -> [Digest: [Reference]] {
        guard let data else { return [:] }
        let entries = try decode([DockerManifestEntry].self, data, what: "\(sourceName): manifest.json")
        var tags: [Digest: [Reference]] = [:]
        for entry in entries {
            guard let config = try lookup(try EntryName.normalize(entry.Config), 0) else { continue }
            for tag in entry.RepoTags ?? [] {
                guard let r = try? Reference(parsing: tag) else { throw TransferError.bad("\(sourceName): manifest.json names an invalid tag '\(tag)'") }
                tags[config.digest, default: []].append(r)
            }
        }
        return tags
    }

    private func loadDockerArchive(_ data: Data, sourceName: String, lookup: (String, Int) throws -> Staged?,
                                   newBlobs: inout Set<Digest>) throws -> [LoadedImage] {
        if case .object(let fields)? = try? JSONDecoder().decode(JSONValue.self, from: data), fields["schemaVersion"] != nil {
            // skopeo's `dir:` transport (manifest.json is the image manifest, blobs named by hex), tarred.
            throw TransferError(.invalidInput, "\(sourceName) is a tarred dir: layout (skopeo's directory transport), not an image archive; unpack it, convert it with 'skopeo copy dir:DIR oci-archive:FILE' and load FILE")
        }
        let entries = try decode([DockerManifestEntry].self, data, what: "\(sourceName): manifest.json")
        guard !entries.isEmpty else { throw TransferError.bad("\(sourceName): manifest.json lists no images") }
        var result: [LoadedImage] = []
        for (position, entry) in entries.enumerated() {
            let what = "\(sourceName): manifest.json entry \(position + 1)"
            let configName = try EntryName.normalize(entry.Config)
            guard let config = try lookup(configName, 0) else { throw TransferError.bad("\(what) names the config '\(configName)', which the archive does not contain") }
            let configData = try store.readBlob(config.digest)
            let imageConfig: ImageConfig
            do { imageConfig = try ImageConfig.decode(configData, what: "\(what): config \(configName)") }
            catch { throw TransferError.bad("\(error)") }
            guard imageConfig.rootfs.diffIDs.count == entry.Layers.count else {
                throw TransferError.bad("\(what) lists \(entry.Layers.count) layers but its config has \(imageConfig.rootfs.diffIDs.count) diff_ids")
            }
            var layers: [Descriptor] = []
            for (i, layerName) in entry.Layers.enumerated() {
                let normalized = try EntryName.normalize(layerName)
                guard let layer = try lookup(normalized, 0) else { throw TransferError.bad("\(what) names the layer '\(normalized)', which the archive does not contain") }
                let mediaType = try layerMediaType(layer.digest)
                if mediaType == .ociLayer && layer.digest != imageConfig.rootfs.diffIDs[i] {
                    throw TransferError.bad("\(what): layer '\(normalized)' has digest \(layer.digest) but the config expects diff_id \(imageConfig.rootfs.diffIDs[i])")
                }
                layers.append(Descriptor(mediaType: mediaType, digest: layer.digest, size: layer.size))
            }
            // A Docker archive carries no manifest; write an OCI one so the store is a plain OCI layout.
            let manifest = ImageManifest(mediaType: .ociManifest,
                                         config: Descriptor(mediaType: .ociConfig, digest: config.digest, size: config.size),
                                         layers: layers)
            let manifestData = try CanonicalJSON.encode(manifest)
            let (manifestDigest, added) = try store.ingestReportingNew(manifestData, source: "generated manifest for \(what)")
            if added { newBlobs.insert(manifestDigest) }
            let descriptor = Descriptor(mediaType: .ociManifest, digest: manifestDigest, size: Int64(manifestData.count),
                                        platform: Platform(os: imageConfig.os, architecture: imageConfig.architecture, variant: imageConfig.variant))
            let tags = try (entry.RepoTags ?? []).map { tag in
                do { return try Reference(parsing: tag) } catch { throw TransferError.bad("\(what) names an invalid tag '\(tag)'") }
            }
            if tags.isEmpty { result.append(LoadedImage(reference: nil, descriptor: descriptor, id: config.digest)) }
            for tag in tags { result.append(LoadedImage(reference: tag, descriptor: descriptor, id: config.digest)) }
        }
        try store.setTags(result.map { ($0.reference, $0.descriptor) })
        return result
    }

    /// A Docker archive layer may be a plain tar or compressed; the first bytes tell.
    private func layerMediaType(_ digest: Digest) throws -> MediaType {
        let fd = try store.openBlob(digest)
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 6)
        let n = magic.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress!, 6) }
        switch Compression.detect(magic.prefix(max(n, 0))) {
        case .gzip: return .ociLayerGzip
        case .zstd: return .ociLayerZstd
        default: return .ociLayer
        }
    }
}
