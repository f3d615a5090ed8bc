#if canImport(Glibc)
import Glibc
#endif
import AirgapContent
import AirgapOCI
import Foundation

/// The store as a source: names from index.json, documents and blobs from `blobs/`, every byte
/// re-hashed on its way out by the sink's verifier (a damaged store is caught before it spreads).
public struct StoreSource: ContentSource {
    public let store: LocalStore
    public init(store: LocalStore) { self.store = store }
    public var description: String { "the store \(store.root)" }

    public func resolve(_ reference: Reference) async throws -> (Descriptor, Data) {
        guard let entry = try store.entries().last(where: { $0.refName == reference.description }) else {
            throw StoreError.imageNotFound(reference.familiarDescription)
        }
        return (entry, try store.readBlob(entry.digest))
    }

    public func document(_ descriptor: Descriptor, in repository: Reference) async throws -> Data? {
        guard store.hasBlob(descriptor.digest) else { return nil }
        // readBlob hashed it against the digest; the size is what is left to check.
        let data = try store.readBlob(descriptor.digest, limit: Int(max(descriptor.size, 0)) + 1)
        guard Int64(data.count) == descriptor.size else {
            throw ContentError.sizeMismatch(digest: descriptor.digest, expected: descriptor.size, actual: Int64(data.count), source: "store blob \(store.blobPath(descriptor.digest))")
        }
        return data
    }

    public func copyBlob(_ descriptor: Descriptor, in repository: Reference, into writer: any BlobWriter,
                         progress: @escaping @Sendable (Int64) -> Void) async throws {
        try store.readBlob(descriptor, needed: repository.familiarDescription, from: writer.offset) { chunk in
            try writer.write(chunk)
            progress(Int64(chunk.count))
        }
    }

    public func fileSegments(_ descriptor: Descriptor) -> FileSegments? {
        store.hasBlob(descriptor.digest, size: descriptor.size) ? .whole(store.blobPath(descriptor.digest), size: descriptor.size) : nil
    }
}

/// The store as a sink: blobs several at once through the ingest path (resumable), manifests once
/// every blob is in, then every name in one atomic index.json update. An ingest lease keeps GC
/// from sweeping blobs that are in but not yet named.
public final class StoreSink: ContentSink, @unchecked Sendable {
    public let store: LocalStore
    public let concurrency: Int
    /// Blobs wait in a staging area and reach `blobs/` only at `commit`, with the names: a copy
    /// refused anywhere (a bundle found damaged at its end) leaves `blobs/` as it was.
    public let staged: Bool
    private var lease: FileLock?
    private var staging: StagingArea?
    private let lock = NSLock()

    public init(store: LocalStore, concurrency: Int = 4, staged: Bool = false) {
        self.store = store; self.concurrency = concurrency; self.staged = staged
    }
    public var description: String { "the store \(store.root)" }
    public var order: SinkOrder { .concurrent(concurrency) }

    public func begin(_ plan: CopyPlan) async throws {
        // Every size is known: a store that cannot hold what it lacks is said before a download.
        // Each blob takes whole blocks, and a block more for the mark that it was hashed; index.json
        // grows by an entry per image. (1,201 small blobs: 0.6 MB of content, 9.8 MB of disk.)
        let block: Int64 = 4096
        let missing = plan.digestOrder.filter { !store.hasBlob($0.digest, size: $0.size) }
            .reduce(Int64(plan.images.count) * 1024) { $0 + ($1.size + block - 1) / block * block + block }
        try FileIO.requireFreeSpace(missing, at: store.root, for: "the store's \(plan.images.count) image\(plan.images.count == 1 ? "" : "s")")
        let lease = try store.ingestLease()
        let staging = staged ? try store.stagingArea() : nil
        lock.withLock { self.lease = lease; self.staging = staging }
    }

    public func holds(_ descriptor: Descriptor, for name: Reference) async throws -> Bool {
        store.hasBlob(descriptor.digest, size: descriptor.size) && store.confirmBlob(descriptor.digest, size: descriptor.size)
    }

    public func blobWriter(_ descriptor: Descriptor, for name: Reference) async throws -> any BlobWriter {
        if let staging = lock.withLock({ staging }) {
            return StagedBlobWriter(try store.beginIngest(expected: descriptor.digest, size: descriptor.size, source: "bundle entry \(Naming.blobPath(descriptor.digest))"), in: staging)
        }
        return try store.beginIngest(expected: descriptor.digest, size: descriptor.size, resume: true,
                                     source: "blob \(descriptor.digest) of \(name.familiarName)")
    }

    /// Blobs staged so far (a staged sink), for the summary.
    public var stagedCount: Int { lock.withLock { staging?.count ?? 0 } }

