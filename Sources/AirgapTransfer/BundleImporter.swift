import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapStore
import AirgapTar
import Foundation

/// `airgap-import load`: a bundle read once, front to back, into the store through the engine's
/// streamed copy: the plan comes from the signed metadata before the first blob, every blob is
/// hashed as it passes into the store's staging area, and blobs and tags become visible together
/// only after the whole bundle checked out; a refused load leaves `blobs/` and `index.json` as
/// they were. A blob the store already holds is confirmed (re-hashed unless unchanged since it was
/// last hashed) and replaced from the bundle when it is damaged.
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
                     beforePublish: (BundleReadResult) throws -> Void = { _ in }) async throws -> Outcome {
        // Held from before the `--since` check to the names: what the check found cannot be
        // collected meanwhile by a prune or an `image rm`.
        let lease = try store.ingestLease()
        defer { lease.unlock() }
        let sink = StoreSink(store: store, staged: true)
        let copy = StreamedCopy(sink: sink)
        // `--since` requirements come from bundle.json, read before any blob: refuse before writing.
        var missing: [BundleMetadata.Blob] = []
        var result: BundleReadResult
        do {
            result = try await reader.read(into: copy, admit: { metadata, signature in
                try admit(metadata, signature)
                missing = metadata.requiredOnInside.filter { !(store.hasBlob($0.digest, size: $0.size) && store.confirmBlob($0.digest, size: $0.size)) }
                if !missing.isEmpty { throw RequirementsMissing() }
            })
        } catch is RequirementsMissing {
            await copy.abort()
            var failed = BundleReadResult(files: reader.files)
            failed.findings = missing.map {
                Finding(entry: "blobs/sha256/\($0.digest.encoded)", problem: "required on the inside (the bundle was made with --since) but not in the store; load the earlier bundle first")
            }
            return Outcome(result: failed, loaded: [], blobsAdded: 0, blobsAlreadyPresent: 0)
        } catch {
            await copy.abort()
            throw error
        }
        guard result.ok, let index = result.index else {
            await copy.abort()
            return Outcome(result: result, loaded: [], blobsAdded: 0, blobsAlreadyPresent: 0)
        }
        do {
            try beforePublish(result)
            // Nothing after this reads the documents (a 10,000-image bundle's manifests are 8 MB,
            // held while index.json is rewritten otherwise).
            result.documents = [:]
            // The names are the verified index.json's, as the bundle's own OCI readers see them.
            let named = CopyPlan(naming: index.manifests.map { (name: $0.refName.flatMap { try? Reference(parsing: $0) }, top: $0) })
            let added = sink.stagedCount
            try await copy.commit(named)
            return Outcome(result: result, loaded: named.images.filter(\.named).map(\.name), blobsAdded: added, blobsAlreadyPresent: copy.held)
        } catch {
            await copy.abort()
            throw error
        }
    }

    struct RequirementsMissing: Error {}
}
