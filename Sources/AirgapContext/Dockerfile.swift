import Foundation

/// What a Dockerfile needs from registries, read as Docker's frontend reads it: parser directives
/// (`# escape=`), line continuations (with comment lines inside them dropped), heredocs skipped,
/// `ARG` before the first `FROM` with build arguments substituted (`$A`, `${A}`, `${A:-x}`,
/// `${A:+x}`), `FROM [--platform=…] IMAGE [AS name]`, `COPY|ADD --from=…` and
/// `RUN --mount=…,from=…`; stage names and `scratch` are no images.
public struct Dockerfile: Sendable, Equatable {
    public struct Stage: Sendable, Equatable {
        public var name: String?
        public var base: String
        public var platform: String?
        public var line: Int
    }
    /// Where the Dockerfile names an image it pulls: the physical lines of the instruction, the
    /// text as written (`$BASE`, `alpine:3.19`) and what it names once arguments are substituted.
    public struct ImageSite: Sendable, Equatable {
        public enum Kind: Sendable, Equatable { case syntax, from, copyFrom, mountFrom }
        public var kind: Kind
        public var lines: Range<Int>
        public var written: String
        public var image: String
    }
    public var stages: [Stage]
    /// Every image the build pulls, each once, in the order the Dockerfile names them.
    public var externalImages: [String]
    public var sites: [ImageSite] = []

    public static func parse(_ text: String, buildArgs: [String: String] = [:], path: String = "Dockerfile") throws -> Dockerfile {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
        var escape: Character = "\\"
        var index = 0
        // Parser directives: only at the very top, before any other line.
        var images: [String] = []
        var sites: [ImageSite] = []
        while index < lines.count, let directive = Self.directive(lines[index]) {
            if directive.0 == "escape" {
                guard directive.1 == "\\" || directive.1 == "`" else { throw ContextError("\(path):\(index + 1): escape must be \\ or `, not \(directive.1)") }
                escape = directive.1.first!
            } else if directive.0 == "syntax", !directive.1.isEmpty {
                // BuildKit pulls the frontend image the directive names before reading the rest.
                images.append(directive.1)
                sites.append(ImageSite(kind: .syntax, lines: index..<(index + 1), written: directive.1, image: directive.1))
            }
            index += 1
        }
        var globals: [String: String?] = [:]
        var stages: [Stage] = []
        var instruction = 0..<0
        func addImage(_ image: String, _ kind: ImageSite.Kind, written: String) {
            if !images.contains(image) { images.append(image) }
            sites.append(ImageSite(kind: kind, lines: instruction, written: written, image: image))
        }
        func isStage(_ name: String) -> Bool {
            stages.contains { $0.name?.lowercased() == name.lowercased() } || Int(name).map { $0 >= 0 && $0 < stages.count } == true
        }

        while index < lines.count {
            let first = index + 1
            let trimmed = lines[index].trimmingCharacters(in: .whitespaces)
            index += 1
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            // Continuations: a line ending in the escape character goes on; comment lines inside are dropped.
            var logical = trimmed
            while logical.last == escape {
                logical.removeLast()
                var next: String?
                while index < lines.count {
                    let candidate = lines[index].trimmingCharacters(in: .whitespaces)
                    index += 1
                    if candidate.hasPrefix("#") || candidate.isEmpty { continue }
                    next = candidate
                    break
                }
                guard let next else { break }
                logical += " " + next
            }
            let (keyword, rest) = Self.split(logical)
            instruction = (first - 1)..<index
            // Heredoc bodies follow the instruction's lines; they hold no instructions.
            if ["RUN", "COPY", "ADD"].contains(keyword) {
                for (word, stripTabs) in Self.heredocs(rest) {
                    while index < lines.count {
                        let body = stripTabs ? String(lines[index].drop { $0 == "\t" }) : lines[index]
                        index += 1
                        if body == word { break }
                    }
                }
            }
            let where_ = "\(path):\(first)"
            if stages.isEmpty && keyword != "ARG" && keyword != "FROM" {
                throw ContextError("\(where_): \(keyword) before the first FROM (only ARG may come first)")
            }
            switch keyword {
            case "ARG" where stages.isEmpty:
                for token in Self.tokens(rest) {
                    let parts = token.split(separator: "=", maxSplits: 1).map(String.init)
                    globals[parts[0]] = parts.count == 2 ? Self.unquote(parts[1]) : .some(nil)
                }
            case "FROM":
                var tokens = Self.tokens(rest)
                var platform: String?
                while let flag = tokens.first, flag.hasPrefix("--") {
                    tokens.removeFirst()
                    if flag.lowercased().hasPrefix("--platform=") { platform = String(flag.dropFirst("--platform=".count)) }
                }
                guard let raw = tokens.first else { throw ContextError("\(where_): FROM names no image") }
                var name: String?
                if tokens.count >= 3, tokens[1].lowercased() == "as" { name = tokens[2] }
                else if tokens.count != 1 { throw ContextError("\(where_): FROM takes IMAGE [AS name], not '\(rest)'") }
                let base = try Self.expand(raw, globals: globals, buildArgs: buildArgs, at: where_)
                guard !base.isEmpty else { throw ContextError("\(where_): FROM \(raw) names no image once its arguments are substituted; set them with buildArgs") }
                // BuildKit's automatic platform ARGs ($BUILDPLATFORM, $TARGETPLATFORM) are the builder's to set: kept as written.
                let resolvedPlatform = try platform.map { raw in
                    let expanded = try Self.expand(raw, globals: globals, buildArgs: buildArgs, at: where_)
                    return expanded.isEmpty ? raw : expanded
                }
                if base.lowercased() != "scratch" && !isStage(base) { addImage(base, .from, written: raw) }
                stages.append(Stage(name: name, base: base, platform: resolvedPlatform, line: first))
            case "COPY", "ADD":
                for token in Self.tokens(rest) where token.lowercased().hasPrefix("--from=") {
                    let written = String(token.dropFirst("--from=".count))
                    let from = try Self.expand(written, globals: globals, buildArgs: buildArgs, at: where_)
                    if !isStage(from) { addImage(from, .copyFrom, written: written) }
                }
            case "RUN":
                for token in Self.tokens(rest) where token.lowercased().hasPrefix("--mount=") {
                    for option in token.dropFirst("--mount=".count).split(separator: ",") where option.lowercased().hasPrefix("from=") {
                        let written = String(option.dropFirst("from=".count))
                        let from = try Self.expand(written, globals: globals, buildArgs: buildArgs, at: where_)
                        if !isStage(from) { addImage(from, .mountFrom, written: written) }
                    }
                }
            default: continue
            }
        }
        guard !stages.isEmpty else { throw ContextError("\(path): no FROM instruction") }
        return Dockerfile(stages: stages, externalImages: images, sites: sites)
    }

