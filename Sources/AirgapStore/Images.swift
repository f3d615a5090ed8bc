import AirgapOCI
import Foundation

/// A tagged (or unnamed) entry of the store's index.json, resolved to one platform's image.
public struct StoredImage: Sendable {
    /// Name from `org.opencontainers.image.ref.name`, nil for entries without one (dangling).
    public var reference: Reference?
    /// The index.json entry: a manifest or an index.
    public var entry: Descriptor
    /// The single-platform manifest chosen for display (host platform preferred).
    public var manifestDescriptor: Descriptor
    public var manifest: ImageManifest
    public var config: ImageConfig
    /// Every platform image of the entry present in the store.
    public var platforms: [Platform]

    /// Docker's IMAGE ID: the config digest.
    public var id: Digest { manifest.config.digest }
    /// Compressed bytes of config and layers: what the image occupies in the store.
    public var contentSize: Int64 { manifest.blobs.reduce(0) { $0 + $1.size } + manifestDescriptor.size }
}

/// What the store's images take: unpacked (Docker's SIZE: layers counted as they unpack) and
/// on disk (the compressed blobs the store holds).
public struct DiskUsage: Sendable {
    public struct PerImage: Sendable {
        public var image: StoredImage
        /// Unpacked, and the parts of it other images share or not.
        public var size: Int64
        public var sharedSize: Int64
        public var uniqueSize: Int64
        /// The blobs of the image as stored.
        public var compressedSize: Int64
    }
    public var imageCount: Int
    /// Every image once, layers unpacked, shared layers counted once.
    public var unpackedBytes: Int64
    /// Every blob on disk, and those no image uses (what `image prune` frees without -a).
    public var totalBytes: Int64
    public var referencedBytes: Int64
    public var unreferencedBytes: Int64
    public var perImage: [PerImage]
}

extension LocalStore {
    /// Resolves every index.json entry to a `StoredImage`; entries that cannot be read are skipped
    /// and reported through `problems`.
    public func images(problems: inout [String]) throws -> [StoredImage] {
        var result: [StoredImage] = []
        for entry in try entries() {
            do { result.append(try resolve(entry)) }
            catch { problems.append("\(entry.refName ?? entry.digest.description): \(error)") }
        }
        return result
    }

    public func images() throws -> [StoredImage] {
        var ignored: [String] = []
        return try images(problems: &ignored)
    }

    public func resolve(_ entry: Descriptor, platform: Platform = .host) throws -> StoredImage {
        let reference = entry.refName.flatMap { try? Reference(parsing: $0) }
        var chosen = entry
        var platforms: [Platform] = []
        if entry.mediaType.isIndex {
            let index = try ImageIndex.decode(try readBlob(entry.digest))
            let present = index.manifests.filter { $0.mediaType.isImageManifest && hasBlob($0.digest) }
            guard !present.isEmpty else {
                throw StoreError.blobMissing(index.manifests.first?.digest ?? entry.digest, needed: entry.refName ?? entry.digest.description)
            }
            platforms = present.compactMap(\.platform)
            let candidates = present.map { $0.platform ?? Platform(os: "unknown", architecture: "unknown") }
            chosen = platform.bestMatch(in: candidates).map { present[$0] } ?? present[0]
        }
        let manifest = try ImageManifest.decode(try readBlob(chosen.digest))
        let config = try ImageConfig.decode(try readBlob(manifest.config.digest))
        if platforms.isEmpty { platforms = [config.platform] }
        return StoredImage(reference: reference, entry: entry, manifestDescriptor: chosen, manifest: manifest,
                           config: config, platforms: platforms)
    }

    /// Finds images by name (`httpd`, `httpd:2.4`, full reference), by ID prefix (config digest),
    /// or by manifest digest. Names match exactly after normalisation.
    public func find(_ text: String) throws -> [StoredImage] {
        // By name, only the matching entries are read: `image save` of 10,000 names stays linear.
        let entries = try entries()
        if let reference = try? Reference(parsing: text) {
            let exact = entries.filter { entry in
                guard let r = entry.refName.flatMap({ try? Reference(parsing: $0) }) else { return false }
                // `repo@digest` names an image by content: match the entry's digest under that name.
                if let digest = reference.digest, reference.tag == nil {
                    return r.name == reference.name && (entry.digest == digest || r.digest == digest)
                }
                return r == reference
            }
            let resolved = exact.compactMap { try? resolve($0) }
            if !resolved.isEmpty { return resolved }
        }
        let hex = text.hasPrefix("sha256:") ? String(text.dropFirst(7)) : text
        guard hex.count >= 4, hex.allSatisfy(\.isHexDigit) else { return [] }
        let lower = hex.lowercased()
        return try images().filter { $0.id.encoded.hasPrefix(lower) || $0.entry.digest.encoded.hasPrefix(lower) }
    }

    /// Exactly one image for `text`, or a clear error.
    public func findOne(_ text: String) throws -> StoredImage {
        let found = try find(text)
        guard let first = found.first else { throw StoreError.imageNotFound(text) }
        let ids = Set(found.map(\.entry.digest))
        guard ids.count == 1 else { throw StoreError.ambiguous(text, matches: found.compactMap { $0.reference?.familiarDescription }) }
        return first
    }

