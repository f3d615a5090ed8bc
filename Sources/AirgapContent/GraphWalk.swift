import AirgapOCI
import Foundation

/// The bounds every walk of an image graph holds to, whatever the source: a hostile registry or
/// bundle cannot make a walk run forever, nest without end or load a huge document.
public struct GraphLimits: Sendable {
    /// Indexes inside indexes, counted from the top document.
    public var depth = 8
    /// Largest manifest or index read whole.
    public var documentSize: Int64 = 8 << 20
    /// Entries of one index, and layers of one manifest.
    public var entries = 4096
    /// Documents read in one walk.
    public var documents = 65_536
    /// Bytes of documents held in one walk (a registry cannot make a plan hold gigabytes).
    public var documentBytes: Int64 = 64 << 20
    public init() {}
}

/// What one walk reached from a root descriptor.
public struct ImageGraph: Sendable {
    public struct Image: Sendable {
        /// The manifest's descriptor as its parent named it (with the index's platform, if any).
        public var descriptor: Descriptor
        public var manifest: ImageManifest
    }
    public var root: Descriptor
    /// Every manifest and index reached, children before the index that names them (the order in
    /// which a registry accepts them).
    public var manifests: [Descriptor] = []
    /// Their bytes, as the source gave them (verified against their descriptors).
    public var documents: [Digest: Data] = [:]
    /// The image manifests reached, in index order.
    public var images: [Image] = []
    /// Index entries the source does not hold (a platform subset, in a store that has only some).
    public var absent: [Descriptor] = []
    /// Config and layers of every image, each once, in first-seen order.
    public var blobs: [Descriptor] = []
}

/// The one walk over indexes, manifests, configs and layers. It is a stepper, not a loop over a
/// particular source: `next()` says which document it needs, `provide(_:)` hands over the
/// verified bytes (or nil when the source lacks it); the two drivers below feed it from a
/// synchronous or an asynchronous loader.
public struct GraphWalk {
    /// Chooses which entries of an index to follow (the platform policy); the default follows all.
    public typealias Selection = (_ index: Descriptor, _ parsed: ImageIndex, _ depth: Int) throws -> [Descriptor]

    public let limits: GraphLimits
    /// Whether an entry an index names may be absent from the source (a store holding a platform subset).
    public let allowAbsent: Bool
    /// Names the thing walked in messages ("docker.io/library/httpd:2.4").
    public let subject: String
    private let select: Selection
    private var pending: [(descriptor: Descriptor, depth: Int)]
    private var seenBlobs = Set<Digest>()
    private var seenDocuments = Set<Digest>()
    /// Named by an index already: fetched once, however many indexes name it.
    private var queued = Set<Digest>()
    private var heldBytes: Int64 = 0
    private var walked: [Digest: Descriptor] = [:]
    private var children: [Digest: [Digest]] = [:]
    private var building: ImageGraph
    /// What the walk reached so far (everything, once `next()` returns nil).
    public var graph: ImageGraph {
        var graph = building
        graph.manifests = postOrder()
        return graph
    }

    /// Every document after all it names (an index after its children, however they are shared):
    /// the order a registry accepts them in.
    private func postOrder() -> [Descriptor] {
        var done = Set<Digest>(), result: [Descriptor] = []
        var stack: [(Digest, expanded: Bool)] = [(building.root.digest, false)]
        while let (digest, expanded) = stack.popLast() {
            guard let descriptor = walked[digest], !done.contains(digest) else { continue }
            if expanded {
                done.insert(digest)
                result.append(descriptor)
            } else {
                stack.append((digest, true))
                for child in (children[digest] ?? []).reversed() where !done.contains(child) { stack.append((child, false)) }
            }
        }
        return result
    }

    public init(root: Descriptor, subject: String, limits: GraphLimits = GraphLimits(), allowAbsent: Bool = false,
                select: @escaping Selection = { _, index, _ in index.manifests }) {
        self.limits = limits
        self.allowAbsent = allowAbsent
        self.subject = subject
        self.select = select
        pending = [(root, 0)]
        queued = [root.digest]
        building = ImageGraph(root: root)
    }

    /// The document the walk needs next, or nil when it is complete.
    public func next() throws -> Descriptor? {
        guard let top = pending.last else { return nil }
        let d = top.descriptor
        guard top.depth < limits.depth else {
            throw ContentError(.verification, "\(subject): indexes nest more than \(limits.depth) deep at \(d.digest); refusing the graph")
        }
        guard d.size <= limits.documentSize else {
            throw ContentError(.verification, "\(subject): the \(d.mediaType.isIndex ? "image index" : "manifest") \(d.digest) is \(d.size) bytes, over the \(limits.documentSize >> 20) MiB limit for manifests; refusing it")
        }
        return d
    }

