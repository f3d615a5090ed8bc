#if canImport(Glibc)
import Glibc
#endif
import AirgapContent
import AirgapOCI
import Foundation

/// An OCI image layout directory (readable by skopeo as `oci:DIR:REF`) used as a content store.
///
/// Layout: `oci-layout`, `index.json` (tags as `org.opencontainers.image.ref.name` = full reference),
/// `blobs/sha256/<hex>`, and `.airgap/` for temp files and locks (ignored by other tools).
public final class LocalStore: Sendable {
    public let root: String
    let ingestDirectory: String
    let lockDirectory: String

    /// The default location: `$AIRGAP_STORE`, else `$XDG_DATA_HOME/airgap/store`, else `~/.local/share/airgap/store`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["AIRGAP_STORE"], !explicit.isEmpty { return explicit }
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty { return xdg + "/airgap/store" }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + "/.local/share/airgap/store"
    }

    /// Opens (creating when absent) the store at `path` and removes temp files no process is using.
    public init(path: String) throws {
        root = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        ingestDirectory = root + "/.airgap/ingest"
        lockDirectory = root + "/.airgap"
        try FileIO.makeDirectories(root + "/blobs/sha256", reportAs: root)
        try FileIO.makeDirectories(ingestDirectory, reportAs: root)
        if !FileIO.exists(root + "/oci-layout") {
            try FileIO.writeAtomically(Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8), to: root + "/oci-layout")
        }
        if !FileIO.exists(root + "/index.json") {
            try writeIndexFile(StoreIndex(manifests: []))
        }
        cleanAbandonedTempFiles()
    }

    // MARK: blobs

    public func blobPath(_ digest: Digest) -> String { "\(root)/blobs/\(digest.algorithm.rawValue)/\(digest.encoded)" }

    public func blobSize(_ digest: Digest) -> Int64? { FileIO.fileSize(blobPath(digest)) }

    public func hasBlob(_ digest: Digest, size: Int64? = nil) -> Bool {
        guard let actual = blobSize(digest) else { return false }
        return size == nil || size == actual
    }

    /// Reads a small blob (manifest, config) whole; its digest is checked again, since it is about to be trusted.
    public func readBlob(_ digest: Digest, limit: Int = 64 << 20) throws -> Data {
        let path = blobPath(digest)
        guard FileIO.exists(path) else { throw StoreError.blobMissing(digest, needed: "this operation") }
        return try Self.readVerified(path, digest, limit: limit, source: "store blob \(path)")
    }

    /// A file whole, hashed against `digest` before anyone sees it.
    static func readVerified(_ path: String, _ digest: Digest, limit: Int, source: String) throws -> Data {
        let data = try FileIO.readFile(path, limit: limit)
        var verifier = BlobVerifier(expected: digest, size: nil, source: source)
        try data.withUnsafeBytes { try verifier.update($0) }
        try verifier.finish()
        return data
    }

    /// Opens a blob for streaming reads. The caller closes the descriptor.
    public func openBlob(_ digest: Digest) throws -> Int32 {
        let path = blobPath(digest)
        guard FileIO.exists(path) else { throw StoreError.blobMissing(digest, needed: "this operation") }
        return try FileIO.open(path, flags: O_RDONLY)
    }

    /// Every blob digest present, with its size.
    public func allBlobs() throws -> [Digest: Int64] {
        var result: [Digest: Int64] = [:]
        for algorithm in [Digest.Algorithm.sha256, .sha512] {
            let dir = "\(root)/blobs/\(algorithm.rawValue)"
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { continue }
            for name in names {
                guard let digest = try? Digest(algorithm: algorithm, encoded: name),
                      let size = FileIO.fileSize("\(dir)/\(name)") else { continue }
                result[digest] = size
            }
        }
        return result
    }

    /// Starts the single path by which bytes enter the store. See `IngestSession`.
    public func beginIngest(expected: Digest? = nil, size: Int64? = nil, resume: Bool = false, source: String) throws -> IngestSession {
        try IngestSession(store: self, expected: expected, expectedSize: size, resume: resume, source: source)
    }

    /// Ingests bytes held in memory (manifests, configs); returns the committed digest.
    @discardableResult
    public func ingest(_ data: Data, expected: Digest? = nil, source: String) throws -> Digest {
        try ingestReportingNew(data, expected: expected, source: source).digest
    }

    /// As `ingest`, also saying whether the blob is new to the store (so a failed operation can remove it).
    public func ingestReportingNew(_ data: Data, expected: Digest? = nil, source: String) throws -> (digest: Digest, added: Bool) {
        if let expected, hasBlob(expected, size: Int64(data.count)) {
            try BlobVerifier.check(data, against: Descriptor(mediaType: .ociLayer, digest: expected, size: Int64(data.count)), source: source)
            return (expected, false)
        }
        let session = try beginIngest(expected: expected, size: Int64(data.count), source: source)
        do {
            try data.withUnsafeBytes { try session.write($0) }
            let digest = try session.commit()
            return (digest, session.addedNewBlob)
        } catch {
            session.abandon()
            throw error
        }
    }

    public func removeBlob(_ digest: Digest) {
        unlink(blobPath(digest))
    }

    // MARK: locks

    /// Held (shared) while an operation adds blobs it has not tagged yet, so GC waits instead of deleting them.
    public func ingestLease() throws -> FileLock { try FileLock(path: lockDirectory + "/gc.lock", exclusive: false) }
    func gcLock() throws -> FileLock { try FileLock(path: lockDirectory + "/gc.lock", exclusive: true) }
    func indexLock() throws -> FileLock { try FileLock(path: lockDirectory + "/index.lock", exclusive: true) }

    private func cleanAbandonedTempFiles() {
        // A new index.json a killed load wrote and never renamed (`stageTags`): dropped only while
        // nobody holds the index lock, which its writer keeps until the rename.
        let stale = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("index.json.tmp-") }
        if !stale.isEmpty, let lock = try? FileLock(path: lockDirectory + "/index.lock", exclusive: true, wait: false) {
            for name in stale {
                var seen = stat()
                if lstat(root + "/" + name, &seen) == 0, time(nil) - seen.st_mtim.tv_sec >= 60 { unlink(root + "/" + name) }
            }
            lock.unlock()
        }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: ingestDirectory) else { return }
        for name in names {
            let path = ingestDirectory + "/" + name
            // A temp file or staging area is created, then locked: one younger than a minute may be
            // in that gap, its creator about to lock it (seen: an `image ls` during a load removed
            // a staged blob's temp file). A killed run's leftovers go at a later open.
            var seen = stat()
            guard lstat(path, &seen) == 0, time(nil) - seen.st_mtim.tv_sec >= 60 else { continue }
            if name.hasPrefix("stage-") {
                // A staging area of an operation that died: nothing in it was ever visible.
                let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard fd >= 0 else { continue }
                defer { Glibc.close(fd) }
                if flock(fd, LOCK_EX | LOCK_NB) == 0 { try? FileManager.default.removeItem(atPath: path) }
                continue
            }
            // A partial download kept for resume is locked while in use; an unlocked one older than a week is dropped.
            let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { Glibc.close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }
            var st = stat()
            fstat(fd, &st)
            let age = time(nil) - st.st_mtim.tv_sec
            if !name.hasSuffix(".partial") || age > 7 * 24 * 3600 { unlink(path) }
            flock(fd, LOCK_UN)
        }
    }

    // MARK: index.json (tags)

    struct StoreIndex: Codable {
        var schemaVersion: Int = 2
        var mediaType: MediaType? = .ociIndex
        var manifests: [Descriptor]
        var annotations: [String: String]?
        init(manifests: [Descriptor]) { self.manifests = manifests }
    }

    func readIndexFile() throws -> StoreIndex {
        let path = root + "/index.json"
        let data = try FileIO.readFile(path, limit: 256 << 20)
        do { return try JSONDecoder().decode(StoreIndex.self, from: data) }
        catch { throw StoreError.corrupt(path: path, reason: "it is not a valid OCI index (\(error))") }
    }

    func writeIndexFile(_ index: StoreIndex) throws {
        try FileIO.writeAtomically(try CanonicalJSON.encodeLarge(index), to: root + "/index.json")
    }

    /// The entries of index.json, in file order.
    public func entries() throws -> [Descriptor] { try readIndexFile().manifests }

    /// Changes the tag list under the index lock; the file is replaced atomically.
    @discardableResult
    public func updateEntries<T>(_ body: (inout [Descriptor]) throws -> T) throws -> T {
        let lock = try indexLock()
        defer { lock.unlock() }
        var index = try readIndexFile()
        let result = try body(&index.manifests)
        try writeIndexFile(index)
        return result
    }

    /// Points `reference` at `descriptor`, replacing any entry with the same name.
    public func setTag(_ reference: Reference, to descriptor: Descriptor) throws {
        try setTags([(Optional(reference), descriptor)])
    }

    /// Writes several entries in one atomic index update: a load either names all its images or none.
    /// A nil reference adds an unnamed (dangling) entry, as `docker load` does for an archive without names.
    public func setTags(_ tags: [(Reference?, Descriptor)]) throws {
        try stageTags(tags).commit()
    }

    /// Tags written around a publish, in two steps: this one, under the index lock, writes the
    /// new index.json beside the old one and syncs it (a disk too full for it fails here, before
    /// any blob is visible); `StagedTags.commit` then checks that every tag's content is in
    /// `blobs/` and renames the file into place. The lock is held in between.
    public func stageTags(_ tags: [(Reference?, Descriptor)]) throws -> StagedTags {
        let lock = try indexLock()
        do {
            var index = try readIndexFile()
            Self.merge(tags, into: &index.manifests)
            let path = root + "/index.json"
            // An entry at a time: the tree of 10,000 entries at once was 12 MB.
            let temporary = try FileIO.writeBeside(try CanonicalJSON.encodeLarge(index), for: path)
            return StagedTags(store: self, tags: tags, temporary: temporary, path: path, lock: lock)
        } catch {
            lock.unlock()
            throw error
        }
    }

    /// The new index.json, written and synced, waiting for its rename (see `stageTags`).
    public final class StagedTags {
        let store: LocalStore
        let tags: [(Reference?, Descriptor)]
        let temporary: String
        let path: String
        var lock: FileLock?
        init(store: LocalStore, tags: [(Reference?, Descriptor)], temporary: String, path: String, lock: FileLock) {
            self.store = store; self.tags = tags; self.temporary = temporary; self.path = path; self.lock = lock
        }

        public func commit() throws {
            do {
                for (reference, descriptor) in tags {
                    try store.requireComplete(descriptor, for: reference?.description ?? descriptor.digest.description)
                }
                try FileIO.rename(temporary, path)
                FileIO.fsyncDirectory(store.root)
            } catch {
                abandon()
                throw error
            }
            lock?.unlock()
            lock = nil
        }

        /// Drops the new index.json (nothing was renamed); a no-op once committed or abandoned.
        public func abandon() {
            guard let lock else { return }
            unlink(temporary)
            lock.unlock()
            self.lock = nil
        }

        deinit { abandon() }
    }

    /// The tag list after `tags`: one pass, not one per tag (a load of 10,000 images stays
    /// linear); the last tag of a name wins.
    static func merge(_ tags: [(Reference?, Descriptor)], into entries: inout [Descriptor]) {
        var last: [String: Int] = [:]
        for (i, (reference, _)) in tags.enumerated() { if let reference { last[reference.description] = i } }
        entries.removeAll { $0.refName.map { last[$0] != nil } ?? false }
        var present = Set(entries.map(\.digest))
        for (i, (reference, descriptor)) in tags.enumerated() {
            var entry = Descriptor(mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size,
                                   platform: descriptor.platform)
            if let reference {
                let name = reference.description
                guard last[name] == i else { continue }
                entry.annotations = [Descriptor.refNameAnnotation: name]
            } else {
                // An unnamed entry is only useful when the content has no name yet.
                if present.contains(descriptor.digest) { continue }
            }
            present.insert(descriptor.digest)
            entries.append(entry)
        }
    }

    /// Refuses to tag content that is not all present: a tag never points at missing blobs.
    func requireComplete(_ descriptor: Descriptor, for name: String) throws {
        let closure = try contentClosure(of: descriptor, requireAll: false)
        if descriptor.mediaType.isManifest && closure.presentManifests.isEmpty {
            throw StoreError.conflict("\(name) names an index none of whose images is in the store; pull a platform it offers")
        }
        for digest in closure.required where !hasBlob(digest) {
            throw StoreError.blobMissing(digest, needed: name)
        }
    }
}

