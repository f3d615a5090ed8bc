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
    /// The name as the archive spells it when it is no reference (skopeo's bare `oci-archive:FILE:TAG`).
    public var archiveName: String?
}

/// `image load`: reads an image archive in one streaming pass into the store, through the engine's
/// streamed copy into the store's staging area.
///
/// Accepts this tool's format (OCI layout + Docker `manifest.json`), `docker save` output (legacy
/// `<id>/layer.tar` and Docker 25+ OCI form), skopeo's `docker-archive:` and `oci-archive:`, podman's
/// save output, each optionally gzip/zstd-compressed. An archive says what it holds only at its end
/// (manifest.json may come last, legacy layers are named by directory), so every file entry is
/// staged under the digest it hashes to (`blobs/sha256/<hex>` entries must match their names), the
/// images are read and checked from what was staged, and what they use is published with their
/// names in one step: a bad archive adds no blob and names no image.
public struct ArchiveLoader {
    public let store: LocalStore
    /// Hears about what the load leaves out (a name that is not a valid reference).
    public var warn: (String) -> Void = { _ in }
    public init(store: LocalStore, warn: @escaping (String) -> Void = { _ in }) { self.store = store; self.warn = warn }

    static let metadataNames: Set<String> = ["manifest.json", "index.json", "oci-layout", "repositories"]
    static let metadataLimit = 64 << 20

    struct Staged { var digest: Digest; var size: Int64 }

    /// `bytes`: the archive's size when it is a file: a store that cannot hold it is said first
    /// (a compressed archive may still unpack to more).
    public func load(source: any ByteSource, sourceName: String, bytes: Int64? = nil) async throws -> [LoadedImage] {
        if let bytes { try FileIO.requireFreeSpace(bytes, at: store.root, for: "the archive \(sourceName)") }
        let sink = StoreSink(store: store, staged: true)
        let copy = StreamedCopy(sink: sink)
        do {
            try await copy.begin(CopyPlan()) // nothing is known before the archive's end
            let staged = StagedEntries(sink: sink, copy: copy)
            let scan = try await Self.scan(source, sourceName: sourceName) { reader, entry, name, expected in
                let writer = try await copy.writer(size: entry.size, expected: expected, source: "\(sourceName): entry '\(name)'")
                do {
                    try reader.readData { try writer.write($0) }
                    return Staged(digest: try await writer.commit(), size: entry.size)
                } catch {
                    await writer.abandon(keepForResume: false)
                    throw error
                }
            }
            let images = try await ArchiveImages(warn: warn).images(scan, sourceName: sourceName, entries: staged)
            // Only what some image uses is published (legacy `json`/`VERSION` files and the like are not).
            var used = Set<Digest>()
            for image in images {
                let graph = try ArchiveImages(warn: warn).walk(image.descriptor, what: sourceName, entries: staged)
                used.insert(image.descriptor.digest)
                used.formUnion(graph.manifests.map(\.digest))
                used.formUnion(graph.blobs.map(\.digest))
            }
            sink.keepOnly(used)
            try await copy.commit(CopyPlan(naming: images.map { (name: $0.reference, top: $0.descriptor) }))
            return images
        } catch {
            await copy.abort() // bad input changes nothing: what was staged is dropped
            throw error
        }
    }

    /// An archive's entries as one pass found them: metadata files whole, every other file under
    /// the digest it hashed to (`ingest` read it), links as they point.
    struct Scan {
        var files: [String: Staged] = [:]
        var metadata: [String: Data] = [:]
        var links: [String: (target: String, hard: Bool)] = [:]

        /// Links alias another entry of the same archive (legacy docker save links shared layers).
        func lookup(_ name: String, depth: Int = 0) throws -> Staged? {
            if let staged = files[name] { return staged }
            guard let link = links[name], depth < 16 else { return nil }
            return try lookup(try EntryName.resolveLink(link.target, from: name, hard: link.hard), depth: depth + 1)
        }
    }

