import AirgapContent
import AirgapContext
import AirgapOCI
import AirgapStore
import AirgapTar
import Foundation

/// A build context carried in a bundle (or the store), found by the name its built image gets.
public struct CarriedContext: Sendable {
    /// The artifact's own name (`app:1.0.context`).
    public var name: Reference
    public var manifest: Descriptor
    public var artifact: BuildContextArtifact
    public var contextBlob: Descriptor
    public var dockerfileBlob: Descriptor

    /// Every build context among `names`, read from the source's (verified) manifests.
    public static func all(in source: any ContentSource, names: [(Reference, Descriptor)]) async throws -> [CarriedContext] {
        var found: [CarriedContext] = []
        // Only names the artifact naming rule gives (`TAG.context`): a store of 10,000 images has
        // no need to read every manifest to find the few contexts.
        for (name, descriptor) in names where descriptor.mediaType == .ociManifest && (name.tag ?? "").hasSuffix(BuildContextArtifact.tagSuffix) {
            guard let data = try await source.document(descriptor, in: name), let manifest = try? ImageManifest.decode(data),
                  let artifact = BuildContextArtifact(manifest: manifest) else { continue }
            found.append(CarriedContext(name: name, manifest: descriptor, artifact: artifact,
                                        contextBlob: manifest.layers[0], dockerfileBlob: manifest.layers[1]))
        }
        return found.sorted { $0.artifact.tag < $1.artifact.tag }
    }

    /// The context whose built image is `text` (`app:1.0`, `docker.io/library/app:1.0`), or whose
    /// own name it is.
    public static func named(_ text: String, in contexts: [CarriedContext], what: String) throws -> CarriedContext {
        let wanted = try? Reference(parsing: text)
        if let match = contexts.first(where: { $0.artifact.tag == wanted?.description || $0.name == wanted || $0.artifact.tag == text }) { return match }
        let known = contexts.map { (try? Reference(parsing: $0.artifact.tag))?.familiarDescription ?? $0.artifact.tag }
        throw ContentError(.missing, known.isEmpty ? "\(what) carries no build contexts (export them with a 'contexts:' list)"
                                                   : "\(what) carries no build context for \(text) (it has: \(known.joined(separator: ", ")))")
    }

    /// Where the bases point once the context is extracted: `HOST[:PORT]/PREFIX`, each pinned by
    /// the digest the bundle holds; nil: as the Dockerfile names them.
    public struct Registry: Sendable {
        public var host: String
        public var prefix: String
        public init(host: String, prefix: String) { self.host = host; self.prefix = prefix }

