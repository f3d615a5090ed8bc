/// A content descriptor: media type, digest and size of a blob, plus optional metadata.
/// Fields this tool does not model are kept in `unknownFields` and written back unchanged.
public struct Descriptor: Hashable, Sendable, Codable {
    public var mediaType: MediaType
    public var digest: Digest
    public var size: Int64
    public var urls: [String]?
    public var annotations: [String: String]?
    public var platform: Platform?
    public var artifactType: String?
    public var unknownFields: [String: JSONValue] = [:]

    public static let refNameAnnotation = "org.opencontainers.image.ref.name"
    public static let containerdNameAnnotation = "io.containerd.image.name"

    public init(mediaType: MediaType, digest: Digest, size: Int64, annotations: [String: String]? = nil, platform: Platform? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
        self.platform = platform
    }

    private static let known: Set<String> = ["mediaType", "digest", "size", "urls", "annotations", "platform", "artifactType"]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        mediaType = try c.decode(MediaType.self, forKey: AnyCodingKey("mediaType"))
        digest = try c.decode(Digest.self, forKey: AnyCodingKey("digest"))
        size = try c.decode(Int64.self, forKey: AnyCodingKey("size"))
        guard size >= 0 else {
            throw DecodingError.dataCorruptedError(forKey: AnyCodingKey("size"), in: c, debugDescription: "negative size")
        }
        urls = try c.decodeIfPresent([String].self, forKey: AnyCodingKey("urls"))
        annotations = try c.decodeIfPresent([String: String].self, forKey: AnyCodingKey("annotations"))
        platform = try c.decodeIfPresent(Platform.self, forKey: AnyCodingKey("platform"))
        artifactType = try c.decodeIfPresent(String.self, forKey: AnyCodingKey("artifactType"))
        unknownFields = try c.unknownFields(excluding: Descriptor.known)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyCodingKey.self)
        try c.encode(mediaType, forKey: AnyCodingKey("mediaType"))
        try c.encode(digest, forKey: AnyCodingKey("digest"))
        try c.encode(size, forKey: AnyCodingKey("size"))
        try c.encodeIfPresent(urls, forKey: AnyCodingKey("urls"))
        try c.encodeIfPresent(annotations, forKey: AnyCodingKey("annotations"))
        try c.encodeIfPresent(platform, forKey: AnyCodingKey("platform"))
        try c.encodeIfPresent(artifactType, forKey: AnyCodingKey("artifactType"))
        for (key, value) in unknownFields { try c.encode(value, forKey: AnyCodingKey(key)) }
    }

    /// The value of `org.opencontainers.image.ref.name`, if any.
    public var refName: String? { annotations?[Descriptor.refNameAnnotation] }
}
