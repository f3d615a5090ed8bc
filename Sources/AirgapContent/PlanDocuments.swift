import AirgapOCI
import Foundation

/// Where a plan puts document bytes it does not hold in memory: a temporary file only this
/// process can reach (the store module's `SpillFile`). Appends come one at a time; reads may
/// overlap them.
public protocol DocumentSpill: AnyObject, Sendable {
    /// Appends the bytes and says where they start.
    func append(_ data: Data) throws -> Int64
    /// The bytes at `offset`, exactly `size` of them (the caller checks their digest).
    func read(offset: Int64, size: Int) throws -> Data
    /// What an error names.
    var directory: String { get }
}

/// The bytes of a plan's manifests and indexes, and of the configs read while planning, by
/// digest. Held in memory up to `memoryBudget`; past it, when the planner was given a spill, the
/// rest go there and only their place is kept (a 10,000-image plan has some 14 MB of them). Bytes
/// read back are hashed again and must match their digest: the file sat on a disk in between.
public struct PlanDocuments: Sendable {
    private var held: [Digest: Data] = [:]
    private var spilled: [Digest: Place] = [:]
    private var heldBytes = 0
    private struct Place: Sendable { var offset: Int64; var size: Int }
    /// Where bytes past the budget go; nil: everything is held.
    public var spill: (any DocumentSpill)?
    public var memoryBudget = 2 << 20

    public init(spill: (any DocumentSpill)? = nil) { self.spill = spill }

    public var isEmpty: Bool { held.isEmpty && spilled.isEmpty }
    public var count: Int { held.count + spilled.count }
    public func contains(_ digest: Digest) -> Bool { held[digest] != nil || spilled[digest] != nil }

    /// The bytes of `digest`, nil when the plan has none.
    public func bytes(_ digest: Digest) throws -> Data? {
        if let data = held[digest] { return data }
        guard let place = spilled[digest], let spill else { return nil }
        let data = try spill.read(offset: place.offset, size: place.size)
        var hasher = DigestHasher(digest.algorithm)
        hasher.update(data)
        guard data.count == place.size, hasher.finalize() == digest else {
            throw ContentError(.verification, "a temporary file in \(spill.directory) changed between being written and being read back (the document \(digest)); nothing was written from it; run the command again")
        }
        return data
    }

    /// Keeps the bytes of `digest` unless the plan has them already (the first kept stays).
    public mutating func keep(_ data: Data, for digest: Digest) throws {
        guard !contains(digest) else { return }
        if let spill, heldBytes + data.count > memoryBudget {
            spilled[digest] = Place(offset: try spill.append(data), size: data.count)
        } else {
            held[digest] = data
            heldBytes += data.count
        }
    }

    public mutating func keep(_ documents: [Digest: Data]) throws {
        for (digest, data) in documents { try keep(data, for: digest) }
    }

    /// Adds what another plan holds (read back from its spill when it used one).
    public mutating func merge(_ other: PlanDocuments) throws {
        for (digest, data) in other.held { try keep(data, for: digest) }
        if let spill, let theirs = other.spill, spill === theirs {
            // The same file: the places hold.
            for (digest, place) in other.spilled where !contains(digest) { spilled[digest] = place }
            return
        }
        for digest in other.spilled.keys where !contains(digest) {
            if let data = try other.bytes(digest) { try keep(data, for: digest) }
        }
    }
}