extension LocalStore {
    /// The blobs an index entry reaches. For an index, children that are absent are allowed
    /// (a platform subset, in stores written before the platform policy) unless `requireAll`;
    /// every present child must be complete.
    public struct Closure: Sendable {
        public var required: Set<Digest> = []
        public var presentManifests: [Descriptor] = []
    }

    /// The one graph walk, fed from the store's blobs (each read re-hashed).
    public func contentClosure(of descriptor: Descriptor, requireAll: Bool) throws -> Closure {
        var closure = Closure()
        closure.required.insert(descriptor.digest)
        guard descriptor.mediaType.isManifest else { return closure }
        let walk = GraphWalk(root: descriptor, subject: descriptor.refName ?? descriptor.digest.description, allowAbsent: !requireAll)
        let graph: ImageGraph
        do {
            graph = try GraphWalk.run(walk) { d in hasBlob(d.digest) ? try readBlob(d.digest) : nil }
        } catch let error as ContentError where error.kind == .missing {
            throw StoreError.blobMissing(error.missingDigest ?? descriptor.digest, needed: descriptor.refName ?? "an image in the store")
        }
        closure.required.formUnion(graph.manifests.map(\.digest))
        closure.required.formUnion(graph.blobs.map(\.digest))
        if requireAll, let absent = graph.absent.first { throw StoreError.blobMissing(absent.digest, needed: descriptor.refName ?? "an image in the store") }
        closure.presentManifests = graph.images.map(\.descriptor)
        return closure
    }
}
