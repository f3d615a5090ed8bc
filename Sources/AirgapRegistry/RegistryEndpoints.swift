import AirgapContent
import AirgapOCI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Registries as a source: each reference is read from its own registry and repository.
public struct RegistrySource: ContentSource {
    public let client: RegistryClient
    public init(client: RegistryClient) { self.client = client }
    public var description: String { "the registry" }

    public func resolve(_ reference: Reference) async throws -> (Descriptor, Data) {
        let fetched = try await client.fetchManifest(reference)
        return (fetched.descriptor, fetched.data)
    }

    public func document(_ descriptor: Descriptor, in repository: Reference) async throws -> Data? {
        guard descriptor.mediaType.isManifest || descriptor.mediaType.isSchema1 else {
            return try await client.fetchBlobData(repository, descriptor)
        }
        let fetched = try await client.fetchManifest(repository, selector: descriptor.digest.description)
        guard fetched.digest == descriptor.digest, Int64(fetched.data.count) == descriptor.size else {
            throw RegistryError(.digestMismatch, "\(repository.registry) served a manifest for \(descriptor.digest) that does not match the index (\(fetched.data.count) bytes, digest \(fetched.digest))")
        }
        return fetched.data
    }

    public func copyBlob(_ descriptor: Descriptor, in repository: Reference, into writer: any BlobWriter,
                         progress: @escaping @Sendable (Int64) -> Void) async throws {
        try await client.copyBlob(repository, descriptor, into: writer, progress: progress)
    }

    public func mountOrigin(_ descriptor: Descriptor, in repository: Reference) -> Reference? { repository }
}

/// A registry as a sink: blobs the repository lacks (HEAD first, then a mount from a repository
/// this copy already filled, else an upload that is hashed on the way and committed only when it
/// matched), then manifests by digest, children first, then the tags: a copy that fails anywhere
/// before the tags creates none.
public struct RegistrySink: ContentSink {
    public let client: RegistryClient
    public let concurrency: Int
    public init(client: RegistryClient, concurrency: Int = 4) { self.client = client; self.concurrency = concurrency }
    public var description: String { "the registry" }
    public var order: SinkOrder { .concurrent(concurrency) }
    public var repositoryScoped: Bool { true }

    public func begin(_ plan: CopyPlan) async throws {
        for image in plan.images where !image.named || (image.name.tag == nil && image.name.digest == nil) {
            throw ContentError(.unsupported, "\(image.name.familiarName) has neither tag nor digest to push under")
        }
    }

    public func holds(_ descriptor: Descriptor, for name: Reference) async throws -> Bool {
        try await client.blobSize(name, descriptor.digest, push: true) == descriptor.size
    }

    public func mount(_ descriptor: Descriptor, for name: Reference, from other: Reference) async throws -> Bool {
        guard other.registry == name.registry, other.repository != name.repository else { return false }
        return try await client.mountBlob(name, descriptor.digest, from: other.repository)
    }

    /// For bytes that do not lie on local disk (another registry, a config held in memory): they
    /// are spooled to a temporary file through a verifier, then uploaded from it like any file
    /// (re-hashed, retried by re-reading), and the file is removed.
    public func blobWriter(_ descriptor: Descriptor, for name: Reference) async throws -> any BlobWriter {
        try SpooledUpload(descriptor, name: name, client: client)
    }

    public func copyFromFile(_ descriptor: Descriptor, for name: Reference, segments: FileSegments,
                             progress: @escaping @Sendable (Int64) -> Void) async throws -> Bool {
        try await client.uploadBlob(name, descriptor, from: segments, progress: progress)
        return true
    }

    public func putDocument(_ descriptor: Descriptor, _ data: Data, for name: Reference) async throws {
        try await client.putManifest(name, selector: descriptor.digest.description, data: data, mediaType: descriptor.mediaType)
    }

    public func commit(_ plan: CopyPlan) async throws {
        for image in plan.images {
            guard let tag = image.name.tag else { continue }
            guard let data = try plan.documents.bytes(image.top.digest) else {
                throw ContentError(.missing, "the plan lacks the bytes of \(image.top.digest)")
            }
            try await client.putManifest(image.name, selector: tag, data: data, mediaType: image.top.mediaType)
        }
    }

    public func abort() async {}
}

/// A blob on its way into a registry from a source that cannot be read twice: verified into a
/// temporary file, uploaded from there on commit.
final class SpooledUpload: BlobWriter, @unchecked Sendable {
    let descriptor: Descriptor
    let name: Reference
    let client: RegistryClient
    let path: String
    private let fd: Int32
    private var verifier: BlobVerifier
    private var closed = false

    init(_ descriptor: Descriptor, name: Reference, client: RegistryClient) throws {
        self.descriptor = descriptor
        self.name = name
        self.client = client
        path = FileManager.default.temporaryDirectory.path + "/airgap-upload-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RegistryError(.unsupported, "cannot create a temporary file in \(FileManager.default.temporaryDirectory.path) to upload \(descriptor.digest)") }
        verifier = BlobVerifier(descriptor, source: "blob \(descriptor.digest) for \(name.familiarName)")
    }

    var offset: Int64 { verifier.byteCount }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        let fd = self.fd, path = self.path
        try verifier.update(bytes) { chunk in
            var done = 0
            while done < chunk.count {
                let n = Glibc.write(fd, chunk.baseAddress! + done, chunk.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw RegistryError(.unsupported, "cannot write the temporary file \(path): \(String(cString: strerror(errno)))") }
                done += n
            }
        }
    }

    func restart() throws {
        guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else { throw RegistryError(.unsupported, "cannot rewind the temporary file \(path)") }
        verifier.reset()
    }

    func commit() async throws -> Digest {
        let digest = try verifier.finish()
        defer { finish() }
        try await client.uploadBlob(name, descriptor, from: .whole(path, size: descriptor.size))
        return digest
    }

    func abandon(keepForResume: Bool) async { finish() }

    private func finish() {
        guard !closed else { return }
        closed = true
        close(fd)
        unlink(path)
    }

    deinit { finish() }
}

extension RegistrySource: AttachmentListing {
    /// A repository whose tag list is refused has no attachments we can know of: the image is
    /// still exported (the caller says so), as skopeo and crane export images without listing tags.
    public func tags(in repository: Reference) async throws -> [String] {
        // Bounded: a hostile registry cannot make every export hold millions of tags.
        do { return try await client.listTags(repository, limit: AttachmentFinder.tagLimit) } catch let error as RegistryError where [.notFound, .denied, .unauthorized].contains(error.kind) {
            throw AttachmentListingRefused(message: error.message)
        }
    }
    public func referrers(of subject: Digest, in repository: Reference) async throws -> Data? {
        try await client.referrers(repository, of: subject)
    }
}
