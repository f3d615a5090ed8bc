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

public func parseRFC3339(_ text: String) -> Date? { RFC3339.parse(text) }

/// RFC 3339 timestamps (`2026-12-07T01:20:00Z`, Go's up to nine fractional digits, offsets), by
/// hand: Foundation's ISO 8601 formatter loads ICU's calendar data, megabytes of it, to read or
/// write one UTC timestamp.
public enum RFC3339 {
    /// `YYYY-MM-DDTHH:MM:SSZ` for whole seconds since 1970.
    public static func format(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let year = String(parts.tm_year + 1900)
        return "\(String(repeating: "0", count: max(0, 4 - year.count)))\(year)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    public static func parse(_ text: String) -> Date? {
        let b = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= b.count else { return nil }
            var n = 0
            for c in b[from..<from + count] {
                guard c >= 0x30 && c <= 0x39 else { return nil }
                n = n * 10 + Int(c - 0x30)
            }
            return n
        }
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
              let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60 else { return nil }
        var i = 19
        var fraction = 0.0
        if b[i] == UInt8(ascii: ".") {
            var scale = 0.1
            i += 1
            let start = i
            while i < b.count, b[i] >= 0x30 && b[i] <= 0x39 { fraction += Double(b[i] - 0x30) * scale; scale /= 10; i += 1 }
            guard i > start else { return nil }
        }
        guard i < b.count else { return nil }
        var offset = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard i + 6 == b.count, b[i + 3] == UInt8(ascii: ":"), let h = number(i + 1, 2), let m = number(i + 4, 2), h < 24, m < 60 else { return nil }
            offset = (h * 3600 + m * 60) * (b[i] == UInt8(ascii: "+") ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900); parts.tm_mon = Int32(month - 1); parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour); parts.tm_min = Int32(minute); parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        // timegm normalises 31 February into March: a date that moved was not a date.
        guard parts.tm_mday == Int32(day), parts.tm_mon == Int32(month - 1) else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(Int64(seconds) - Int64(offset)) + fraction)
    }
}