    /// Adds a name for an existing image; no blob is written. Holds the lease `rm` and `prune`
    /// wait for, so the blobs it names cannot be swept between the check and the new tag.
    public func tag(source: String, target: Reference) throws {
        let lease = try ingestLease()
        defer { lease.unlock() }
        let image = try findOne(source)
        try setTag(target, to: image.entry)
    }

    /// Removes names; when an image loses its last name its blobs that nothing else uses go too.
    /// Returns the lines Docker prints ("Untagged: …", "Deleted: …").
    public func remove(_ texts: [String], force: Bool) throws -> [String] {
        let gc = try gcLock()
        defer { gc.unlock() }
        var output: [String] = []
        for text in texts {
            let matches = try find(text)
            guard let first = matches.first else { throw StoreError.imageNotFound(text) }
            let byName = (try? Reference(parsing: text)).map { ref in matches.contains { $0.reference == ref } } ?? false
            var toRemove = matches
            if !byName {
                // By ID: every name of the image goes, which needs --force when there are several (as in Docker).
                let all = try images().filter { $0.entry.digest == first.entry.digest }
                if all.count > 1 && !force {
                    throw StoreError.conflict("image \(first.id.shortID) is referenced by several names (\(all.compactMap { $0.reference?.familiarDescription }.joined(separator: ", "))); remove them by name or use --force")
                }
                toRemove = all
            }
            let names = Set(toRemove.map { $0.entry.refName ?? "" })
            try updateEntries { entries in
                entries.removeAll { entry in
                    names.contains(entry.refName ?? "") && toRemove.contains { $0.entry.digest == entry.digest }
                }
            }
            for image in toRemove { if let r = image.reference { output.append("Untagged: \(r.familiarDescription)") } }
            let freed = try sweepUnreferenced()
            output += freed.deleted.map { "Deleted: \($0)" }
        }
        return output
    }

    public struct SweepResult: Sendable {
        public var deleted: [Digest] = []
        public var bytes: Int64 = 0
    }

    /// Deletes blobs no index.json entry reaches. Caller holds the GC lock.
    func sweepUnreferenced() throws -> SweepResult {
        var reachable = Set<Digest>()
        for entry in try entries() {
            if let closure = try? contentClosure(of: entry, requireAll: false) { reachable.formUnion(closure.required) }
            else { reachable.insert(entry.digest) }
        }
        var result = SweepResult()
        for (digest, size) in try allBlobs().sorted(by: { $0.key < $1.key }) where !reachable.contains(digest) {
            removeBlob(digest)
            result.deleted.append(digest)
            result.bytes += size
        }
        return result
    }

    /// `image prune`: removes entries without a name and unreferenced blobs; with `all`, every image.
    public func prune(all: Bool) throws -> (removed: [String], reclaimed: Int64) {
        let gc = try gcLock()
        defer { gc.unlock() }
        var removed: [String] = []
        try updateEntries { entries in
            let keep = entries.filter { !all && $0.refName != nil }
            for entry in entries where !keep.contains(entry) {
                removed.append(entry.refName.flatMap { try? Reference(parsing: $0).familiarDescription } ?? entry.digest.description)
            }
            entries = keep
        }
        let sweep = try sweepUnreferenced()
        return (removed, sweep.bytes)
    }

    /// What `system df` prints: sizes counted by unique blob.
    public func diskUsage() throws -> DiskUsage {
        let blobs = try allBlobs()
        let images = try images()
        let unpacked = unpackedSizes()
        var useCount: [Digest: Int] = [:]
        var perEntryBlobs: [[Descriptor]] = []
        var seenEntries = Set<Digest>()
        var distinct: [Digest: Descriptor] = [:]
        for image in images {
            // The image as listed (the chosen platform): its layers, as Docker's SIZE counts it.
            let parts = image.manifest.layers
            perEntryBlobs.append(parts)
            // Several names of one image count once when deciding what is shared.
            if seenEntries.insert(image.entry.digest).inserted { for d in Set(parts.map(\.digest)) { useCount[d, default: 0] += 1 } }
            for part in parts { distinct[part.digest] = part }
        }
        func size(_ d: Descriptor) -> Int64 { unpacked.size(of: d) }
        var per: [DiskUsage.PerImage] = []
        for (image, parts) in zip(images, perEntryBlobs) {
            var shared: Int64 = 0, unique: Int64 = 0, compressed: Int64 = 0
            for part in Dictionary(parts.map { ($0.digest, $0) }, uniquingKeysWith: { a, _ in a }).values {
                if useCount[part.digest, default: 0] > 1 { shared += size(part) } else { unique += size(part) }
                compressed += blobs[part.digest] ?? 0
            }
            per.append(.init(image: image, size: shared + unique, sharedSize: shared, uniqueSize: unique, compressedSize: compressed))
        }
        unpacked.save()
        var referenced = Set<Digest>()
        for image in images { referenced.formUnion((try? contentClosure(of: image.entry, requireAll: false))?.required ?? []) }
        let total = blobs.values.reduce(0, +)
        let referencedBytes = blobs.filter { referenced.contains($0.key) }.values.reduce(0, +)
        return DiskUsage(imageCount: Set(images.map(\.entry.digest)).count, unpackedBytes: distinct.values.reduce(0) { $0 + size($1) },
                         totalBytes: total, referencedBytes: referencedBytes, unreferencedBytes: total - referencedBytes, perImage: per)
    }
}
