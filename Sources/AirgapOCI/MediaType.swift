/// A media type string with the spec's well-known values.
public struct MediaType: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible,
                         ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = MediaType.shared(rawValue) }
    public init(_ rawValue: String) { self.rawValue = MediaType.shared(rawValue) }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws { rawValue = MediaType.shared(try decoder.singleValueContainer().decode(String.self)) }

    /// A well-known type as the one constant string (no allocation of its own): a plan of 10,000
    /// images decodes a few hundred thousand of them.
    private static func shared(_ text: String) -> String { wellKnown[text] ?? text }
    private static let wellKnown: [String: String] = Dictionary(uniqueKeysWithValues: [
        ociManifest, ociIndex, ociConfig, ociLayer, ociLayerGzip, ociLayerZstd, dockerManifest, dockerManifestList,
        dockerConfig, dockerLayer, dockerLayerGzip, dockerSchema1, dockerSchema1Signed,
    ].map { ($0.rawValue, $0.rawValue) })
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    public static let ociManifest: MediaType = "application/vnd.oci.image.manifest.v1+json"
    public static let ociIndex: MediaType = "application/vnd.oci.image.index.v1+json"
    public static let ociConfig: MediaType = "application/vnd.oci.image.config.v1+json"
    public static let ociLayer: MediaType = "application/vnd.oci.image.layer.v1.tar"
    public static let ociLayerGzip: MediaType = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let ociLayerZstd: MediaType = "application/vnd.oci.image.layer.v1.tar+zstd"
    public static let dockerManifest: MediaType = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList: MediaType = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerConfig: MediaType = "application/vnd.docker.container.image.v1+json"
    public static let dockerLayer: MediaType = "application/vnd.docker.image.rootfs.diff.tar"
    public static let dockerLayerGzip: MediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip"

    public static let dockerSchema1: MediaType = "application/vnd.docker.distribution.manifest.v1+json"
    public static let dockerSchema1Signed: MediaType = "application/vnd.docker.distribution.manifest.v1+prettyjws"

    /// Docker's schema 1, deprecated since 2017: recognised only to say so.
    public var isSchema1: Bool { self == .dockerSchema1 || self == .dockerSchema1Signed }
    public var isIndex: Bool { self == .ociIndex || self == .dockerManifestList }
    public var isImageManifest: Bool { self == .ociManifest || self == .dockerManifest }
    public var isManifest: Bool { isIndex || isImageManifest }
    /// A container image's config: what makes a manifest an image an engine can run, not an artifact.
    public var isImageConfig: Bool { self == .ociConfig || self == .dockerConfig }

    /// An image layer (a tar, compressed or not, distributable or not): what unpacks into a root filesystem.
    public var isImageLayer: Bool {
        rawValue.hasPrefix("application/vnd.oci.image.layer.") || rawValue.hasPrefix("application/vnd.docker.image.rootfs.")
    }

    /// The Accept list for manifest requests: every type this tool understands.
    public static let manifestAccept: [MediaType] = [.ociIndex, .ociManifest, .dockerManifestList, .dockerManifest]
}