    /// The Dockerfile with every image it pulls replaced by `replacement(image)` (a pinned name in
    /// the internal registry), everything else byte for byte as written. Images the function
    /// returns nil for stay as written.
    public static func rewrite(_ text: String, buildArgs: [String: String] = [:], path: String = "Dockerfile",
                               replacement: (String) -> String?) throws -> String {
        let parsed = try parse(text, buildArgs: buildArgs, path: path)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var cursor: (line: Int, column: String.Index)?
        for site in parsed.sites {
            guard let new = replacement(site.image) else { continue }
            // Sites of one instruction come in order: each search starts after the previous one.
            var line = site.lines.lowerBound
            var from = lines[line].startIndex
            if let c = cursor, site.lines.contains(c.line) { line = c.line; from = c.column }
            var done = false
            while line < site.lines.upperBound && !done {
                if let range = Self.find(site.written, in: lines[line], from: from, after: site.kind == .from ? " \t" : site.kind == .syntax ? " \t=" : "=") {
                    lines[line].replaceSubrange(range, with: new)
                    cursor = (line, lines[line].index(range.lowerBound, offsetBy: new.count))
                    done = true
                } else {
                    line += 1
                    if line < lines.count { from = lines[line].startIndex }
                }
            }
            guard done else { throw ContextError("\(path):\(site.lines.lowerBound + 1): cannot find \(site.written) to point it at \(new)") }
        }
        return lines.joined(separator: "\n")
    }

    /// `word` as a whole token of `line` at or after `from`: preceded by one of `after` (or the
    /// line's start, for FROM) and followed by a blank, a comma or the end.
    static func find(_ word: String, in line: String, from: String.Index, after: String) -> Range<String.Index>? {
        var start = from
        while let range = line.range(of: word, range: start..<line.endIndex) {
            let before = range.lowerBound == line.startIndex ? nil : line[line.index(before: range.lowerBound)]
            let next = range.upperBound == line.endIndex ? nil : line[range.upperBound]
            let startsWell = before.map { after.contains($0) } ?? (after != "=")
            let endsWell = next.map { $0 == " " || $0 == "\t" || $0 == "," || $0 == "\\" } ?? true
            if startsWell && endsWell { return range }
            start = line.index(after: range.lowerBound)
        }
        return nil
    }

