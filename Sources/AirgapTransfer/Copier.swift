#if canImport(Glibc)
import Glibc
#endif
import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapStore
import AirgapTar
import Foundation

/// One end of `copy SRC DST`, in skopeo's transport names (plus this tool's store and bundle).
public enum Transport: Sendable, CustomStringConvertible {
    /// `docker://REF`, or `docker://HOST[:PORT][/PREFIX]` as a destination for several images.
    case docker(String)
    /// `oci:DIR[:REF]`: an OCI image layout directory (the store's format).
    case oci(directory: String, reference: String?)
    case ociArchive(file: String, reference: String?)
    case dockerArchive(file: String, reference: String?)
    /// `bundle:FILE`: a signed bundle, verified before anything is read from it (sources only).
    case bundle(file: String)
    /// `store:[REF]`: the local store (`--store`, `AIRGAP_STORE`).
    case store(reference: String?)

    public static let names = "docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF], bundle:FILE, store:[REF]"

    public init(parsing text: String) throws {
        func split(_ rest: Substring) -> (String, String?) {
            // FILE:REF — as skopeo reads it: the path ends at the first ':'.
            guard let colon = rest.firstIndex(of: ":") else { return (String(rest), nil) }
            return (String(rest[..<colon]), String(rest[rest.index(after: colon)...]))
        }
        if text.hasPrefix("docker://") { self = .docker(String(text.dropFirst(9))); return }
        guard let colon = text.firstIndex(of: ":") else {
            throw OCIError.invalidReference(text, reason: "name a transport: \(Self.names)")
        }
        let scheme = text[..<colon], rest = text[text.index(after: colon)...]
        switch scheme {
        case "oci": let (d, r) = split(rest); self = .oci(directory: d, reference: r)
        case "oci-archive": let (f, r) = split(rest); self = .ociArchive(file: f, reference: r)
        case "docker-archive": let (f, r) = split(rest); self = .dockerArchive(file: f, reference: r)
        case "bundle": self = .bundle(file: String(rest))
        case "store": self = .store(reference: rest.isEmpty ? nil : String(rest))
        default: throw OCIError.invalidReference(text, reason: "'\(scheme)' is not a transport this tool knows: \(Self.names)")
        }
        if case .oci(let d, _) = self, d.isEmpty { throw OCIError.invalidReference(text, reason: "give the layout directory: oci:DIR[:REF]") }
    }

    public var description: String {
        switch self {
        case .docker(let r): "docker://\(r)"
        case .oci(let d, let r): "oci:\(d)\(r.map { ":\($0)" } ?? "")"
        case .ociArchive(let f, let r): "oci-archive:\(f)\(r.map { ":\($0)" } ?? "")"
        case .dockerArchive(let f, let r): "docker-archive:\(f)\(r.map { ":\($0)" } ?? "")"
        case .bundle(let f): "bundle:\(f)"
        case .store(let r): "store:\(r ?? "")"
        }
    }
}

/// `copy SRC DST`: any source to any sink, as one plan over the copy engine. Registries keep
/// their digests (manifests travel byte for byte); the platform policy is the one pull and bundle
/// use. An archive given as a source is read in place (`ArchiveSource`), or, compressed, once
/// into a temporary layout.
public struct Copier {
    public struct Options {
        public var platforms: [Platform] = []
        public var allPlatforms = false
        /// Where `store:` is.
        public var storePath: String
        /// Whom to trust for `bundle:` sources.
        public var trust: BundleTrust?
        /// For a bundle source: sees the verified bundle, the destination as the tag history names
        /// it and the tags the copy would set, before a byte is copied (the rollback check)…
        public var admitBundle: BundleGate?
        /// … and after the copy (to record them).
        public var recordBundle: BundleGate?
        public init(storePath: String) { self.storePath = storePath }
    }
    public typealias BundleGate = (_ result: BundleReadResult, _ destination: String, _ tags: [(String, Digest)]) throws -> Void

    public let client: RegistryClient
    public let options: Options
    public let events: TransferEvents
    public init(client: RegistryClient, options: Options, events: @escaping TransferEvents = { _ in }) {
        self.client = client; self.options = options; self.events = events
    }

    /// A source and the requests it answers, with what to clean up afterwards.
    struct Opened {
        var source: any ContentSource
        var requests: [CopyRequest]
        var temporary: String?
        var bundle: BundleReadResult?
    }

