import AirgapOCI
import Foundation

/// The one engine between any source and any sink. It runs a `CopyPlan`: the sink sees the plan
/// first, then every blob moves once from the source straight into the sink's verifying writer
/// (several at a time into a store or registry; in digest order into a tar, small blobs fetched
/// ahead), then the documents, then the names. Any failure aborts the sink, which drops what is
/// not yet visible.
public struct CopyEngine: Sendable {
    public let source: any ContentSource
    public let sink: any ContentSink
    public let events: TransferEvents
    /// Blobs below this cost a round trip each rather than bandwidth: many go at once, and an
    /// ordered sink fetches them ahead.
    public var smallBlob: Int64 = 1 << 20
    /// Small blobs an ordered sink fetches ahead of the one it writes.
    public var prefetch = 16

    public init(source: any ContentSource, sink: any ContentSink, events: @escaping TransferEvents = { _ in }) {
        self.source = source; self.sink = sink; self.events = events
    }

    public func run(_ plan: CopyPlan) async throws {
        events(.totals(bytes: plan.blobs.reduce(0) { $0 + $1.descriptor.size }, blobs: plan.blobs.count))
        do {
            try await sink.begin(plan)
            switch sink.order {
            case .concurrent(let limit):
                try await copyConcurrently(plan, limit: limit)
                try await putDocuments(plan)
            case .digestOrder:
                try await copyInDigestOrder(plan)
            }
            try await sink.commit(plan)
        } catch {
            await sink.abort()
            throw error
        }
    }

    /// Whether a blob gets a line and a bar of its own: layers and artifacts' blobs do; manifests
    /// and configs, small and many (three per image), are only counted, as Docker shows them.
    static func listed(_ d: Descriptor) -> Bool { !(d.mediaType.isManifest || d.mediaType.isImageConfig) }

    // MARK: stores and registries

    func copyConcurrently(_ plan: CopyPlan, limit: Int) async throws {
        let small = plan.blobs.filter { $0.descriptor.size < smallBlob }, large = plan.blobs.filter { $0.descriptor.size >= smallBlob }
        let work: @Sendable (CopyPlan.Blob) async throws -> Void = { blob in try await self.copyToEachName(blob, plan) }
        async let smallDone: Void = forEachConcurrently(small, limit: limit * 4, work)
        try await forEachConcurrently(large, limit: limit, work)
        try await smallDone
    }

    /// Each destination name that lacks the blob gets it: held → skipped, held under another name
    /// this run wrote → mounted, else copied.
    func copyToEachName(_ blob: CopyPlan.Blob, _ plan: CopyPlan) async throws {
        let d = blob.descriptor
        var holder: Reference?
        let source = plan.source(of: blob)
        for name in sink.repositoryScoped ? plan.names(of: blob) : [plan.firstName(of: blob)] {
            if try await sink.holds(d, for: name) {
                events(.blobSkipped(d.digest, size: d.size, listed: Self.listed(d)))
                holder = holder ?? name
                continue
            }
            if let from = holder ?? self.source.mountOrigin(d, in: source), try await sink.mount(d, for: name, from: from) {
                events(.blobMounted(d.digest, size: d.size, from: from.repository, listed: Self.listed(d)))
                holder = holder ?? name
                continue
            }
            try await transfer(d, from: source, to: name, plan)
            holder = holder ?? name
        }
    }

