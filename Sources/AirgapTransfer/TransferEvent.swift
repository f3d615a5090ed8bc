import AirgapOCI

/// What a transfer reports as it goes; the CLI renders these (bars on a TTY, lines otherwise).
public enum TransferEvent: Sendable {
    case resolved(Reference, Descriptor)
    case blobStarted(Digest, size: Int64)
    case blobProgress(Digest, bytes: Int64)
    case blobFinished(Digest, size: Int64)
    /// Already present at the destination: nothing transferred.
    case blobSkipped(Digest, size: Int64)
    case blobMounted(Digest, size: Int64, from: String)
    case manifestWritten(Reference, Digest)
    case note(String)
}

public typealias TransferEvents = @Sendable (TransferEvent) -> Void

/// Runs `work` for each item with at most `limit` running at once; the first error cancels the rest.
func forEachConcurrently<T: Sendable>(_ items: [T], limit: Int, _ work: @escaping @Sendable (T) async throws -> Void) async throws {
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