    static func directive(_ line: String) -> (String, String)? {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("#") else { return nil }
        let body = trimmed.dropFirst().trimmingCharacters(in: .whitespaces)
        guard let equals = body.firstIndex(of: "=") else { return nil }
        let key = body[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
        guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber }), key.first!.isLetter else { return nil }
        return (key, body[body.index(after: equals)...].trimmingCharacters(in: .whitespaces))
    }

    static func split(_ line: String) -> (String, String) {
        guard let space = line.firstIndex(where: { $0 == " " || $0 == "\t" }) else { return (line.uppercased(), "") }
        return (String(line[..<space]).uppercased(), line[space...].trimmingCharacters(in: .whitespaces))
    }

    /// Words separated by blanks; quotes group (and stay, for `unquote`).
    static func tokens(_ text: String) -> [String] {
        var tokens: [String] = [], current = "", quote: Character?
        for ch in text {
            if let q = quote {
                current.append(ch)
                if ch == q { quote = nil }
            } else if ch == "\"" || ch == "'" {
                quote = ch
                current.append(ch)
            } else if ch == " " || ch == "\t" {
                if !current.isEmpty { tokens.append(current); current = "" }
            } else {
                current.append(ch)
            }
        }
        if !current.isEmpty { tokens.append(current) }
        return tokens
    }

    static func unquote(_ text: String) -> String {
        if text.count >= 2, let first = text.first, first == "\"" || first == "'", text.last == first { return String(text.dropFirst().dropLast()) }
        return text
    }

    /// `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`: the words that end the bodies, in order.
    static func heredocs(_ text: String) -> [(String, Bool)] {
        var found: [(String, Bool)] = []
        var rest = Substring(text)
        while let range = rest.range(of: "<<") {
            var after = rest[range.upperBound...]
            let strip = after.first == "-"
            if strip { after = after.dropFirst() }
            var quote: Character?
            if let first = after.first, first == "\"" || first == "'" { quote = first; after = after.dropFirst() }
            let word = after.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            if !word.isEmpty {
                found.append((String(word), strip))
                after = after.dropFirst(word.count)
                if let quote, after.first == quote { after = after.dropFirst() }
            }
            rest = after
        }
        return found
    }

    /// Substitutes the global ARGs (a build argument wins over a declared default; undeclared
    /// names expand to nothing, as Docker does); an ARG declared without a default and not given
    /// is an error.
    static func expand(_ text: String, globals: [String: String?], buildArgs: [String: String], at location: String) throws -> String {
        /// nil: unset (undeclared, or declared without a default and not given).
        func value(_ name: String) -> String? {
            guard let declared = globals[name] else { return nil }
            return buildArgs[name] ?? declared
        }
        func required(_ name: String) throws -> String {
            if let declared = globals[name], declared == nil, buildArgs[name] == nil {
                throw ContextError("\(location): the ARG \(name) has no default and no build argument sets it; give it in buildArgs")
            }
            return value(name) ?? ""
        }
        var out = "", chars = Array(Self.unquote(text))[...]
        while let ch = chars.popFirst() {
            if ch == "\\", chars.first == "$" { out.append(chars.removeFirst()); continue }
            guard ch == "$", let next = chars.first else { out.append(ch); continue }
            if next == "{" {
                chars.removeFirst()
                let body = String(chars.prefix { $0 != "}" })
                chars = chars.dropFirst(body.count + 1)
                if let range = body.range(of: ":-") {
                    let v = value(String(body[..<range.lowerBound]))
                    out += (v?.isEmpty ?? true) ? String(body[range.upperBound...]) : v!
                } else if let range = body.range(of: ":+") {
                    let v = value(String(body[..<range.lowerBound]))
                    out += (v?.isEmpty ?? true) ? "" : String(body[range.upperBound...])
                } else {
                    out += try required(body)
                }
            } else if next.isLetter || next == "_" {
                let name = String(chars.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
                chars = chars.dropFirst(name.count)
                out += try required(name)
            } else {
                out.append(ch)
            }
        }
        return out
    }
}