    /// Reads the archive once, front to back: each file entry's data goes to `ingest` (with the
    /// digest its `blobs/sha256/` name claims, to be checked), which returns what it hashed to.
    /// Refuses what no image archive holds: devices, an entry twice, nothing at all.
    static func scan(_ source: any ByteSource, sourceName: String, decompress: Bool = true,
                     ingest: (TarReader, TarEntry, String, Digest?) async throws -> Staged) async throws -> Scan {
        let reader: TarReader
        do { reader = try TarReader(source: source, decompress: decompress) } catch { throw TransferError.bad("\(sourceName) is not a readable tar archive: \(error)") }
        var scan = Scan()
        var entryCount = 0
        while true {
            let entry: TarEntry?
            do { entry = try reader.next() } catch { throw TransferError.bad("\(sourceName): \(error)") }
            guard let entry else { break }
            entryCount += 1
            let name = try EntryName.normalize(entry.name)
            if name.isEmpty { continue }
            guard scan.files[name] == nil, scan.metadata[name] == nil, scan.links[name] == nil else {
                throw TransferError.bad("\(sourceName) holds the entry '\(name)' twice; refusing an ambiguous archive")
            }
            switch entry.kind {
            case .directory: continue
            case .symlink, .hardlink:
                scan.links[name] = (entry.linkTarget ?? "", entry.kind == .hardlink)
            case .other(let what):
                throw TransferError.bad("\(sourceName) holds a \(what) entry '\(name)'; image archives hold only files and directories")
            case .file:
                if metadataNames.contains(name) {
                    do { scan.metadata[name] = try reader.readAll(limit: metadataLimit) }
                    catch { throw TransferError.bad("\(sourceName): \(name): \(error)") }
                    continue
                }
                do {
                    scan.files[name] = try await ingest(reader, entry, name, digestFromBlobName(name))
                } catch let error as ContentError {
                    throw TransferError.bad(error.description)
                } catch let error as StoreError {
                    throw error
                } catch let error as TransferError {
                    throw error
                } catch {
                    throw TransferError.bad("\(sourceName): entry '\(name)': \(error)")
                }
            }
        }
        guard entryCount > 0 else { throw TransferError.bad("\(sourceName) is empty; expected an image archive") }
        return scan
    }

    static func digestFromBlobName(_ name: String) -> Digest? {
        Naming.digest(ofBlobPath: name)
    }
}

/// The images an archive names, read and checked from its entries wherever they are kept (as
/// `docker load` checks them: every blob present with its size, configs JSON, a Docker archive's
/// layers against the config's diff_ids).
struct ArchiveImages {
    /// Hears about what is left out (a name that is not a valid reference).
    var warn: (String) -> Void

    /// The images the scanned archive names, each checked complete from `entries`.
    func images(_ scan: ArchiveLoader.Scan, sourceName: String, entries: some ArchiveEntries) async throws -> [LoadedImage] {
        if let indexData = scan.metadata["index.json"] {
            let index = try decode(ImageIndex.self, indexData, what: "\(sourceName): index.json")
            if !index.manifests.isEmpty {
                let dockerTags = try dockerRepoTags(scan.metadata["manifest.json"], sourceName: sourceName, lookup: scan.lookup)
                return try loadOCI(index: index, dockerTags: dockerTags, sourceName: sourceName, entries: entries)
            }
        }
        if let manifestData = scan.metadata["manifest.json"] {
            return try await loadDockerArchive(manifestData, sourceName: sourceName, lookup: scan.lookup, entries: entries)
        }
        throw TransferError.bad("\(sourceName) is not an image archive: it has neither index.json nor manifest.json")
    }


    private func decode<T: Decodable>(_ type: T.Type, _ data: Data, what: String) throws -> T {
        do { return try CanonicalJSON.decode(type, from: data, what: what) }
        catch { throw TransferError.bad("\(error)") }
    }

    // MARK: OCI layout (this tool, Docker 25+, skopeo oci-archive, podman)

    private func loadOCI(index: ImageIndex, dockerTags: [Digest: [Reference]], sourceName: String, entries: some ArchiveEntries) throws -> [LoadedImage] {
        var result: [LoadedImage] = []
        for (position, entry) in index.manifests.enumerated() {
            guard entry.mediaType.isManifest else { continue } // other artifacts are not images
            try checkComplete(entry, what: "\(sourceName): index.json entry \(position + 1)", entries: entries)
            var names: [Reference] = []
            if let full = entry.annotations?[Descriptor.containerdNameAnnotation], let r = try? Reference(parsing: full) {
                names.append(r)
            } else if let refName = entry.refName, refName.contains("/") || refName.contains(":"), let r = try? Reference(parsing: refName) {
                names.append(r)
            }
            let id = try? configDigest(of: entry, entries: entries)
            if names.isEmpty, let id { names = dockerTags[id] ?? [] }
            if names.isEmpty, let given = entry.annotations?[Descriptor.containerdNameAnnotation] ?? entry.refName {
                warn("\(sourceName): index.json entry \(position + 1) is named '\(EscapedText.escape(given))', which is not a full image reference (REPOSITORY:TAG); it is loaded without a name (tag it with 'image tag')")
            }
            if names.isEmpty { result.append(LoadedImage(reference: nil, descriptor: entry, id: id, archiveName: entry.refName)) }
            for name in names { result.append(LoadedImage(reference: name, descriptor: entry, id: id)) }
        }
        guard !result.isEmpty else { throw TransferError.bad("\(sourceName): index.json lists no image manifests") }
        return result
    }

