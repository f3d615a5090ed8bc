import Foundation

/// The parts of an image configuration this tool reads; the whole document stays available as `raw`.
public struct ImageConfig: Sendable {
    public struct RootFS: Codable, Sendable, Hashable {
        public var type: String
        public var diffIDs: [Digest]
        enum CodingKeys: String, CodingKey { case type; case diffIDs = "diff_ids" }
        public init(diffIDs: [Digest]) { type = "layers"; self.diffIDs = diffIDs }
    }

    public struct History: Codable, Sendable, Hashable {
        public var created: String?
        public var createdBy: String?
        public var author: String?
        public var comment: String?
        public var emptyLayer: Bool?
        enum CodingKeys: String, CodingKey {
            case created, author, comment
            case createdBy = "created_by"
            case emptyLayer = "empty_layer"
        }
        public init(created: String?, createdBy: String?, comment: String? = nil, emptyLayer: Bool? = nil) {
            self.created = created; self.createdBy = createdBy; self.comment = comment; self.emptyLayer = emptyLayer
        }
    }

    private struct Fields: Decodable {
        var architecture: String?
        var os: String?
        var variant: String?
        var created: String?
        var author: String?
        var rootfs: RootFS?
        var history: [History]?
    }

    public var architecture: String
    public var os: String
    public var variant: String?
    public var created: String?
    public var author: String?
    public var rootfs: RootFS
    public var history: [History]
    public var raw: JSONValue

    public static func decode(_ data: Data, what: String = "image config") throws -> ImageConfig {
        let fields = try CanonicalJSON.decode(Fields.self, from: data, what: what)
        let raw = try CanonicalJSON.decode(JSONValue.self, from: data, what: what)
        return ImageConfig(architecture: fields.architecture ?? "", os: fields.os ?? "", variant: fields.variant,
                           created: fields.created, author: fields.author,
                           rootfs: fields.rootfs ?? RootFS(diffIDs: []), history: fields.history ?? [], raw: raw)
    }

    public var platform: Platform { Platform(os: os, architecture: architecture, variant: variant) }

    /// `created` as a date (RFC 3339 with optional fractional seconds).
    public var createdDate: Date? { created.flatMap(parseRFC3339) }
}

public func parseRFC3339(_ text: String) -> Date? {
    let plain = ISO8601DateFormatter()
    plain.formatOptions = [.withInternetDateTime]
    if let d = plain.date(from: text) { return d }
    // Go writes up to 9 fractional digits; Foundation takes 3, so trim the rest.
    var trimmed = text
    if let dot = text.firstIndex(of: "."), let end = text[dot...].firstIndex(where: { !$0.isNumber && $0 != "." }) {
        let fraction = text[text.index(after: dot)..<end].prefix(3)
        trimmed = String(text[..<dot]) + "." + fraction + String(text[end...])
    }
    let fractional = ISO8601DateFormatter()
    fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return fractional.date(from: trimmed)
}