    func transfer(_ d: Descriptor, from repository: Reference, to name: Reference, _ plan: CopyPlan) async throws {
        events(.blobStarted(d.digest, size: d.size, listed: Self.listed(d)))
        let events = self.events
        let progress: @Sendable (Int64) -> Void = { events(.blobProgress(d.digest, bytes: $0)) }
        let inMemory = try plan.documents.bytes(d.digest)
        if inMemory == nil { try source.checkCarries(d, for: name) }
        if inMemory == nil, let segments = source.fileSegments(d),
           try await sink.copyFromFile(d, for: name, segments: segments, progress: progress) {
            events(.blobFinished(d.digest, size: d.size))
            return
        }
        let writer = try await sink.blobWriter(d, for: name)
        do {
            if let inMemory {
                try writer.write(inMemory)
                progress(Int64(inMemory.count))
            } else {
                try await source.copyBlob(d, in: repository, into: writer, progress: progress)
            }
            try await writer.commit()
        } catch {
            await writer.abandon(keepForResume: (error as? any TemporaryFailure)?.isTemporary ?? false)
            throw error
        }
        events(.blobFinished(d.digest, size: d.size))
    }

    /// Manifests by digest, children before their index, once per repository that needs them.
    func putDocuments(_ plan: CopyPlan) async throws {
        var written = Set<String>()
        for image in plan.images {
            for manifest in image.manifests {
                let key = (sink.repositoryScoped ? image.name.name + "@" : "") + manifest.digest.description
                guard written.insert(key).inserted else { continue }
                guard let data = try plan.documents.bytes(manifest.digest) else {
                    throw ContentError(.missing, "the plan lacks the bytes of the manifest \(manifest.digest)")
                }
                try await sink.putDocument(manifest, data, for: image.name)
            }
        }
    }

    // MARK: tars

    /// One entry at a time in digest order. Large blobs stream straight from the source into their
    /// entry; small ones are fetched ahead into memory (bounded: `prefetch` × `smallBlob`) so a
    /// round trip each does not stall the stream.
    func copyInDigestOrder(_ plan: CopyPlan) async throws {
        let order = plan.digestOrder
        // Positions in plan.blobs, not copies of them (at 10,000 images a copy each was 5 MB).
        var position: [Digest: Int] = [:]
        position.reserveCapacity(plan.blobs.count)
        for (i, blob) in plan.blobs.enumerated() where position[blob.descriptor.digest] == nil { position[blob.descriptor.digest] = i }
        func blob(_ digest: Digest) -> CopyPlan.Blob? { position[digest].map { plan.blobs[$0] } }
        let fallbackName = plan.images.first?.name ?? Naming.unnamed
        var ahead: [Digest: Task<Data, any Error>] = [:]
        var nextAhead = 0
        let source = self.source
        do {
            try await writeInOrder()
        } catch {
            // Nothing may still read the source or write anywhere once the sink is aborted.
            for task in ahead.values { task.cancel() }
            for task in ahead.values { _ = try? await task.value }
            throw error
        }

        func writeInOrder() async throws {

        for d in order {
            // Keep up to `prefetch` small blobs in flight beyond this one.
            while ahead.count < prefetch && nextAhead < order.count {
                let candidate = order[nextAhead]
                nextAhead += 1
                guard candidate.size < smallBlob, !plan.documents.contains(candidate.digest), let blob = blob(candidate.digest) else { continue }
                ahead[candidate.digest] = Task {
                    let repository = plan.source(of: blob)
                    let memory = MemoryBlobWriter(candidate, source: "blob \(candidate.digest) of \(repository.familiarDescription)")
                    try await source.copyBlob(candidate, in: repository, into: memory, progress: { _ in })
                    try await memory.commit()
                    return memory.data
                }
            }
            let carried = blob(d.digest)
            let name = carried.map(plan.firstName) ?? fallbackName
            if let task = ahead.removeValue(forKey: d.digest) {
                events(.blobStarted(d.digest, size: d.size, listed: Self.listed(d)))
                let data = try await task.value
                let writer = try await sink.blobWriter(d, for: name)
                do { try writer.write(data); try await writer.commit() } catch { await writer.abandon(keepForResume: false); throw error }
                events(.blobProgress(d.digest, bytes: d.size))
                events(.blobFinished(d.digest, size: d.size))
            } else {
                try await transfer(d, from: carried.map(plan.source) ?? name, to: name, plan)
            }
        }
        }
    }
}