    /// Every blob a descriptor needs is present with the announced size; present index children
    /// are complete (the one graph walk, fed from what the archive staged, or the store holds).
    private func checkComplete(_ descriptor: Descriptor, what: String, entries: some ArchiveEntries) throws {
        let graph: ImageGraph
        do {
            graph = try walk(descriptor, what: what, entries: entries)
        } catch let error as ContentError where error.kind == .missing {
            throw TransferError.bad("\(what) names \(descriptor.digest), which the archive does not contain")
        } catch let error as ContentError {
            throw TransferError.bad(error.message)
        }
        guard !graph.images.isEmpty else {
            throw TransferError.bad("\(what): the index \(descriptor.digest) has none of its images in the archive")
        }
        for blob in graph.blobs {
            guard let size = entries.size(of: blob.digest) else {
                throw TransferError.bad("\(what) names \(blob.digest), which the archive does not contain")
            }
            guard size == blob.size else {
                throw TransferError.bad("\(what) says \(blob.digest) has \(blob.size) bytes but the archive holds \(size)")
            }
        }
        for image in graph.images {
            _ = try decode(JSONValue.self, try entries.read(image.manifest.config.digest), what: "\(what): config \(image.manifest.config.digest)")
        }
    }

    func walk(_ descriptor: Descriptor, what: String, entries: some ArchiveEntries) throws -> ImageGraph {
        try GraphWalk.run(GraphWalk(root: descriptor, subject: what, allowAbsent: true)) { d in
            guard let size = entries.size(of: d.digest) else { return nil }
            guard size == d.size else {
                throw TransferError.bad("\(what) says \(d.digest) has \(d.size) bytes but the archive holds \(size)")
            }
            return try entries.read(d.digest)
        }
    }

    private func configDigest(of descriptor: Descriptor, entries: some ArchiveEntries) throws -> Digest {
        guard let first = try walk(descriptor, what: "image", entries: entries).images.first else { throw TransferError.bad("no image") }
        return first.manifest.config.digest
    }

    // MARK: Docker archive (manifest.json)

    struct DockerManifestEntry: Decodable {
        var Config: String
        var RepoTags: [String]?
        var Layers: [String]
    }

    private func dockerRepoTags(_ data: Data?, sourceName: String, lookup: (String, Int) throws -> ArchiveLoader.Staged?) throws -> [Digest: [Reference]] {
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

    private func loadDockerArchive(_ data: Data, sourceName: String, lookup: (String, Int) throws -> ArchiveLoader.Staged?,
                                   entries: some ArchiveEntries) async throws -> [LoadedImage] {
        if case .object(let fields)? = try? JSONDecoder().decode(JSONValue.self, from: data), fields["schemaVersion"] != nil {
            // skopeo's `dir:` transport (manifest.json is the image manifest, blobs named by hex), tarred.
            throw TransferError(.invalidInput, "\(sourceName) is a tarred dir: layout (skopeo's directory transport), not an image archive; unpack it, convert it with 'skopeo copy dir:DIR oci-archive:FILE' and load FILE")
        }
        let listed = try decode([DockerManifestEntry].self, data, what: "\(sourceName): manifest.json")
        guard !listed.isEmpty else { throw TransferError.bad("\(sourceName): manifest.json lists no images") }
        var result: [LoadedImage] = []
        for (position, entry) in listed.enumerated() {
            let what = "\(sourceName): manifest.json entry \(position + 1)"
            let configName = try EntryName.normalize(entry.Config)
            guard let config = try lookup(configName, 0) else { throw TransferError.bad("\(what) names the config '\(configName)', which the archive does not contain") }
            let configData = try entries.read(config.digest)
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
                let mediaType = try layerMediaType(layer.digest, entries: entries)
                let diffID = mediaType == .ociLayer ? layer.digest : try uncompressedDigest(layer, entries: entries, what: "\(what): layer '\(normalized)'")
                if diffID != imageConfig.rootfs.diffIDs[i] {
                    throw TransferError.bad("\(what): layer '\(normalized)' \(mediaType == .ociLayer ? "has digest" : "unpacks to digest") \(diffID) but the config expects diff_id \(imageConfig.rootfs.diffIDs[i])")
                }
                layers.append(Descriptor(mediaType: mediaType, digest: layer.digest, size: layer.size))
            }
            // A Docker archive carries no manifest; write an OCI one so the store is a plain OCI layout.
            let manifest = ImageManifest(mediaType: .ociManifest,
                                         config: Descriptor(mediaType: .ociConfig, digest: config.digest, size: config.size),
                                         layers: layers)
            let manifestData = try CanonicalJSON.encode(manifest)
            let manifestDigest = Digest.sha256(of: manifestData)
            try await entries.add(manifestData, digest: manifestDigest, what: "generated manifest for \(what)")
            let descriptor = Descriptor(mediaType: .ociManifest, digest: manifestDigest, size: Int64(manifestData.count),
                                        platform: Platform(os: imageConfig.os, architecture: imageConfig.architecture, variant: imageConfig.variant))
            let tags = try (entry.RepoTags ?? []).map { tag in
                do { return try Reference(parsing: tag) } catch { throw TransferError.bad("\(what) names an invalid tag '\(tag)'") }
            }
            if tags.isEmpty { result.append(LoadedImage(reference: nil, descriptor: descriptor, id: config.digest)) }
            for tag in tags { result.append(LoadedImage(reference: tag, descriptor: descriptor, id: config.digest)) }
        }
        return result
    }

