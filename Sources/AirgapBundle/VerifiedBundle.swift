import AirgapContent
import AirgapOCI
import AirgapStore
import AirgapTar
import Foundation

/// A bundle that passed verification, as a source. There is no other way to get one: the only
/// initializer takes a read result and fails unless every check held. Documents come from what
/// the verifying pass kept; blobs are read again from their byte ranges in the bundle files, and
/// the sink's verifier hashes them again on the way out (the media may change after the check).
public struct VerifiedBundle: ContentSource {
    public let metadata: BundleMetadata
    public let index: ImageIndex
    let documents: [Digest: Data]
    let offsets: [Digest: Int64]
    let paths: [String]
    let sizes: [Int64]
    let leftOut: Set<Digest>
    /// Signed by a trusted key (not merely accepted unsigned).
    let signed: Bool

    public init?(_ result: BundleReadResult) {
        guard result.ok, let metadata = result.metadata, let index = result.index else { return nil }
        self.metadata = metadata
        self.index = index
        documents = result.documents
        offsets = result.blobOffsets
        paths = result.files.paths
        sizes = result.files.paths.map { FileIO.fileSize($0) ?? 0 }
        leftOut = Set(metadata.requiredOnInside.map(\.digest))
        if case .valid = result.signature { signed = true } else { signed = false }
    }

    public var description: String { "the bundle \((paths.first as NSString?)?.lastPathComponent ?? "")" }

    /// Every named image of the bundle, as requests that keep each index entry as it is.
    public func requests(renaming rename: (Reference) -> Reference = { $0 }) -> [CopyRequest] {
        index.manifests.compactMap { entry in
            guard let name = entry.refName.flatMap({ try? Reference(parsing: $0) }) else { return nil }
            return CopyRequest(reference: name, allPlatforms: true, name: rename(name), pinned: entry)
        }
    }

    /// Every named image planned from the verified documents (one graph walk, no blob read), each
    /// attachment marked as one: a Docker view made from the plan leaves them out, as the
    /// bundle's own does.
    public func plan(events: @escaping TransferEvents = { _ in }) async throws -> CopyPlan {
        var links: [String: AttachmentLink] = [:]
        for image in metadata.images {
            guard let subjectName = try? Reference(parsing: image.reference) else { continue }
            for attached in image.attachments ?? [] {
                links[attached.reference] = AttachmentLink(kind: attached.kind, subject: attached.subject, subjectName: subjectName)
            }
        }
        for image in metadata.images where links[image.reference] == nil {
            // Attached to an image listed after it: only that it is an attachment matters here.
            if let subject = image.attachedTo.flatMap({ try? Reference(parsing: $0) }) {
                links[image.reference] = AttachmentLink(kind: .referrers, subject: image.digest, subjectName: subject)
            }
        }
        let requests = self.requests().map { request in
            var request = request
            request.attachment = links[request.reference.description]
            return request
        }
        return try await CopyPlanner(source: self, events: events).plan(requests)
    }

    public func resolve(_ reference: Reference) async throws -> (Descriptor, Data) {
        guard let entry = index.manifests.first(where: { $0.refName == reference.description }), let data = documents[entry.digest] else {
            throw ContentError(.missing, "\(description) holds no image named \(reference.familiarDescription)")
        }
        return (entry, data)
    }

    public func document(_ descriptor: Descriptor, in repository: Reference) async throws -> Data? {
        documents[descriptor.digest]
    }

    public func copyBlob(_ descriptor: Descriptor, in repository: Reference, into writer: any BlobWriter,
                         progress: @escaping @Sendable (Int64) -> Void) async throws {
        guard let segments = fileSegments(descriptor) else { throw notCarried(descriptor, for: repository) }
        try segments.read(from: writer.offset) { chunk in
            try writer.write(chunk)
            progress(Int64(chunk.count))
        }
    }

    public func checkCarries(_ descriptor: Descriptor, for name: Reference) throws {
        if offsets[descriptor.digest] == nil { throw notCarried(descriptor, for: name) }
    }

    /// A left-out blob (`--since`) is where the receipt's registry prefix keeps the same image:
    /// a push to another prefix of that registry mounts it from there instead of refusing.
    public func mountOrigin(_ descriptor: Descriptor, in repository: Reference) -> Reference? {
        guard leftOut.contains(descriptor.digest), let (registry, prefix) = receiptPrefix else { return nil }
        return Naming.rewrite(repository, registry: registry, prefix: prefix)
    }

    /// `HOST[:PORT][/PREFIX]` from the signed metadata, split; only a registry and repository
    /// path a reference may have (it goes into the mount request's query). An unsigned bundle
    /// does not choose where the user's credentials mount blobs from.
    var receiptPrefix: (registry: String, prefix: String)? {
        guard signed, let text = metadata.sinceRegistry, !text.isEmpty else { return nil }
        let parts = text.split(separator: "/", maxSplits: 1)
        let (registry, prefix) = (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        guard let probe = try? Reference(parsing: "\(registry)/\(prefix.isEmpty ? "" : prefix + "/")x"), probe.registry == registry else { return nil }
        return (registry, prefix)
    }

    /// A blob the bundle left out (`--since`): the destination must hold it already.
    func notCarried(_ descriptor: Descriptor, for name: Reference) -> ContentError {
        guard leftOut.contains(descriptor.digest) else {
            return ContentError(.verification, "the bundle does not carry \(descriptor.digest), which \(name.familiarDescription) needs; the bundle is incomplete: export it again")
        }
        let tried = receiptPrefix.map { registry, _ in
            registry == name.registry ? ", nor could it be mounted from \(metadata.sinceRegistry ?? ""), where the receipt said the inside keeps it" : ""
        } ?? ""
        return ContentError(.missing, "\(name.familiarDescription) needs \(descriptor.digest), which the bundle left out (--since) and the destination does not hold\(tried); push the earlier bundle first")
    }

    /// Where a blob lies in the bundle files: an offset in the concatenated stream, mapped onto volumes.
    public func fileSegments(_ descriptor: Descriptor) -> FileSegments? {
        guard let offset = offsets[descriptor.digest] else { return nil }
        return FileSegments.spanning(offset: offset, length: descriptor.size, paths: paths, sizes: sizes)
    }
}
