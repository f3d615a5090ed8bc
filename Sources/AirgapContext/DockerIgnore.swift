import Foundation

/// `.dockerignore` as Docker's builder reads it (moby/patternmatcher and the dockerignore reader):
/// one pattern a line, `#` comments, surrounding blanks trimmed, each pattern cleaned like a path
/// (`./a/../b` → `b`, a leading `/` dropped), `!` for exceptions; `*` and `?` stay within one path
/// element, `**` crosses any number of them (none included), `\` escapes; the last pattern that
/// matches a path, or any of its parent directories, decides.
public struct DockerIgnore: Sendable {
    public struct Pattern: Sendable {
        public let text: String
        public let exclusion: Bool
        let regex: NSRegularExpressionBox
    }

    public let patterns: [Pattern]

    public init(_ text: String) throws {
        var patterns: [Pattern] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasSuffix("\r") { line.removeLast() }
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            var exclusion = false
            if line.hasPrefix("!") {
                exclusion = true
                line = String(line.dropFirst()).trimmingCharacters(in: .whitespaces)
            }
            guard !line.isEmpty else { throw ContextError("illegal exclusion pattern: \"!\" in .dockerignore") }
            let cleaned = Self.clean(line)
            patterns.append(Pattern(text: cleaned, exclusion: exclusion, regex: try NSRegularExpressionBox(Self.regex(for: cleaned))))
        }
        self.patterns = patterns
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out of the context.
    public func excludes(_ path: String) -> Bool {
        let file = Self.clean(path)
        let parents = file.split(separator: "/").dropLast().map(String.init)
        var excluded = false
        for pattern in patterns {
            var match = pattern.regex.matches(file)
            if !match {
                for i in parents.indices {
                    if pattern.regex.matches(parents[...i].joined(separator: "/")) { match = true; break }
                }
            }
            if match { excluded = !pattern.exclusion }
        }
        return excluded
    }

    /// Whether any exception pattern could re-include something below `directory`: if none can,
    /// an excluded directory is skipped whole (as Docker's walker does).
    public func mayReinclude(below directory: String) -> Bool {
        patterns.contains { $0.exclusion && ($0.text.hasPrefix(directory + "/") || $0.text.contains("*") || $0.text.contains("?") || $0.text.contains("[")) }
    }

    /// Go's filepath.Clean on a `/`-separated path, and a leading `/` dropped.
    static func clean(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                if let last = parts.last, last != ".." { parts.removeLast() } else if !path.hasPrefix("/") { parts.append(part) }
                continue
            }
            parts.append(part)
        }
        let joined = parts.joined(separator: "/")
        return joined.isEmpty ? "." : joined
    }

    /// patternmatcher's translation of a pattern to an anchored regular expression.
    static func regex(for pattern: String) -> String {
        var out = "^"
        var chars = Array(pattern)[...]
        while let ch = chars.popFirst() {
            switch ch {
            case "*":
                if chars.first == "*" {
                    chars.removeFirst()
                    if chars.first == "/" { chars.removeFirst() }
                    out += chars.isEmpty ? ".*" : "(.*/)?"
                } else {
                    out += "[^/]*"
                }
            case "?": out += "[^/]"
            case "\\":
                if let next = chars.popFirst() { out += NSRegularExpression.escapedPattern(for: String(next)) } else { out += "\\\\" }
            case ".", "$", "+", "(", ")", "{", "}", "|", "^":
                out += "\\" + String(ch)
            default: out += String(ch)
            }
        }
        return out + "$"
    }
}

/// NSRegularExpression is not Sendable; a compiled pattern is only read.
final class NSRegularExpressionBox: @unchecked Sendable {
    let regex: NSRegularExpression
    init(_ pattern: String) throws {
        do { regex = try NSRegularExpression(pattern: pattern) } catch {
            throw ContextError("a .dockerignore pattern is not valid (\(pattern)): fix its brackets or escape them with \\")
        }
    }
    func matches(_ text: String) -> Bool {
        regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}

public struct ContextError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