    /// A Docker archive names a layer by its config's diff_id, the digest of the uncompressed tar: a
    /// compressed one is inflated once and hashed, as `docker load` does. Past 1,100 times its size
    /// (more than gzip can pack) it is refused as a compression bomb.
    private func uncompressedDigest(_ layer: ArchiveLoader.Staged, entries: some ArchiveEntries, what: String) throws -> Digest {
        var hasher = DigestHasher()
        let limit = layer.size.multipliedReportingOverflow(by: 1100)
        let whole: Bool
        do {
            let source = try entries.stream(layer.digest)
            whole = try TarReader.decompressed(source, limit: (limit.overflow ? .max : limit.partialValue) + (64 << 20)) { hasher.update($0) }
            // What was inflated is what the archive holds: the stream checks its digest at its end.
            if whole { try drain(source) }
        } catch let error as StoreError { throw error } catch let error as ContentError {
            throw TransferError.bad("\(what): \(error.message)")
        } catch {
            throw TransferError.bad("\(what) cannot be decompressed: \(error)")
        }
        guard whole else { throw TransferError.bad("\(what) inflates to more than 1,100 times its \(layer.size) bytes; refusing it as a compression bomb") }
        return hasher.finalize()
    }

    /// A Docker archive layer may be a plain tar or compressed; the first bytes tell.
    private func layerMediaType(_ digest: Digest, entries: some ArchiveEntries) throws -> MediaType {
        switch Compression.detect(try entries.head(digest)[...]) {
        case .gzip: return .ociLayerGzip
        case .zstd: return .ociLayerZstd
        default: return .ociLayer
        }
    }
}

/// What an archive's images are read from: its file entries by the digest each hashed to, wherever
/// they are kept: the store's staging area while `image load` reads a stream once, or the archive
/// file itself, in place, for `copy` (`ArchiveSource`).
protocol ArchiveEntries {
    func size(of digest: Digest) -> Int64?
    /// A small entry whole, hashed again on the way (it is about to be trusted).
    func read(_ digest: Digest) throws -> Data
    /// The entry's bytes from its start (a compressed layer inflated), checked against the digest
    /// once read to the end (`drain` reads what a reader left).
    func stream(_ digest: Digest) throws -> any ByteSource
    /// The entry's first bytes (up to 6: a compression's magic), as checked.
    func head(_ digest: Digest) throws -> [UInt8]
    /// Takes a document the archive does not carry: the OCI manifest written for a Docker archive's image.
    func add(_ document: Data, digest: Digest, what: String) async throws
}

/// `image load`'s entries: what the streamed copy staged in the store.
struct StagedEntries: ArchiveEntries {
    let sink: StoreSink
    let copy: StreamedCopy
    func size(of digest: Digest) -> Int64? { sink.stagedSize(of: digest) }
    func read(_ digest: Digest) throws -> Data { try sink.readStaged(digest) }
    func stream(_ digest: Digest) throws -> any ByteSource {
        guard let path = sink.stagedPath(digest) else { throw TransferError.bad("\(digest) is not in the archive") }
        return try FileSequenceSource(paths: [path])
    }
    func head(_ digest: Digest) throws -> [UInt8] {
        // The staged copy is this load's own, hashed as it was written.
        let fd = try sink.openStaged(digest)
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 6)
        let n = magic.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress!, 6) }
        return Array(magic.prefix(max(n, 0)))
    }
    func add(_ document: Data, digest: Digest, what: String) async throws {
        let writer = try await copy.writer(size: Int64(document.count), expected: digest, source: what)
        do { try writer.write(document); try await writer.commit() } catch { await writer.abandon(keepForResume: false); throw error }
    }
}

/// Reads a source to its end (so a verifying one checks what it held).
func drain(_ source: any ByteSource) throws {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
    defer { buffer.deallocate() }
    while try source.read(into: buffer) > 0 {}
}
