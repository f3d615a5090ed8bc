import Foundation

/// A build context carried as an OCI artifact: an image manifest with our own `artifactType`, the
/// empty config, the context as a tar layer and the Dockerfile as a second layer (it may live
/// outside the context, as Docker's `-f` allows). What the inside needs to build it again (the
/// name the built image gets, its build arguments, target and platforms, and every base image
/// pinned by digest) is in the manifest's annotations, so it is covered by the manifest's digest.
public struct BuildContextArtifact: Sendable, Equatable, Codable {
    public static let artifactType = "application/vnd.airgap.build-context.v1"
    public static let contextMediaType: MediaType = "application/vnd.airgap.build-context.layer.v1.tar"
    public static let dockerfileMediaType: MediaType = "application/vnd.airgap.build-context.dockerfile.v1"
    public static let emptyConfigMediaType: MediaType = "application/vnd.oci.empty.v1+json"
    public static let emptyConfig = Data("{}".utf8)
    /// The tag suffix of the artifact's own name: the context of `app:1.0` is `app:1.0.context`.
    public static let tagSuffix = ".context"

    /// One image the Dockerfile pulls: as written once its arguments are substituted, and the
    /// name and digest it has in the bundle.
    public struct Base: Sendable, Equatable, Codable {
        public var written: String
        public var reference: String
        public var digest: Digest
        public init(written: String, reference: String, digest: Digest) { self.written = written; self.reference = reference; self.digest = digest }
    }

    /// The name the built image gets (the manifest's `tag:`).
    public var tag: String
    /// Where the context came from: the directory as written in the manifest, or the git URL.
    public var source: String
    /// The git commit it was packed from; nil for a directory.
    public var commit: String?
    /// The folder of the repository that is the context (`URL#REF:FOLDER`); nil: its root.
    public var folder: String?
    /// The Dockerfile's path relative to the context (may start with `../`).
    public var dockerfile: String
    public var buildArgs: [String: String]
    public var target: String?
    public var platforms: [String]
    public var bases: [Base]

    public init(tag: String, source: String, commit: String?, folder: String?, dockerfile: String, buildArgs: [String: String],
                target: String?, platforms: [String], bases: [Base]) {
        self.tag = tag; self.source = source; self.commit = commit; self.folder = folder; self.dockerfile = dockerfile
        self.buildArgs = buildArgs; self.target = target; self.platforms = platforms; self.bases = bases
    }

    private enum CodingKeys: String, CodingKey { case tag, source, commit, folder, dockerfile, buildArgs, target, platforms, bases }

    enum Key {
        static let tag = "dev.airgap.context.tag"
        static let source = "dev.airgap.context.source"
        static let commit = "dev.airgap.context.commit"
        static let folder = "dev.airgap.context.folder"
        static let dockerfile = "dev.airgap.context.dockerfile"
        static let buildArgs = "dev.airgap.context.build-args"
        static let target = "dev.airgap.context.target"
        static let platforms = "dev.airgap.context.platforms"
        static let bases = "dev.airgap.context.bases"
        static let ociSource = "org.opencontainers.image.source"
        static let ociRevision = "org.opencontainers.image.revision"
        static let title = "org.opencontainers.image.title"
    }

    /// The manifest's bytes (canonical JSON: the same context gives the same digest).
    public func manifest(context: Descriptor, dockerfile dockerfileBlob: Descriptor) throws -> Data {
        var annotations: [String: String] = [
            Key.tag: tag, Key.source: source, Key.dockerfile: dockerfile,
            Key.buildArgs: String(decoding: try CanonicalJSON.encode(buildArgs), as: UTF8.self),
            Key.platforms: platforms.joined(separator: ","),
            Key.bases: String(decoding: try CanonicalJSON.encode(bases), as: UTF8.self),
        ]
        if let commit { annotations[Key.commit] = commit; annotations[Key.ociRevision] = commit; annotations[Key.ociSource] = source }
        if let folder { annotations[Key.folder] = folder }
        if let target { annotations[Key.target] = target }
        var contextLayer = context
        contextLayer.annotations = [Key.title: "context.tar"]
        var dockerfileLayer = dockerfileBlob
        dockerfileLayer.annotations = [Key.title: "Dockerfile"]
        var manifest = ImageManifest(mediaType: .ociManifest,
                                     config: Descriptor(mediaType: Self.emptyConfigMediaType, digest: Digest.sha256(of: Self.emptyConfig), size: 2),
                                     layers: [contextLayer, dockerfileLayer], annotations: annotations)
        manifest.artifactType = Self.artifactType
        return try CanonicalJSON.encode(manifest)
    }

    /// Reads a context back from its (verified) manifest; nil when the manifest is no build context.
    public init?(manifest: ImageManifest) {
        guard manifest.artifactType == Self.artifactType, let a = manifest.annotations, manifest.layers.count == 2,
              manifest.layers[0].mediaType == Self.contextMediaType, manifest.layers[1].mediaType == Self.dockerfileMediaType,
              let tag = a[Key.tag], let source = a[Key.source], let dockerfile = a[Key.dockerfile],
              let args = a[Key.buildArgs].flatMap({ try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }),
              let bases = a[Key.bases].flatMap({ try? JSONDecoder().decode([Base].self, from: Data($0.utf8)) }) else { return nil }
        self.init(tag: tag, source: source, commit: a[Key.commit], folder: a[Key.folder], dockerfile: dockerfile, buildArgs: args,
                  target: a[Key.target], platforms: (a[Key.platforms] ?? "").split(separator: ",").map(String.init), bases: bases)
    }

    /// The name the artifact itself has in the bundle, derived from the built image's name.
    public static func artifactName(for image: Reference) -> Reference? {
        let tag = (image.tag ?? "latest") + tagSuffix
        guard tag.count <= 128 else { return nil }
        return Reference(registry: image.registry, repository: image.repository, tag: tag, digest: nil)
    }
}
