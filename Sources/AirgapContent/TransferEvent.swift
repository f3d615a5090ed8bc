import AirgapOCI

/// What a transfer reports as it goes; the CLI renders these (bars on a TTY, lines otherwise).
public enum TransferEvent: Sendable {
    case resolved(Reference, Descriptor)
    /// Every reference resolved (manifests fetched and verified): the plan is known.
    case planned(images: Int, seconds: Double)
    /// What a copy will move at most: every blob of the plan (those found at the destination count as done).
    case totals(bytes: Int64, blobs: Int)
    /// `listed` false: a manifest or config, counted in the totals but not listed (Docker lists layers only).
    case blobStarted(Digest, size: Int64, listed: Bool = true)
    case blobProgress(Digest, bytes: Int64)
    case blobFinished(Digest, size: Int64)
    /// Already present at the destination: nothing transferred.
    /// `listed` as for `blobStarted`: a manifest or config the destination holds is only counted.
    case blobSkipped(Digest, size: Int64, listed: Bool)
    case blobMounted(Digest, size: Int64, from: String, listed: Bool)
    case manifestWritten(Reference, Digest)
    case note(String)
    /// A pass that reads a whole file or store to check it (verify, load, audit): its name and size.
    case passStarted(String, bytes: Int64)
    case passProgress(bytes: Int64)
    case passFinished
}

public typealias TransferEvents = @Sendable (TransferEvent) -> Void

/// Runs `work` for each item with at most `limit` running at once; the first error cancels the rest.
public func forEachConcurrently<T: Sendable>(_ items: [T], limit: Int, _ work: @escaping @Sendable (T) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var iterator = items.makeIterator()
        for _ in 0..<max(1, limit) {
            guard let item = iterator.next() else { break }
            group.addTask { try await work(item) }
        }
        while try await group.next() != nil {
            if let item = iterator.next() { group.addTask { try await work(item) } }
        }
    }
}

/// Like `forEachConcurrently`, returning the results in the order of `items`.
public func mapConcurrently<T: Sendable, R: Sendable>(_ items: [T], limit: Int, _ work: @escaping @Sendable (T) async throws -> R) async throws -> [R] {
    var results: [R] = []
    results.reserveCapacity(items.count)
    try await forEachConcurrently(items, limit: limit, work) { results.append($0) }
    return results
}

/// Runs `work` on up to `limit` items at once and hands each result to `deliver` in the order of
/// `items`, as soon as it and every result before it are in: only the results that arrived
/// early wait, so 10,000 planned images are held once, where the caller keeps them.
public func forEachConcurrently<T: Sendable, R: Sendable>(_ items: [T], limit: Int, _ work: @escaping @Sendable (T) async throws -> R,
                                                           inOrder deliver: (R) throws -> Void) async throws {
    try await withThrowingTaskGroup(of: (Int, R).self) { group in
        var early: [Int: R] = [:]
        var next = 0, delivered = 0
        func start() {
            let i = next, item = items[i]
            group.addTask { (i, try await work(item)) }
            next += 1
        }
        while next < min(items.count, max(1, limit)) { start() }
        while let (i, result) = try await group.next() {
            early[i] = result
            while let ready = early.removeValue(forKey: delivered) {
                try deliver(ready)
                delivered += 1
            }
            if next < items.count { start() }
        }
    }
}
