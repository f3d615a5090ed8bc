import AirgapBundle
import AirgapOCI
import AirgapStore
import AirgapTar
import Foundation

/// `airgap-import load`: verification while streaming into a staging area of the store. Blobs and
/// tags become visible together, only after the whole bundle checked out; a refused load leaves
/// `blobs/` and `index.json` as they were. A blob the store already holds is confirmed (re-hashed
/// unless unchanged since it was last hashed) and replaced from the bundle when it is damaged.
public struct BundleImporter {
    public let store: LocalStore
    public init(store: LocalStore) { self.store = store }

    public struct Outcome: Sendable {
        public var result: BundleReadResult
        public var loaded: [Reference]
        public var blobsAdded: Int
        public var blobsAlreadyPresent: Int
    }

    /// `admit` sees bundle.json and the signature before any blob is read (the rollback check);
    /// what it throws ends the load with nothing written.
    /// `beforePublish` sees the whole verified read before anything becomes visible (the image
    /// signature check); what it throws ends the load with nothing published.
    public func load(_ reader: BundleReader, admit: @escaping (BundleMetadata, SignatureStatus) throws -> Void = { _, _ in },
                     beforePublish: (BundleReadResult) throws -> Void = { _ in },
                     progress: @escaping (Int64) -> Void = { _ in }) throws -> Outcome {
        let lease = try store.ingestLease()
        defer { lease.unlock() }
        let staging = try store.stagingArea()
        defer { staging.discard() }
        var present = 0
        // `--since` requirements come from bundle.json, read before any blob: refuse before writing.
        var missing: [BundleMetadata.Blob] = []
        let result: BundleReadResult
        do {
            result = try reader.read(verifiedMetadata: { metadata, signature in
                try admit(metadata, signature)
                missing = metadata.requiredOnInside.filter { !(store.hasBlob($0.digest, size: $0.size) && store.confirmBlob($0.digest, size: $0.size)) }
                if !missing.isEmpty { throw RequirementsMissing() }
            }, blobHandler: { digest, size, data, name in
                if store.hasBlob(digest, size: size) && store.confirmBlob(digest, size: size) {
                    present += 1
                    var hasher = DigestHasher()
                    try data.readData { hasher.update($0); progress(Int64($0.count)) }
                    return hasher.finalize()
                }
                let session = try store.beginIngest(expected: digest, size: size, source: "bundle entry \(name)")
                do {
                    try data.readData { try session.write($0); progress(Int64($0.count)) }
                    return try session.stage(in: staging)
                } catch {
                    session.abandon()
                    throw error
                }
            })
        } catch is RequirementsMissing {
            var failed = BundleReadResult(files: reader.files)
            failed.findings = missing.map {
                Finding(entry: "blobs/sha256/\($0.digest.encoded)", problem: "required on the inside (the bundle was made with --since) but not in the store; load the earlier bundle first")
            }
            return Outcome(result: failed, loaded: [], blobsAdded: 0, blobsAlreadyPresent: 0)
        }
        guard result.ok, let index = result.index else {
            return Outcome(result: result, loaded: [], blobsAdded: 0, blobsAlreadyPresent: 0)
        }
        try beforePublish(result)
        let added = staging.count
        try staging.publish()
        var tags: [(Reference?, Descriptor)] = []
        for entry in index.manifests {
            let reference = entry.refName.flatMap { try? Reference(parsing: $0) }
            tags.append((reference, entry))
        }
        try store.setTags(tags)
        return Outcome(result: result, loaded: tags.compactMap(\.0), blobsAdded: added, blobsAlreadyPresent: present)
    }

    struct RequirementsMissing: Error {}
}