    public func copy(from source: Transport, to destination: Transport) async throws -> [CopyPlan.Image] {
        let opened = try await open(source)
        defer { if let temporary = opened.temporary { try? FileManager.default.removeItem(atPath: temporary) } }
        guard !opened.requests.isEmpty else { throw TransferError(.invalidInput, "\(source) holds no named image to copy") }
        let requests = try name(opened.requests, for: destination)
        if requests.contains(where: { $0.unnamed }) {
            throw TransferError(.invalidInput, "\(source) holds an image with no full name (REPOSITORY:TAG); give it one at the destination (oci:DIR:NAME:TAG, docker://HOST/NAME:TAG)")
        }
        let isLocal = !(opened.source is RegistrySource)
        let planner = CopyPlanner(source: opened.source, allowAbsent: isLocal, events: events)
        let plan = try await planner.plan(requests)
        let tags = plan.images.filter(\.named).map { ($0.name.description, $0.top.digest) }
        let label = historyLabel(destination, plan)
        if let bundle = opened.bundle, let verified = opened.source as? VerifiedBundle {
            if let label { try options.admitBundle?(bundle, label, tags) }
            try checkRequiredOnInside(verified, destination)
        }
        try await run(plan, from: opened.source, to: destination)
        if let bundle = opened.bundle, let label { try options.recordBundle?(bundle, label, tags) }
        return plan.images
    }

    // MARK: sources

