import Foundation

/// An image manifest: OCI image manifest or Docker schema 2 manifest (same shape).
public struct ImageManifest: Hashable, Sendable, Codable {
    public var schemaVersion: Int
    public var mediaType: MediaType?
    public var artifactType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
    public var subject: Descriptor?
    public var annotations: [String: String]?

    public init(mediaType: MediaType, config: Descriptor, layers: [Descriptor], annotations: [String: String]? = nil) {
        schemaVersion = 2
        self.mediaType = mediaType
        self.config = config
        self.layers = layers
        self.annotations = annotations
    }

    private enum CodingKeys: String, CodingKey { case schemaVersion, mediaType, artifactType, config, layers, subject, annotations }

    /// `"layers": null` (buildkit writes it for zero-layer images, inside the digest) reads as no
    /// layers; the bytes themselves are never re-encoded.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion)
        mediaType = try c.decodeIfPresent(MediaType.self, forKey: .mediaType)
        artifactType = try c.decodeIfPresent(String.self, forKey: .artifactType)
        config = try c.decode(Descriptor.self, forKey: .config)
        layers = try c.decodeIfPresent([Descriptor].self, forKey: .layers) ?? []
        subject = try c.decodeIfPresent(Descriptor.self, forKey: .subject)
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations)
    }

    /// Decodes manifest bytes, checking the fields that make it an image manifest.
    public static func decode(_ data: Data, what: String = "image manifest") throws -> ImageManifest {
        let manifest = try CanonicalJSON.decode(ImageManifest.self, from: data, what: what)
        guard manifest.schemaVersion == 2 else {
            throw OCIError.invalidDocument(what, reason: "schemaVersion is \(manifest.schemaVersion), expected 2")
        }
        return manifest
    }

    /// Config first, then layers: every blob this manifest needs.
    public var blobs: [Descriptor] { [config] + layers }
}

/// An image index: OCI index or Docker manifest list (same shape).
public struct ImageIndex: Hashable, Sendable, Codable {
    public var schemaVersion: Int
    public var mediaType: MediaType?
    public var artifactType: String?
    public var manifests: [Descriptor]
    public var subject: Descriptor?
    public var annotations: [String: String]?

    public init(mediaType: MediaType? = .ociIndex, manifests: [Descriptor], annotations: [String: String]? = nil) {
        schemaVersion = 2
        self.mediaType = mediaType
        self.manifests = manifests
        self.annotations = annotations
    }

    public static func decode(_ data: Data, what: String = "image index") throws -> ImageIndex {
        let index = try CanonicalJSON.decode(ImageIndex.self, from: data, what: what)
        guard index.schemaVersion == 2 else {
            throw OCIError.invalidDocument(what, reason: "schemaVersion is \(index.schemaVersion), expected 2")
        }
        return index
    }
}

/// Reads the media type a manifest declares about itself, to choose how to decode it.
public func detectManifestMediaType(_ data: Data) -> MediaType? {
    struct Probe: Decodable { var mediaType: MediaType?; var manifests: [JSONValue]?; var config: JSONValue? }
    guard let probe = try? JSONDecoder().decode(Probe.self, from: data) else { return nil }
    if let type = probe.mediaType { return type }
    if probe.manifests != nil { return .ociIndex }
    if probe.config != nil { return .ociManifest }
    return nil
}
