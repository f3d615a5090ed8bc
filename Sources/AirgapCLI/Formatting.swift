import AirgapContent
import AirgapOCI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Output the way Docker prints it.
enum Format {
    /// go-units HumanSize: decimal units, 3 significant digits ("72.8MB", "0B").
    static func size(_ bytes: Int64) -> String { ByteCount.human(bytes) }

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

    /// Columns padded like Go's tabwriter with Docker's settings (minimum width 10, padding 3).
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        tabwriter(([header] + rows).map { $0.joined(separator: "\t") })
    }

    /// Go's tabwriter as Docker sets it up (`NewWriter(out, 10, 1, 3, ' ', 0)`): a cell is text
    /// ended by a tab; a column is as wide as its widest cell plus 3, and at least 10; the text
    /// after a line's last tab is not aligned.
    static func tabwriter(_ lines: [String]) -> String {
        let cells = lines.map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        var widths: [Int] = []
        for row in cells {
            for (i, cell) in row.dropLast().enumerated() {
                if i == widths.count { widths.append(0) }
                widths[i] = max(widths[i], cell.count)
            }
        }
        return cells.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: max(widths[i] + 3, 10), withPad: " ", startingAt: 0)
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

    /// Go's `time.Time.String()` in UTC, as Docker's `CreatedAt` prints it.
    static func goTime(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss Z"
        return f.string(from: date) + " UTC"
    }

    static func rfc3339(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }
}

/// `--format` as Docker reads it: `table` (the default columns), `json` (one object a line),
/// `table TEMPLATE` (a header from the field names, then aligned rows), or a Go template.
struct OutputFormat {
    private let template: GoTemplate
    private let isTable: Bool
    private let headers: [String: String]

    /// `fields` maps each field a row has to its column header; `defaultColumns` are the fields
    /// the plain table shows.
    init(_ text: String, fields: [String: String], defaultColumns: [String]) throws {
        headers = fields
        var source = text
        if text == "table" || text.isEmpty {
            source = "table " + defaultColumns.map { "{{.\($0)}}" }.joined(separator: "\t")
        } else if text == "json" {
            source = "{{json .}}"
        } else if !text.contains("{{") {
            throw CommandError(.usage, "--format must be table, json or a Go template such as '{{.\(defaultColumns.first ?? "ID")}}', not '\(text)'")
        }
        isTable = source.hasPrefix("table")
        if isTable { source = String(source.dropFirst(5)) }
        // Docker trims the spaces around the template and reads \t and \n typed in the shell as tab and newline.
        source = source.trimmingCharacters(in: .whitespaces)
            .replacingOccurrences(of: "\\t", with: "\t").replacingOccurrences(of: "\\n", with: "\n")
        do { template = try GoTemplate(source, rootFields: Set(fields.keys)) }
        catch { throw CommandError(.usage, "the --format template cannot be read: \(error)") }
    }

    /// The whole output, a line per row (and the header first for a table).
    func render(_ rows: [[String: JSONValue]]) throws -> String {
        do {
            var lines: [String] = []
            if isTable {
                let header = Dictionary(uniqueKeysWithValues: headers.map { ($0.key, JSONValue.string($0.value)) })
                lines.append(try template.render(.object(header)))
            }
            for row in rows { lines.append(TemplateOutput.printable(try template.render(.object(row)))) }
            if isTable { return Format.tabwriter(lines.joined(separator: "\n").components(separatedBy: "\n")) }
            return lines.joined(separator: "\n")
        } catch let error as GoTemplate.Failure {
            throw CommandError(.usage, "the --format template failed: \(error)")
        }
    }

    /// Prints the rendering; nothing at all for no rows, unless it is a table (its header stays).
    func print(_ rows: [[String: JSONValue]]) throws {
        let text = try render(rows)
        if !text.isEmpty || isTable { Swift.print(text) }
    }
}

/// Where a command will write, checked before any network or long work: a missing or unwritable
/// directory, or a directory given as the file, is said at once, in one sentence.
enum OutputPath {
    static func check(_ path: String, option: String) throws {
        if path == "-" { return }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw CommandError(.usage, "\(option) \(path) is a directory; give the file to write")
        }
        let parent = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CommandError(.failure, "the directory \(parent) for \(option) \(path) does not exist; create it or choose another path (nothing was done)")
        }
        guard access(parent, W_OK) == 0 else {
            throw CommandError(.failure, "cannot write \(path): the directory \(parent) is not writable (\(String(cString: strerror(errno)).lowercased())); choose a writable location (nothing was done)")
        }
    }
}

/// What a Go template renders from an image's own fields (labels, names, history a registry or
/// an archive chose) goes to a terminal: the control characters in it (ESC, CR, backspace, C1)
/// are spelled out as `\xNN`, so a label cannot move the cursor or rewrite lines. Tabs and
/// newlines stay (templates write them); JSON output escapes them already.
enum TemplateOutput {
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if isControl(scalar) { out += String(format: "\\x%02x", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        return (v < 0x20 && v != 0x09 && v != 0x0a) || (0x7f...0x9f).contains(v)
    }
}
