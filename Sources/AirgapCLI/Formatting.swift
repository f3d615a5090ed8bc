import AirgapOCI
import Foundation

/// Output the way Docker prints it.
enum Format {
    /// go-units HumanSize: decimal units, 3 significant digits ("72.8MB", "0B").
    static func size(_ bytes: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB", "PB"]
        var value = Double(bytes)
        var i = 0
        while value >= 1000 && i < units.count - 1 { value /= 1000; i += 1 }
        var text = String(format: "%.3g", value)
        if text.contains("e") { text = String(format: "%.0f", value) }
        return text + units[i]
    }

    /// go-units HumanDuration, used as "X ago".
    static func since(_ date: Date?, now: Date = Date()) -> String {
        // Go's zero time (0001-01-01, what cosign and go-containerregistry write) is no date at all.
        guard let date, date.timeIntervalSince1970 > 0 else { return "N/A" }
        let seconds = Int(now.timeIntervalSince(date))
        if seconds < 0 { return "Less than a second ago" }
        let text: String
        let minutes = Int((Double(seconds) / 60).rounded())
        let hours = Int((Double(seconds) / 3600).rounded())
        if seconds < 1 { text = "Less than a second" }
        else if seconds == 1 { text = "1 second" }
        else if seconds < 60 { text = "\(seconds) seconds" }
        else if minutes == 1 { text = "About a minute" }
        else if minutes < 60 { text = "\(minutes) minutes" }
        else if hours == 1 { text = "About an hour" }
        else if hours < 48 { text = "\(hours) hours" }
        else if hours < 24 * 7 * 2 { text = "\(hours / 24) days" }
        else if hours < 24 * 30 * 2 { text = "\(hours / 24 / 7) weeks" }
        else if hours < 24 * 365 * 2 { text = "\(hours / 24 / 30) months" }
        else { text = "\(hours / 24 / 365) years" }
        return text + " ago"
    }

    /// Columns padded like Go's tabwriter with Docker's settings (padding 3).
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for row in all { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        return all.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i] + 3, withPad: " ", startingAt: 0)
            }.joined()
        }.joined(separator: "\n")
    }

    static func json(_ value: some Encodable, pretty: Bool = true) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "null"
    }

    /// JSON laid out the way `docker inspect` prints it: four-space indents, `"key": value`.
    static func dockerJSON(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "    "
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : String(d)
        case .string(let s): return quoted(s)
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { inner + dockerJSON($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            return "{\n" + fields.keys.sorted().map { inner + quoted($0) + ": " + dockerJSON(fields[$0]!, indent: inner) }
                .joined(separator: ",\n") + "\n" + indent + "}"
        }
    }

    private static func quoted(_ s: String) -> String {
        // The encoder escapes exactly what JSON needs; the result is one string literal.
        let data = (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\\/", with: "/")
    }

    static func rfc3339(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }
}
