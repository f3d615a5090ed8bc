import AirgapBundle
import AirgapOCI
import AirgapStore
import AirgapTar
import Foundation

/// `airgap-import load`: verification while streaming into the store's ingest path. Blobs become
/// visible one by one only after their digest checked (and stay as cache for a rerun); no tag is
/// written unless the whole bundle checked out.
public struct BundleImporter {
    public let store: LocalStore
    public init(store: LocalStore) { self.store = store }

    public struct Outcome: Sendable {
        public var result: BundleReadResult
        public var loaded: [Reference]
        public var blobsAdded: Int
        public var blobsAlreadyPresent: Int
    }

    public func load(_ reader: BundleReader, progress: @escaping (Int64) -> Void = { _ in }) throws -> Outcome {
        let lease = try store.ingestLease()
        defer { lease.unlock() }
        var added = 0, present = 0
        let result = try reader.read { digest, size, tar, name in
            if store.hasBlob(digest, size: size) {
                // Already verified content from an earlier (possibly interrupted) run: read past it.
                present += 1
                var hasher = DigestHasher()
                try tar.readData { hasher.update($0); progress(Int64($0.count)) }
                return hasher.finalize()
            }
            let session = try store.beginIngest(expected: digest, size: size, source: "bundle entry \(name)")
            do {
                try tar.readData { try session.write($0); progress(Int64($0.count)) }
                let committed = try session.commit()
                if session.addedNewBlob { added += 1 } else { present += 1 }
                return committed
            } catch {
                session.abandon()
                throw error
            }
        }
        guard result.ok, let metadata = result.metadata, let index = result.index else {
            return Outcome(result: result, loaded: [], blobsAdded: added, blobsAlreadyPresent: present)
        }
        // An incremental bundle relies on blobs the inside already holds: check them before tagging.
        let missing = metadata.requiredOnInside.filter { !store.hasBlob($0.digest, size: $0.size) }
        if !missing.isEmpty {
            var failed = result
            for blob in missing {
                failed.findings.append(Finding(entry: "blobs/sha256/\(blob.digest.encoded)",
                                               problem: "required on the inside (the bundle was made with --since) but not in the store; load the earlier bundle first"))
            }
            return Outcome(result: failed, loaded: [], blobsAdded: added, blobsAlreadyPresent: present)
        }
        var tags: [(Reference?, Descriptor)] = []
        for entry in index.manifests {
            let reference = entry.refName.flatMap { try? Reference(parsing: $0) }
            tags.append((reference, entry))
        }
        try store.setTags(tags)
        return Outcome(result: result, loaded: tags.compactMap(\.0), blobsAdded: added, blobsAlreadyPresent: present)
    }
}