    func open(_ transport: Transport) async throws -> Opened {
        let wantsAll = options.allPlatforms
        switch transport {
        case .docker(let text):
            let reference = try Reference(parsing: text)
            return Opened(source: RegistrySource(client: client),
                          requests: [CopyRequest(reference: reference, platforms: options.platforms, allPlatforms: wantsAll)])
        case .oci(let directory, let reference):
            guard FileIO.exists(directory + "/index.json") else {
                throw TransferError(.invalidInput, "\(directory) is not an OCI image layout (it has no index.json)")
            }
            return try layout(try LocalStore(path: directory), reference: reference, what: transport.description)
        case .store(let reference):
            return try layout(try LocalStore(path: options.storePath), reference: reference, what: "the store")
        case .ociArchive(let file, let reference), .dockerArchive(let file, let reference):
            guard FileIO.exists(file) else {
                throw TransferError(.invalidInput, "the archive \(file) does not exist; check the path in \(transport)")
            }
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), isDirectory.boolValue {
                let layout = FileIO.exists(file + "/index.json") ? ": it is an OCI layout, so give it as oci:\(file)" : "; an archive is one tar file"
                throw TransferError(.invalidInput, "\(file) is a directory\(layout)")
            }
            // A plain tar file is read in place; a compressed one (or a pipe) is read once as a
            // stream into a temporary layout, as `image load` reads it.
            if let archive = try await ArchiveSource.open(file) {
                return Opened(source: archive, requests: try archive.requests(reference, platforms: options.platforms,
                                                                              allPlatforms: options.platforms.isEmpty || options.allPlatforms))
            }
            let temporary = FileManager.default.temporaryDirectory.path + "/airgap-copy-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            do {
                let store = try LocalStore(path: temporary)
                _ = try await ArchiveLoader(store: store).load(source: try FileSequenceSource(path: file, regularOnly: false), sourceName: file)
                var opened = try layout(store, reference: reference, what: file)
                opened.temporary = temporary
                return opened
            } catch {
                try? FileManager.default.removeItem(atPath: temporary)
                throw error
            }
        case .bundle(let file):
            guard let trust = options.trust else { throw TransferError(.invalidInput, "give --key NAME.pub (or --allow-unsigned) to copy from a bundle") }
            let result = try await BundleReader(files: try BundleFiles.resolve([file]), trust: trust).read()
            guard let bundle = VerifiedBundle(result) else {
                let first = result.findings.first.map { EscapedText.escape($0.description) } ?? "it failed verification"
                throw TransferError.bad("\(file) failed verification (\(first)); nothing was copied (see 'airgap-import verify \(file)')")
            }
            let requests = bundle.requests().map { request in
                var request = request
                if !options.platforms.isEmpty { request.platforms = options.platforms; request.allPlatforms = options.allPlatforms }
                return request
            }
            return Opened(source: bundle, requests: requests, bundle: result)
        }
    }

    /// Where the tag history records what a bundle set: the names `load` and `push` use.
    func historyLabel(_ destination: Transport, _ plan: CopyPlan) -> String? {
        switch destination {
        case .store: return "store"
        case .oci(let directory, _): return "oci \((directory as NSString).standardizingPath)"
        case .docker(let text):
            if plan.images.count > 1, let target = try? PushTarget(parsing: text) { return "registry \(target)" }
            return plan.images.first.map { "registry \($0.name.registry)" }
        case .ociArchive, .dockerArchive, .bundle: return nil // a new file each time: no tag to move back
        }
    }

    /// A bundle made with `--since` relies on the destination holding what it left out: a store
    /// is checked before anything is written (a registry is checked blob by blob, before any tag).
    func checkRequiredOnInside(_ bundle: VerifiedBundle, _ destination: Transport) throws {
        let path: String
        switch destination {
        case .store: path = options.storePath
        case .oci(let directory, _): path = directory
        default: return
        }
        let required = bundle.metadata.requiredOnInside
        guard !required.isEmpty else { return }
        let store = FileIO.exists(path + "/oci-layout") ? try LocalStore(path: path) : nil
        let missing = required.filter { blob in !(store.map { $0.hasBlob(blob.digest, size: blob.size) && $0.confirmBlob(blob.digest, size: blob.size) } ?? false) }
        if let first = missing.first {
            throw TransferError(.invalidInput, "the bundle was made with --since and needs \(missing.count) blob\(missing.count == 1 ? "" : "s") the destination does not hold (\(first.digest) first); load the earlier bundle there first. Nothing was copied")
        }
    }

    /// A layout's images: the one named, or every named one. Local sources keep every platform
    /// they hold unless `--platform` narrows it.
    func layout(_ store: LocalStore, reference: String?, what: String) throws -> Opened {
        let all = options.platforms.isEmpty || options.allPlatforms
        let images: [StoredImage]
        if let reference {
            // Other tools name layout entries by a bare tag (skopeo's oci:DIR:TAG): that name first.
            if let entry = try store.entries().last(where: { $0.refName == reference }), (try? Reference(parsing: reference)).map({ $0.description != reference }) ?? true {
                images = [try store.resolve(entry)]
            } else {
                do { images = [try store.findOne(reference)] } catch StoreError.imageNotFound {
                    // Said of what the user named (a temporary layout of an archive is no store of theirs).
                    throw TransferError.noImage(named: reference, in: what, holds: try store.images().compactMap { $0.reference?.familiarDescription })
                }
            }
        } else {
            images = try store.images().filter { $0.reference != nil }
        }
        let requests = images.map { image in
            CopyRequest(reference: image.reference ?? Naming.unnamed,
                        platforms: options.platforms, allPlatforms: all, pinned: image.entry, unnamed: image.reference == nil)
        }
        return Opened(source: StoreSource(store: store), requests: requests)
    }

    // MARK: names and sinks

    /// The destination names: a reference the destination gives, else the source's own names
    /// (under `HOST/PREFIX` for a registry given without a repository).
    func name(_ requests: [CopyRequest], for destination: Transport) throws -> [CopyRequest] {
        let given: String?
        switch destination {
        case .docker(let text):
            // Several images go under HOST[:PORT][/PREFIX], each keeping its path (as push --to does);
            // so does one, given a bare host (never docker.io/library/HOST by accident).
            if requests.count > 1 || !text.contains("/") {
                let lastPart = text.split(separator: "/").last.map(String.init) ?? ""
                guard !text.contains("@"), text.split(separator: "/").count == 1 || !lastPart.contains(":") else {
                    throw TransferError(.invalidInput, "the source holds \(requests.count) images: give the destination as docker://HOST[:PORT][/PREFIX], without a tag or digest")
                }
                let target = try PushTarget(parsing: text)
                return requests.map { r in var r = r; r.name = target.rewrite(r.destinationName); r.unnamed = false; return r }
            }
            given = text
        case .oci(_, let r), .ociArchive(_, let r), .dockerArchive(_, let r), .store(let r): given = r
        case .bundle: throw TransferError(.invalidInput, "a bundle is written by 'airgap-export bundle' (signed, with its metadata), not by copy")
        }
        guard let given else { return requests }
        if case .docker = destination {} else if case .store = destination {} else if !given.contains("/") && !given.contains(":") {
            throw TransferError(.invalidInput, "'\(given)' is a bare tag; name the image in full (NAME:TAG) for \(destination): this tool writes full references into layouts (skopeo's bare tags are read, not written)")
        }
        guard requests.count == 1 else {
            throw TransferError(.invalidInput, "the source holds \(requests.count) images, so the destination cannot name one; leave the reference out of the destination")
        }
        var request = requests[0]
        request.name = try Reference(parsing: given)
        request.unnamed = false
        return [request]
    }

    func run(_ plan: CopyPlan, from source: any ContentSource, to destination: Transport) async throws {
        switch destination {
        case .docker:
            try await CopyEngine(source: source, sink: RegistrySink(client: client), events: events).run(plan)
        case .oci(let directory, _):
            try await CopyEngine(source: source, sink: StoreSink(store: try LocalStore(path: directory)), events: events).run(plan)
        case .store:
            try await CopyEngine(source: source, sink: StoreSink(store: try LocalStore(path: options.storePath)), events: events).run(plan)
        case .ociArchive(let file, _), .dockerArchive(let file, _):
            var dockerView = false
            if case .dockerArchive = destination { dockerView = true }
            try await FileIO.writeThroughTemporary(file) { fd in
                let sink = BundleSink(archive: .init(sink: fileSink(fd: fd, path: file), dockerView: dockerView, path: file))
                try await CopyEngine(source: source, sink: sink, events: events).run(plan)
            }
        case .bundle:
            throw TransferError(.invalidInput, "a bundle is written by 'airgap-export bundle', not by copy")
        }
    }
}