    /// Content named by what it hashes to (an archive entry such as `<id>/layer.tar`), checked
    /// against `expected` when the source's name gives it; staged like any blob of a staged sink.
    public func unnamedBlobWriter(size: Int64, expected: Digest?, source: String) async throws -> (any BlobWriter)? {
        let session = try store.beginIngest(expected: expected, size: size, source: source)
        if let staging = lock.withLock({ staging }) { return StagedBlobWriter(session, in: staging) }
        return session
    }

    // What this staged copy brought, read before it is published (an archive's configs and
    // manifests are checked before any image is named). Only what it staged: content the store
    // held already is not the source's to name (a tiny archive of an index.json alone would
    // otherwise move a tag onto an older image in the store).

    public func stagedSize(of digest: Digest) -> Int64? { lock.withLock { staging }?.staged(digest)?.size }

    /// A small staged blob whole, hashed again against its digest on the way (it is about to be trusted).
    public func readStaged(_ digest: Digest, limit: Int = 64 << 20) throws -> Data {
        guard let path = lock.withLock({ staging })?.staged(digest)?.path else { throw StoreError.blobMissing(digest, needed: "this copy") }
        return try LocalStore.readVerified(path, digest, limit: limit, source: "staged blob \(path)")
    }

    /// Where a staged blob's file is, to be read again (a compressed layer's diff_id).
    public func stagedPath(_ digest: Digest) -> String? { lock.withLock { staging }?.staged(digest)?.path }

    /// Opens a staged blob for reading its first bytes; the caller closes the descriptor.
    public func openStaged(_ digest: Digest) throws -> Int32 {
        guard let path = lock.withLock({ staging })?.staged(digest)?.path else { throw StoreError.blobMissing(digest, needed: "this copy") }
        return try FileIO.open(path, flags: O_RDONLY)
    }

    /// A staged copy publishes only these (what the named images need).
    public func keepOnly(_ used: Set<Digest>) { lock.withLock { staging }?.keepOnly(used) }

    public func putDocument(_ descriptor: Descriptor, _ data: Data, for name: Reference) async throws {
        guard lock.withLock({ staging }) != nil else {
            try store.ingest(data, expected: descriptor.digest, source: "manifest \(descriptor.digest) of \(name.familiarName)")
            return
        }
        // Staged like every blob: nothing of this copy is in `blobs/` before its names.
        let writer = try await blobWriter(descriptor, for: name)
        do { try writer.write(data); try await writer.commit() } catch { await writer.abandon(keepForResume: false); throw error }
    }

    public func commit(_ plan: CopyPlan) async throws {
        defer { release() }
        let tags = plan.images.map { ($0.named ? $0.name : nil, $0.top) }
        guard let staging = lock.withLock({ staging }) else { return try store.setTags(tags) }
        // The new index.json is written first: a disk that cannot hold it fails the copy
        // before a staged blob is published, so nothing untagged is left in `blobs/`.
        let names = try store.stageTags(tags)
        do { try staging.publish() } catch { names.abandon(); throw error }
        try names.commit()
    }

    public func abort() async { release() }

    private func release() {
        lock.withLock {
            staging?.discard() // after publish: nothing left to drop
            staging = nil
            lease?.unlock()
            lease = nil
        }
    }
}

/// A blob into a staging area: verified and made durable like any ingest, visible only when the
/// area is published.
final class StagedBlobWriter: BlobWriter, @unchecked Sendable {
    let session: IngestSession
    let area: StagingArea
    init(_ session: IngestSession, in area: StagingArea) { self.session = session; self.area = area }
    var offset: Int64 { session.offset }
    func write(_ bytes: UnsafeRawBufferPointer) throws { try session.write(bytes) }
    func restart() throws { try session.restart() }
    func commit() async throws -> Digest { try session.stage(in: area) }
    func abandon(keepForResume: Bool) async { session.abandon() }
}

extension LocalStore {
    /// Streams a blob from `offset` on in 1 MiB chunks; fails when the file is shorter than the
    /// descriptor says. The consumer verifies (a sink's writer, or `verifyBlob`).
    public func readBlob(_ descriptor: Descriptor, needed: String, from offset: Int64 = 0,
                         _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard hasBlob(descriptor.digest) else { throw StoreError.blobMissing(descriptor.digest, needed: needed) }
        try FileSegments.whole(blobPath(descriptor.digest), size: descriptor.size).read(from: offset, body)
    }

    /// Re-hashes a stored blob against its descriptor (audits, repairs).
    public func verifyBlob(_ descriptor: Descriptor) throws {
        var verifier = BlobVerifier(descriptor, source: "store blob \(blobPath(descriptor.digest))")
        try readBlob(descriptor, needed: "this check") { try verifier.update($0) }
        try verifier.finish()
    }
}