        /// `HOST[:PORT][/PREFIX]`.
        public init?(parsing text: String) {
            let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
            guard let host = parts.first, Reference.isValidRegistry(host) else { return nil }
            let prefix = parts.count > 1 ? parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "/")) : ""
            if !prefix.isEmpty, (try? Reference(parsing: "\(host)/\(prefix)/x")) == nil { return nil }
            self.init(host: host, prefix: prefix)
        }

        public func pinned(_ base: BuildContextArtifact.Base) -> String? {
            guard let name = try? Reference(parsing: base.reference) else { return nil }
            let moved = Naming.rewrite(name, registry: host, prefix: prefix)
            return Reference(registry: moved.registry, repository: moved.repository, tag: nil, digest: base.digest).description
        }
    }

    public struct Extracted: Sendable {
        public var directory: String
        /// Where the Dockerfile was written (inside the directory, or next to it when it lives
        /// outside the context).
        public var dockerfile: String
        public var files: Int
        public var bytes: Int64
        public var rewritten: Int
    }

    /// Writes the context into `directory` (new or empty) and its Dockerfile, pointed at
    /// `registry` when given. Each blob is copied from the source into a scratch file and checked
    /// against its digest before anything is unpacked.
    public func extract(from source: any ContentSource, into directory: String, registry: Registry?) async throws -> Extracted {
        let scratchPath = NSTemporaryDirectory() + "airgap-extract-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: scratchPath) }
        // Sizes are known (the context is a plain tar): a disk too small is said before a byte is copied.
        try FileIO.requireFreeSpace(contextBlob.size + dockerfileBlob.size, at: NSTemporaryDirectory(), for: "a verified scratch copy of the context")
        try FileIO.requireFreeSpace(contextBlob.size, at: directory, for: "the context \(name.familiarDescription)")
        let scratch = try LocalStore(path: scratchPath)
        for blob in [contextBlob, dockerfileBlob] {
            let session = try scratch.beginIngest(expected: blob.digest, size: blob.size, source: "\(blob.digest) of the context \(name.familiarDescription)")
            do {
                try await source.copyBlob(blob, in: name, into: session, progress: { _ in })
                try session.commit()
            } catch {
                session.abandon()
                throw error
            }
        }
        guard let text = String(data: try scratch.readBlob(dockerfileBlob.digest, limit: Int(dockerfileBlob.size) + 1), encoding: .utf8) else {
            throw ContentError(.unsupported, "the Dockerfile of \(name.familiarDescription) is not UTF-8 text")
        }
        var rewritten = 0
        var dockerfile = text
        if let registry {
            let pinned = Dictionary(artifact.bases.map { ($0.written, $0) }, uniquingKeysWith: { a, _ in a })
            var unpinned: [String] = []
            do {
                dockerfile = try Dockerfile.rewrite(text, buildArgs: artifact.buildArgs, path: artifact.dockerfile) { image in
                    guard let base = pinned[image], let new = registry.pinned(base) else { unpinned.append(image); return nil }
                    rewritten += 1
                    return new
                }
            } catch let error as ContextError { throw ContentError(.unsupported, error.message) }
            // An image left as written would make the build reach past the registry given.
            if let missing = unpinned.first {
                throw ContentError(.missing, "the Dockerfile of \(name.familiarDescription) pulls \(missing), which the context does not pin; export it again")
            }
        }
        let summary: ContextExtractor.Summary
        do {
            let reader = try TarReader(source: try FileSequenceSource(paths: [scratch.blobPath(contextBlob.digest)]), decompress: false)
            summary = try ContextExtractor.extract(reader, into: directory)
        } catch let error as ContextError { throw ContentError(.unsupported, "cannot extract the context of \(name.familiarDescription): \(error.message)") }
        let inside = !artifact.dockerfile.hasPrefix("../") && artifact.dockerfile != ".."
        let target: String
        if inside {
            guard let relative = try? ContextExtractor.checkedName(artifact.dockerfile) else {
                throw ContentError(.unsupported, "the context of \(name.familiarDescription) names its Dockerfile '\(artifact.dockerfile)', which is no path inside it")
            }
            // Every directory on the way must be a directory the extraction made, not a link.
            var walked = directory
            for part in relative.split(separator: "/").dropLast() {
                walked += "/" + part
                // attributesOfItem does not follow a link: a link here reads as one.
                guard (try? FileManager.default.attributesOfItem(atPath: walked)[.type]) as? FileAttributeType == .typeDirectory else {
                    throw ContentError(.unsupported, "the Dockerfile of \(name.familiarDescription) lies below \(walked), which is no directory of the context")
                }
            }
            target = directory + "/" + relative
        } else {
            let trimmed = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
            target = trimmed + ".Dockerfile"
        }
        // A fresh file renamed over whatever the tar held there (a link is replaced, never followed).
        let temporary = target + ".airgap-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(dockerfile.utf8)) else {
            throw ContentError(.unsupported, "cannot write the Dockerfile \(target)")
        }
        if !inside && FileManager.default.fileExists(atPath: target) {
            try? FileManager.default.removeItem(atPath: temporary)
            throw ContentError(.unsupported, "\(target) exists; the Dockerfile of \(name.familiarDescription) lives outside its context and is written there")
        }
        guard rename(temporary, target) == 0 else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw ContentError(.unsupported, "cannot write the Dockerfile \(target): \(String(cString: strerror(errno)))")
        }
        return Extracted(directory: directory, dockerfile: target, files: summary.files, bytes: summary.bytes, rewritten: rewritten)
    }
}
