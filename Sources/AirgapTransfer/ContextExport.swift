#if canImport(Glibc)
import Glibc
#endif
import AirgapContent
import AirgapContext
import AirgapImageSet
import AirgapOCI
import AirgapStore
import AirgapTar
import Foundation

/// Build contexts on their way into a bundle. Each is fetched (a directory as it is, a git URL
/// checked out at its commit), its Dockerfile read for the images the build pulls (which join the
/// plan like listed images), and, once those are planned and so pinned, packed into a scratch store
/// as a `BuildContextArtifact` that names each of them by the digest the bundle holds.
struct ContextExport {
    struct Prepared {
        var entry: ImageSet.Context
        var origin: String
        var root: String
        var commit: String?
        var folder: String?
        /// The Dockerfile's path relative to the context, as the packer and the inside see it.
        var dockerfile: String
        var dockerfileBytes: Data
        var parsed: Dockerfile
        var platforms: [Platform]
        /// Each image the build pulls: as the Dockerfile names it (arguments substituted), parsed.
        var bases: [(written: String, reference: Reference)]
    }

    /// Where git checkouts and the packed artifacts live until the bundle is written.
    let scratch: String
    let store: LocalStore
    static let dockerfileLimit = 16 << 20

    init(scratch: String) throws {
        self.scratch = scratch
        store = try LocalStore(path: scratch + "/store")
    }

    func remove() { try? FileManager.default.removeItem(atPath: scratch) }

    /// Fetches every context and reads its Dockerfile; any problem names the manifest line.
    func prepare(_ set: ImageSet) throws -> [Prepared] {
        try set.contexts.enumerated().map { i, entry in
            let origin = "\(set.path):\(entry.line)"
            do { return try prepareOne(entry, number: i, set: set, origin: origin) } catch let error as ContextError {
                throw ContentError(.unsupported, "\(origin): \(error.message)")
            }
        }
    }

