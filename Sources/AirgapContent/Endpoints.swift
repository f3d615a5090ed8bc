import AirgapOCI
import Foundation

/// Where content comes from: a registry, the store, a verified bundle, an archive.
public protocol ContentSource: Sendable {
    /// Names the source in messages ("127.0.0.1:5000", "the store /var/lib/airgap").
    var description: String { get }
    /// The top manifest or index a reference names, with its bytes (checked against the digest
    /// the reference pins, if any).
    func resolve(_ reference: Reference) async throws -> (Descriptor, Data)
    /// A document (manifest, index, config) whole, checked against its descriptor; nil when the
    /// source does not hold it.
    func document(_ descriptor: Descriptor, in repository: Reference) async throws -> Data?
    /// Writes the blob's bytes from `writer.offset` on into `writer` (which verifies them); does
    /// not commit. Network sources resume from the writer's offset after a cut.
    func copyBlob(_ descriptor: Descriptor, in repository: Reference, into writer: any BlobWriter,
                  progress: @escaping @Sendable (Int64) -> Void) async throws
    /// The blob as file segments when it lies on local disk, so a sink that must send it more than
    /// once (an upload retried) can read it again. Nil for network sources.
    func fileSegments(_ descriptor: Descriptor) -> FileSegments?
    /// Throws the source's own sentence when it cannot give the blob at all (a bundle made with
    /// `--since` does not carry what the inside holds), before a sink opens anything for it.
    func checkCarries(_ descriptor: Descriptor, for name: Reference) throws
    /// Where the blob lives as a registry repository, so a sink on the same registry can mount it
    /// instead of receiving its bytes (registry → registry copies). Nil for other sources.
    func mountOrigin(_ descriptor: Descriptor, in repository: Reference) -> Reference?
}

extension ContentSource {
    public func fileSegments(_ descriptor: Descriptor) -> FileSegments? { nil }
    public func checkCarries(_ descriptor: Descriptor, for name: Reference) throws {}
    public func mountOrigin(_ descriptor: Descriptor, in repository: Reference) -> Reference? { nil }
}

/// A blob on its way into a sink. Every implementation passes the bytes through a
/// `BlobVerifier`; `commit()` makes the blob visible only when they matched.
public protocol BlobWriter: AnyObject, Sendable {
    /// Bytes already accepted (non-zero when resuming an earlier partial copy).
    var offset: Int64 { get }
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Drops what was written and starts again from byte 0 (a server that ignored Range).
    func restart() throws
    /// Verifies what was written and makes the blob visible; returns its digest.
    @discardableResult
    func commit() async throws -> Digest
    /// Drops the blob; with `keepForResume`, a partial copy may stay for the next attempt.
    func abandon(keepForResume: Bool) async
}

extension BlobWriter {
    public func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }
}

/// How a sink takes blobs: several at once in any order (a store, a registry), or one at a time
/// in digest order (a tar: bundle or archive), documents included.
public enum SinkOrder: Sendable, Equatable {
    case concurrent(Int)
    case digestOrder
}

/// Where content goes: the store, a registry, a bundle, an archive.
public protocol ContentSink: Sendable {
    var description: String { get }
    var order: SinkOrder { get }
    /// Whether blobs live per repository (a registry: mounts between them); else one namespace.
    var repositoryScoped: Bool { get }
    /// Called once with the whole plan before any byte moves (a bundle writes its metadata first).
    func begin(_ plan: CopyPlan) async throws
    /// True when the destination already holds the blob (under `name`, for a registry).
    func holds(_ descriptor: Descriptor, for name: Reference) async throws -> Bool
    /// Links a blob the destination holds under `other`; true when done.
    func mount(_ descriptor: Descriptor, for name: Reference, from other: Reference) async throws -> Bool
    func blobWriter(_ descriptor: Descriptor, for name: Reference) async throws -> any BlobWriter
    /// Copies a blob that lies on local disk, re-reading it as often as the sink needs; false when
    /// the sink has no such path (the engine then streams it through `blobWriter`).
    func copyFromFile(_ descriptor: Descriptor, for name: Reference, segments: FileSegments,
                      progress: @escaping @Sendable (Int64) -> Void) async throws -> Bool
    /// A writer for content the source cannot name before reading it (an archive's `<id>/layer.tar`):
    /// the sink names it by what it hashes to, checked against `expected` when that is known.
    /// Nil: the sink takes only content named in advance.
    func unnamedBlobWriter(size: Int64, expected: Digest?, source: String) async throws -> (any BlobWriter)?
    /// A manifest or index whose bytes the plan holds (concurrent sinks; children come first).
    func putDocument(_ descriptor: Descriptor, _ data: Data, for name: Reference) async throws
    /// Makes the names visible: the last step, after every blob and document is in.
    func commit(_ plan: CopyPlan) async throws
    /// Drops what a failed copy left that is not yet visible.
    func abort() async
}

extension ContentSink {
    public var repositoryScoped: Bool { false }
    public func mount(_ descriptor: Descriptor, for name: Reference, from other: Reference) async throws -> Bool { false }
    public func copyFromFile(_ descriptor: Descriptor, for name: Reference, segments: FileSegments,
                             progress: @escaping @Sendable (Int64) -> Void) async throws -> Bool { false }
    public func putDocument(_ descriptor: Descriptor, _ data: Data, for name: Reference) async throws {}
    public func unnamedBlobWriter(size: Int64, expected: Digest?, source: String) async throws -> (any BlobWriter)? { nil }
}

/// A failure that may pass if tried again (a cut connection): the engine keeps partial bytes for resume.
public protocol TemporaryFailure: Error {
    var isTemporary: Bool { get }
}

/// Collects a small blob in memory (a prefetch for an ordered sink); verified like any other.
public final class MemoryBlobWriter: BlobWriter, @unchecked Sendable {
    private var verifier: BlobVerifier
    public private(set) var data = Data()
    public init(_ descriptor: Descriptor, source: String) { verifier = BlobVerifier(descriptor, source: source) }
    public var offset: Int64 { verifier.byteCount }
    public func write(_ bytes: UnsafeRawBufferPointer) throws { try verifier.update(bytes) { data.append(contentsOf: $0) } }
    public func restart() throws { verifier.reset(); data.removeAll() }
    public func commit() async throws -> Digest { try verifier.finish() }
    public func abandon(keepForResume: Bool) async { data.removeAll() }
}