    /// Hands over the bytes of the descriptor `next()` returned; nil when the source does not hold it.
    public mutating func provide(_ data: Data?) throws {
        let (descriptor, depth) = pending.removeLast()
        guard let data else {
            guard allowAbsent && depth > 0 else {
                var error = ContentError(.missing, "\(subject): the manifest \(descriptor.digest) is not at the source")
                error.missingDigest = descriptor.digest
                throw error
            }
            building.absent.append(descriptor)
            return
        }
        guard seenDocuments.insert(descriptor.digest).inserted else { return } // named twice: walked once
        guard seenDocuments.count <= limits.documents else {
            throw ContentError(.verification, "\(subject) reaches more than \(limits.documents) manifests; refusing the graph")
        }
        heldBytes += Int64(data.count)
        guard heldBytes <= limits.documentBytes else {
            throw ContentError(.verification, "\(subject): its manifests add up to more than \(limits.documentBytes >> 20) MiB; refusing the graph")
        }
        let mediaType = try Self.documentType(descriptor, data, subject: subject)
        walked[descriptor.digest] = descriptor
        building.documents[descriptor.digest] = data
        if mediaType.isIndex {
            let index = try Self.decode(ImageIndex.self, data, what: "\(subject): index \(descriptor.digest)")
            guard index.manifests.count <= limits.entries else {
                throw ContentError(.verification, "\(subject): the index \(descriptor.digest) lists \(index.manifests.count) entries, more than \(limits.entries); refusing it")
            }
            let chosen = try select(descriptor, index, depth).filter { $0.mediaType.isManifest || $0.mediaType.isSchema1 }
            children[descriptor.digest] = chosen.map(\.digest)
            for child in chosen.reversed() where queued.insert(child.digest).inserted {
                pending.append((child, depth + 1))
            }
        } else {
            let manifest = try Self.decode(ImageManifest.self, data, what: "\(subject): manifest \(descriptor.digest)")
            guard manifest.layers.count <= limits.entries else {
                throw ContentError(.verification, "\(subject): the manifest \(descriptor.digest) lists \(manifest.layers.count) layers, more than \(limits.entries); refusing it")
            }
            building.images.append(.init(descriptor: descriptor, manifest: manifest))
            for blob in manifest.blobs where seenBlobs.insert(blob.digest).inserted { building.blobs.append(blob) }
        }
    }

    /// The type a document really is; schema 1 and non-manifests get a sentence of their own.
    static func documentType(_ descriptor: Descriptor, _ data: Data, subject: String) throws -> MediaType {
        var type = descriptor.mediaType
        if !type.isManifest, let declared = detectManifestMediaType(data) { type = declared }
        // Whatever type it was given as, a schemaVersion 1 document is schema 1.
        if type.isSchema1 || Self.schemaVersion(data) == 1 {
            throw ContentError(.unsupported, "\(subject) is a Docker schema 1 image (deprecated since 2017, not supported); rebuild or re-push it with a current engine, or convert it with 'skopeo copy --format v2s2', then export it again")
        }
        guard type.isManifest else {
            throw ContentError(.unsupported, "\(subject): \(descriptor.digest) has the type \(type.rawValue), which is neither an image manifest nor an index")
        }
        return type
    }

    static func schemaVersion(_ data: Data) -> Int? {
        struct Probe: Decodable { var schemaVersion: Int? }
        return (try? JSONDecoder().decode(Probe.self, from: data))?.schemaVersion
    }

    static func decode<T: Decodable>(_ type: T.Type, _ data: Data, what: String) throws -> T {
        do {
            if type == ImageIndex.self { return try ImageIndex.decode(data, what: what) as! T }
            if type == ImageManifest.self { return try ImageManifest.decode(data, what: what) as! T }
            return try CanonicalJSON.decode(type, from: data, what: what)
        } catch { throw ContentError(.verification, "\(error)") }
    }

    /// Walks with a synchronous loader (a store, a verified bundle held in memory).
    public static func run(_ walk: GraphWalk, load: (Descriptor) throws -> Data?) throws -> ImageGraph {
        var walk = walk
        while let needed = try walk.next() { try walk.provide(try load(needed)) }
        return walk.graph
    }

    /// Walks with an asynchronous loader (a registry).
    public static func run(_ walk: GraphWalk, load: (Descriptor) async throws -> Data?) async throws -> ImageGraph {
        var walk = walk
        while let needed = try walk.next() { try walk.provide(try await load(needed)) }
        return walk.graph
    }
}
