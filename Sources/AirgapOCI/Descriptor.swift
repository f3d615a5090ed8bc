/// A content descriptor: media type, digest and size of a blob, plus optional metadata.
/// Fields this tool does not model are kept in `unknownFields` and written back unchanged.
public struct Descriptor: Hashable, Sendable, Codable {
    public var mediaType: MediaType
    public var digest: Digest
    public var size: Int64
    public var urls: [String]? {
        get { extras?.fields.urls }
        set { change { $0.urls = newValue } }
    }
    public var annotations: [String: String]? {
        get { extras?.fields.annotations }
        set { change { $0.annotations = newValue } }
    }
    public var platform: Platform? {
        get { extras?.fields.platform }
        set { change { $0.platform = newValue } }
    }
    public var artifactType: String? {
        get { extras?.fields.artifactType }
        set { change { $0.artifactType = newValue } }
    }
    public var unknownFields: [String: JSONValue] {
        get { extras?.fields.unknownFields ?? [:] }
        set { change { $0.unknownFields = newValue } }
    }

    /// The optional fields, in a box that most descriptors (configs, layers) do without: a plan
    /// of 10,000 images holds a few hundred thousand descriptors, 56 bytes each this way instead
    /// of 160. The box is never changed in place, so copies stay independent.
    private var extras: Extras?
    private struct ExtraFields: Hashable, Sendable {
        var urls: [String]?
        var annotations: [String: String]?
        var platform: Platform?
        var artifactType: String?
        var unknownFields: [String: JSONValue] = [:]
        var isEmpty: Bool { urls == nil && annotations == nil && platform == nil && artifactType == nil && unknownFields.isEmpty }
    }
    private final class Extras: Sendable {
        let fields: ExtraFields
        init(_ fields: ExtraFields) { self.fields = fields }
    }
    private mutating func change(_ body: (inout ExtraFields) -> Void) {
        var fields = extras?.fields ?? ExtraFields()
        body(&fields)
        extras = fields.isEmpty ? nil : Extras(fields)
    }

    public static func == (a: Descriptor, b: Descriptor) -> Bool {
        a.mediaType == b.mediaType && a.digest == b.digest && a.size == b.size && a.extras?.fields == b.extras?.fields
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(mediaType)
        hasher.combine(digest)
        hasher.combine(size)
        hasher.combine(extras?.fields)
    }

    public static let refNameAnnotation = "org.opencontainers.image.ref.name"
    public static let containerdNameAnnotation = "io.containerd.image.name"

    public init(mediaType: MediaType, digest: Digest, size: Int64, annotations: [String: String]? = nil, platform: Platform? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        let fields = ExtraFields(annotations: annotations, platform: platform)
        extras = fields.isEmpty ? nil : Extras(fields)
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
        let fields = ExtraFields(urls: try c.decodeIfPresent([String].self, forKey: AnyCodingKey("urls")),
                                 annotations: try c.decodeIfPresent([String: String].self, forKey: AnyCodingKey("annotations")),
                                 platform: try c.decodeIfPresent(Platform.self, forKey: AnyCodingKey("platform")),
                                 artifactType: try c.decodeIfPresent(String.self, forKey: AnyCodingKey("artifactType")),
                                 unknownFields: try c.unknownFields(excluding: Descriptor.known))
        extras = fields.isEmpty ? nil : Extras(fields)
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