    private func prepareOne(_ entry: ImageSet.Context, number: Int, set: ImageSet, origin: String) throws -> Prepared {
        var root: String, commit: String?, folder: String?, boundary: String?
        switch entry.location {
        case .directory(let path):
            root = path
        case .git(let url, let ref, let subfolder):
            let checkout = try GitCheckout.fetch(url: url, ref: ref, into: "\(scratch)/git-\(number)")
            commit = checkout.commit
            folder = subfolder
            boundary = Self.realPath(checkout.directory)
            root = subfolder.map { checkout.directory + "/" + $0 } ?? checkout.directory
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue, let real = Self.realPath(root) else {
            throw ContextError("the context \(entry.location.description) is not a directory\(folder.map { " (no folder \($0) at that commit)" } ?? "")")
        }
        if let boundary, real != boundary && !real.hasPrefix(boundary + "/") {
            throw ContextError("the folder \(folder ?? "") of \(entry.location.description) is a link that leaves the repository")
        }
        root = real
        let dockerfilePath = ((root as NSString).appendingPathComponent(entry.dockerfile) as NSString).standardizingPath
        guard let dockerfileReal = Self.realPath(dockerfilePath) else {
            throw ContextError("there is no Dockerfile at \(entry.dockerfile) in the context \(entry.location.description); name it with dockerfile:")
        }
        if let boundary, !dockerfileReal.hasPrefix(boundary + "/") {
            throw ContextError("the Dockerfile \(entry.dockerfile) leads outside the repository \(entry.location.description)")
        }
        guard let handle = FileHandle(forReadingAtPath: dockerfileReal), let bytes = try handle.read(upToCount: Self.dockerfileLimit + 1) else {
            throw ContextError("cannot read the Dockerfile \(dockerfileReal)")
        }
        try? handle.close()
        guard bytes.count <= Self.dockerfileLimit, let text = String(data: bytes, encoding: .utf8) else {
            throw ContextError("the Dockerfile \(entry.dockerfile) is not UTF-8 text of at most 16 MiB")
        }
        let relative = dockerfilePath.hasPrefix(root + "/") ? String(dockerfilePath.dropFirst(root.count + 1)) : entry.dockerfile
        let parsed = try Dockerfile.parse(text, buildArgs: entry.buildArgs, path: entry.dockerfile)
        if let target = entry.target, !parsed.stages.contains(where: { $0.name?.lowercased() == target.lowercased() }) {
            throw ContextError("target \(target) is no stage of \(entry.dockerfile) (stages: \(parsed.stages.compactMap(\.name).joined(separator: ", ")))")
        }
        var bases: [(String, Reference)] = []
        for image in parsed.externalImages {
            guard let reference = try? Reference(parsing: image) else {
                throw ContextError("\(entry.dockerfile) pulls '\(image)', which is no image reference")
            }
            bases.append((image, reference))
        }
        let platforms = entry.platforms ?? (set.platforms.isEmpty ? [Platform.host] : set.platforms)
        return Prepared(entry: entry, origin: origin, root: root, commit: commit, folder: folder, dockerfile: relative,
                        dockerfileBytes: bytes, parsed: parsed, platforms: platforms, bases: bases)
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The images the builds pull, as requests: an image the manifest lists already is that
    /// request (given the contexts' platforms too); others are added, for the platforms the
    /// contexts build for and any a `FROM --platform=` names.
    static func addBaseRequests(_ prepared: [Prepared], to requests: inout [CopyRequest], referrers: Bool) -> [Int] {
        var added: [Int] = []
        for context in prepared {
            for (written, reference) in context.bases {
                var platforms = context.platforms
                for stage in context.parsed.stages where stage.base == written {
                    if let text = stage.platform, let platform = try? Platform(parsing: text), !platforms.contains(platform) { platforms.append(platform) }
                }
                let name = Naming.destinationName(of: reference)
                if let i = requests.firstIndex(where: { $0.destinationName == name }) {
                    if !requests[i].allPlatforms {
                        for p in platforms where !requests[i].platforms.contains(p) { requests[i].platforms.append(p) }
                    }
                    continue
                }
                var request = CopyRequest(reference: reference, platforms: platforms, name: name,
                                          origin: "\(context.origin) (\(context.entry.dockerfile) pulls \(written))")
                request.attachments = referrers
                added.append(requests.count)
                requests.append(request)
            }
        }
        return added
    }

    /// Packs each context, pinned to what `plan` holds of its bases, into the scratch store; the
    /// requests that carry the artifacts.
    func pack(_ prepared: [Prepared], pinnedBy plan: CopyPlan, events: TransferEvents) throws -> [CopyRequest] {
        var requests: [CopyRequest] = []
        for context in prepared {
            var bases: [BuildContextArtifact.Base] = []
            for (written, reference) in context.bases {
                let name = Naming.destinationName(of: reference)
                guard let image = plan.images.first(where: { $0.name == name && $0.attachment == nil }) else {
                    throw ContentError(.missing, "\(context.origin): \(written), which \(context.entry.dockerfile) pulls, was not planned")
                }
                bases.append(.init(written: written, reference: name.description, digest: image.top.digest))
            }
            let session = try store.beginIngest(source: "the context of \(context.origin)")
            let summary: ContextPacker.Summary
            let tar: Digest
            do {
                let writer = try TarWriter { try session.write($0) }
                summary = try ContextPacker(root: context.root, dockerfile: context.dockerfile, skipGit: context.commit != nil).pack(into: writer)
                try writer.close()
                tar = try session.commit()
            } catch let error as ContextError {
                session.abandon()
                throw ContentError(.unsupported, "\(context.origin): \(error.message)")
            }
            let dockerfile = try store.ingest(context.dockerfileBytes, source: "the Dockerfile of \(context.origin)")
            try store.ingest(BuildContextArtifact.emptyConfig, source: "the empty config")
            let artifact = BuildContextArtifact(tag: context.entry.tag.description, source: context.entry.source, commit: context.commit,
                                                folder: context.folder, dockerfile: context.dockerfile, buildArgs: context.entry.buildArgs,
                                                target: context.entry.target, platforms: context.platforms.map(\.description), bases: bases)
            let manifest = try artifact.manifest(
                context: Descriptor(mediaType: BuildContextArtifact.contextMediaType, digest: tar, size: store.blobSize(tar) ?? 0),
                dockerfile: Descriptor(mediaType: BuildContextArtifact.dockerfileMediaType, digest: dockerfile, size: Int64(context.dockerfileBytes.count)))
            let digest = try store.ingest(manifest, source: "the context manifest of \(context.origin)")
            guard let name = BuildContextArtifact.artifactName(for: context.entry.tag) else {
                throw ContentError(.unsupported, "\(context.origin): the tag of \(context.entry.tag.familiarDescription) is too long to name its context")
            }
            try store.setTag(name, to: Descriptor(mediaType: .ociManifest, digest: digest, size: Int64(manifest.count)))
            let excluded = summary.excluded.isEmpty ? "" : ", \(summary.excluded.count) left out by .dockerignore"
            let commit = context.commit.map { " at \($0.prefix(12))" } ?? ""
            events(.note("context \(context.entry.tag.familiarDescription): \(context.entry.source)\(commit), \(summary.files) files (\(summary.bytes) bytes)\(excluded), pulls \(bases.count) image\(bases.count == 1 ? "" : "s")"))
            requests.append(CopyRequest(reference: name, allPlatforms: true, name: name, origin: context.origin))
        }
        return requests
    }
}

/// The scratch store in front of another source: what it holds (the packed contexts) comes from
/// it, everything else from `rest`.
struct ScratchFirstSource: ContentSource {
    let scratch: StoreSource
    let rest: any ContentSource
    var description: String { rest.description }

    func resolve(_ reference: Reference) async throws -> (Descriptor, Data) {
        if try scratch.store.entries().contains(where: { $0.refName == reference.description }) { return try await scratch.resolve(reference) }
        return try await rest.resolve(reference)
    }

    func document(_ descriptor: Descriptor, in repository: Reference) async throws -> Data? {
        scratch.store.hasBlob(descriptor.digest) ? try await scratch.document(descriptor, in: repository) : try await rest.document(descriptor, in: repository)
    }

    func copyBlob(_ descriptor: Descriptor, in repository: Reference, into writer: any BlobWriter,
                  progress: @escaping @Sendable (Int64) -> Void) async throws {
        if scratch.store.hasBlob(descriptor.digest) { return try await scratch.copyBlob(descriptor, in: repository, into: writer, progress: progress) }
        try await rest.copyBlob(descriptor, in: repository, into: writer, progress: progress)
    }

    func fileSegments(_ descriptor: Descriptor) -> FileSegments? {
        scratch.store.hasBlob(descriptor.digest) ? scratch.fileSegments(descriptor) : rest.fileSegments(descriptor)
    }
    func checkCarries(_ descriptor: Descriptor, for name: Reference) throws {
        if !scratch.store.hasBlob(descriptor.digest) { try rest.checkCarries(descriptor, for: name) }
    }
    func mountOrigin(_ descriptor: Descriptor, in repository: Reference) -> Reference? {
        scratch.store.hasBlob(descriptor.digest) ? nil : rest.mountOrigin(descriptor, in: repository)
    }
}
