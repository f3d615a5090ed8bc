import AirgapContent
import AirgapOCI
import Foundation

/// An in-memory registry: documents and blobs by digest, tags by reference. It counts what was
/// asked of it and can serve damaged bytes, in chunks as a network would.
final class FakeSource: ContentSource, @unchecked Sendable {
    private let lock = NSLock()
    var documents: [Digest: Data] = [:]
    var blobs: [Digest: Data] = [:]
    var tags: [String: Descriptor] = [:]
    /// Blobs whose bytes are served with one byte flipped.
    var damaged: Set<Digest> = []
    /// The referrers API's answers by subject; nil: the source has no referrers API.
    var referrersAPI: [Digest: Data]?
    private(set) var blobReads: [Digest] = []
    private(set) var documentReads: [Digest] = []
    var description: String { "the fake registry" }

    func resolve(_ reference: Reference) async throws -> (Descriptor, Data) {
        guard let top = lock.withLock({ tags[reference.description] }) else { throw ContentError(.missing, "no \(reference)") }
        return (top, documents[top.digest]!)
    }

    func document(_ descriptor: Descriptor, in repository: Reference) async throws -> Data? {
        lock.withLock { documentReads.append(descriptor.digest) }
        return documents[descriptor.digest] ?? blobs[descriptor.digest]
    }

    func copyBlob(_ descriptor: Descriptor, in repository: Reference, into writer: any BlobWriter,
                  progress: @escaping @Sendable (Int64) -> Void) async throws {
        lock.withLock { blobReads.append(descriptor.digest) }
        guard var data = blobs[descriptor.digest] else { throw ContentError(.missing, "no blob \(descriptor.digest)") }
        if damaged.contains(descriptor.digest) { data[data.count / 2] ^= 0x01 }
        var offset = Int(writer.offset)
        while offset < data.count {
            let end = min(offset + 7, data.count)
            try writer.write(data[offset..<end])
            offset = end
        }
    }

    // MARK: building content

    @discardableResult
    func blob(_ bytes: Data, _ mediaType: MediaType = .ociLayer) -> Descriptor {
        let d = Descriptor(mediaType: mediaType, digest: Digest.sha256(of: bytes), size: Int64(bytes.count))
        blobs[d.digest] = bytes
        return d
    }

    func document(_ bytes: Data, _ mediaType: MediaType) -> Descriptor {
        let d = Descriptor(mediaType: mediaType, digest: Digest.sha256(of: bytes), size: Int64(bytes.count))
        documents[d.digest] = bytes
        return d
    }

    /// An image of `layers` layers (distinct unless `shared` is given first) for a platform.
    func image(_ platform: Platform, layers: [String], shared: Descriptor? = nil) throws -> Descriptor {
        let config = blob(Data(#"{"architecture":"\#(platform.architecture)","author":"\#(layers.joined(separator: ","))","os":"\#(platform.os)","rootfs":{"type":"layers","diff_ids":[]}}"#.utf8), .ociConfig)
        var layerDescriptors = layers.map { blob(Data($0.utf8)) }
        if let shared { layerDescriptors.insert(shared, at: 0) }
        return document(try CanonicalJSON.encode(ImageManifest(mediaType: .ociManifest, config: config, layers: layerDescriptors)), .ociManifest)
    }

    func index(_ children: [(Descriptor, Platform)]) throws -> Descriptor {
        let entries = children.map { Descriptor(mediaType: $0.0.mediaType, digest: $0.0.digest, size: $0.0.size, platform: $0.1) }
        return document(try CanonicalJSON.encode(ImageIndex(mediaType: .ociIndex, manifests: entries)), .ociIndex)
    }

    func tag(_ name: String, _ d: Descriptor) throws -> Reference {
        let reference = try Reference(parsing: name)
        tags[reference.description] = d
        return reference
    }
}

extension FakeSource: AttachmentListing {
    func tags(in repository: Reference) async throws -> [String] {
        lock.withLock { tags.keys.compactMap { try? Reference(parsing: $0) }.filter { $0.name == repository.name }.compactMap(\.tag) }
    }
    func referrers(of subject: Digest, in repository: Reference) async throws -> Data? {
        guard let api = referrersAPI else { return nil }
        return api[subject] ?? Data(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.utf8)
    }
}

extension BlobWriter {
    func write(_ slice: Data.SubSequence) throws { try Data(slice).withUnsafeBytes { try write($0) } }
}

/// A sink in memory: blobs it was given (only once verified), documents, names; ordered or not.
final class MemorySink: ContentSink, @unchecked Sendable {
    private let lock = NSLock()
    let order: SinkOrder
    var held: Set<Digest> = []
    private(set) var blobs: [Digest: Data] = [:]
    private(set) var writeOrder: [Digest] = []
    private(set) var documents: [Digest] = []
    private(set) var names: [(Reference, Descriptor)]?
    private(set) var aborted = false
    /// Bytes handed on to the destination for a blob that then failed (the last chunk must not be among them).
    private(set) var forwardedBeforeFailure: [Digest: Int] = [:]
    init(order: SinkOrder = .concurrent(4)) { self.order = order }
    var description: String { "memory" }

    func begin(_ plan: CopyPlan) async throws {}
    func holds(_ descriptor: Descriptor, for name: Reference) async throws -> Bool { lock.withLock { held.contains(descriptor.digest) } }

    func blobWriter(_ descriptor: Descriptor, for name: Reference) async throws -> any BlobWriter {
        Writer(descriptor, sink: self)
    }

    func putDocument(_ descriptor: Descriptor, _ data: Data, for name: Reference) async throws {
        try BlobVerifier.check(data, against: descriptor, source: "document")
        lock.withLock { documents.append(descriptor.digest) }
    }

    func commit(_ plan: CopyPlan) async throws { lock.withLock { names = plan.images.map { ($0.name, $0.top) } } }
    func abort() async { lock.withLock { aborted = true } }

    final class Writer: BlobWriter, @unchecked Sendable {
        let descriptor: Descriptor
        let sink: MemorySink
        var verifier: BlobVerifier
        var data = Data()
        init(_ descriptor: Descriptor, sink: MemorySink) {
            self.descriptor = descriptor; self.sink = sink
            verifier = BlobVerifier(descriptor, source: "blob \(descriptor.digest)")
        }
        var offset: Int64 { verifier.byteCount }
        func write(_ bytes: UnsafeRawBufferPointer) throws { try verifier.update(bytes) { data.append(contentsOf: $0) } }
        func restart() throws { verifier.reset(); data.removeAll() }
        func commit() async throws -> Digest {
            let digest = try verifier.finish()
            sink.lock.withLock { sink.blobs[descriptor.digest] = data; sink.writeOrder.append(descriptor.digest) }
            return digest
        }
        func abandon(keepForResume: Bool) async { sink.lock.withLock { sink.forwardedBeforeFailure[descriptor.digest] = data.count } }
    }
}