/// The engine for a source that can be read only once, front to back (a bundle on a USB stick):
/// the source drives, because only it knows where in its stream it is. It calls `begin` with the
/// plan once it knows it (a bundle: from its signed metadata, before the first blob), asks
/// `writer(for:)` for each blob as the stream reaches it, and ends with `commit` or `abort`. The
/// sink sees the same steps as in any other copy, so nothing it writes is visible before `commit`
/// (the store stages blobs, then publishes them with the names).
public final class StreamedCopy: @unchecked Sendable { // driven by one source, step by step
    public let sink: any ContentSink
    public let events: TransferEvents
    private var plan: CopyPlan?
    /// Each planned blob's size and type, and the position of a blob that names it (a plan of
    /// 10,000 images lists 30,000 blobs: no copy of each descriptor and name).
    private var planned: [Digest: (size: Int64, mediaType: MediaType, blob: Int)] = [:]
    /// Blobs the sink held already (the source only hashed those).
    public private(set) var held = 0

    public init(sink: any ContentSink, events: @escaping TransferEvents = { _ in }) {
        self.sink = sink; self.events = events
    }

    public func begin(_ plan: CopyPlan) async throws {
        self.plan = plan
        // The first listing wins, as it does for the bundle reader.
        planned.reserveCapacity(plan.blobs.count)
        for (i, blob) in plan.blobs.enumerated() where planned[blob.descriptor.digest] == nil {
            planned[blob.descriptor.digest] = (blob.descriptor.size, blob.descriptor.mediaType, i)
        }
        events(.totals(bytes: plan.blobs.reduce(0) { $0 + $1.descriptor.size }, blobs: plan.blobs.count))
        try await sink.begin(plan)
    }

    /// Where the blob the stream has reached goes; nil when the sink holds it already. The source
    /// has checked that the plan lists it with this size.
    public func writer(for digest: Digest, size: Int64) async throws -> (any BlobWriter)? {
        guard let plan else { throw ContentError(.missing, "the copy was not begun") }
        guard let entry = planned[digest], entry.size == size else {
            throw ContentError(.verification, "the source reached \(digest) (\(size) bytes), which its plan does not list so")
        }
        let descriptor = Descriptor(mediaType: entry.mediaType, digest: digest, size: size)
        let name = plan.firstName(of: plan.blobs[entry.blob])
        if try await sink.holds(descriptor, for: name) {
            held += 1
            events(.blobSkipped(descriptor.digest, size: descriptor.size, listed: CopyEngine.listed(descriptor)))
            return nil
        }
        events(.blobStarted(descriptor.digest, size: descriptor.size, listed: CopyEngine.listed(descriptor)))
        return try await sink.blobWriter(descriptor, for: name)
    }

    /// Where content goes that the source cannot name before reading it (an archive's entries:
    /// the plan is known only at its end); the sink names it by what it hashes to.
    public func writer(size: Int64, expected: Digest?, source: String) async throws -> any BlobWriter {
        guard plan != nil else { throw ContentError(.missing, "the copy was not begun") }
        guard let writer = try await sink.unnamedBlobWriter(size: size, expected: expected, source: source) else {
            throw ContentError(.unsupported, "\(sink.description) takes only content whose digest is known before it is read")
        }
        return writer
    }

    /// The source fed and committed the writer `writer(for:size:)` gave.
    public func finished(_ digest: Digest, size: Int64) {
        events(.blobFinished(digest, size: size))
    }

    /// Makes everything visible, under the names of `final` (what the source's end confirmed;
    /// nil: the plan given to `begin`).
    public func commit(_ final: CopyPlan? = nil) async throws {
        guard let plan = final ?? plan else { throw ContentError(.missing, "the copy was not begun") }
        // Every blob is in: what was planned for them is let go before the sink names the images.
        planned = [:]
        if final != nil { self.plan = nil }
        try await sink.commit(plan)
    }

    public func abort() async { await sink.abort() }
}
