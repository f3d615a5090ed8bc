import AirgapOCI
import Foundation

/// The part of Go's text/template that Docker users write in `--format` and `inspect -f`:
/// `{{.Field.Chain}}`, pipelines, variables, `if`/`else if`/`else`, `range` (with `$i, $v :=`),
/// `with`, parentheses, `{{-` `-}}` trimming, comments, and the functions Docker adds (`json`,
/// `join`, `split`, `lower`, `upper`, `title`, `truncate`, `pad`, `println`) next to Go's own
/// (`index`, `len`, `printf`, `print`, `and`, `or`, `not`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`).
/// No maintained Swift package speaks this syntax (Stencil and swift-mustache are Jinja and
/// Mustache), so it is written here, on `JSONValue`: every object the commands format is one.
struct GoTemplate {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let nodes: [Node]
    /// Fields the root value must have: a name outside them is an error (as a Go struct's would be).
    private let rootFields: Set<String>?

    init(_ source: String, rootFields: Set<String>? = nil) throws {
        var parser = Parser(tokens: try Lexer.tokens(source))
        nodes = try parser.parseList(until: [])
        self.rootFields = rootFields
    }

    func render(_ data: JSONValue) throws -> String {
        var output = ""
        var context = Context(root: data, rootFields: rootFields)
        try context.run(nodes, dot: data, into: &output)
        return output
    }

    // MARK: syntax

    fileprivate indirect enum Node {
        case text(String)
        case action(Pipeline)
        case branch(kind: String, Pipeline, then: [Node], otherwise: [Node])
    }

    fileprivate struct Pipeline {
        var declarations: [String] = []
        var commands: [[Operand]] = []
    }

    fileprivate indirect enum Operand {
        case dot([String])
        case variable(String, [String])
        case literal(JSONValue)
        case function(String)
        case group(Pipeline, [String])
    }

    private enum Token: Equatable {
        case text(String)
        case action(String)
    }

    private enum Lexer {
        static func tokens(_ source: String) throws -> [Token] {
            var tokens: [Token] = []
            var rest = Substring(source)
            var trimNextText = false
            while let open = rest.range(of: "{{") {
                var text = String(rest[..<open.lowerBound])
                var inside = rest[open.upperBound...]
                let trimLeft = inside.hasPrefix("- ") || inside.hasPrefix("-\t") || inside.hasPrefix("-\n")
                if trimLeft { inside = inside.dropFirst(2); text = String(text.reversed().drop(while: \.isWhitespace).reversed()) }
                if trimNextText { text = String(text.drop(while: \.isWhitespace)) }
                if !text.isEmpty { tokens.append(.text(text)) }
                guard let close = closingBraces(in: inside) else {
                    throw Failure(description: "the template has a '{{' with no '}}' to close it")
                }
                var body = String(inside[..<close.lowerBound])
                trimNextText = false
                if body.hasSuffix(" -") || body.hasSuffix("\t-") || body.hasSuffix("\n-") { body.removeLast(2); trimNextText = true }
                let trimmed = body.trimmingCharacters(in: .whitespacesAndNewlines)
                if !(trimmed.hasPrefix("/*") && trimmed.hasSuffix("*/")) { tokens.append(.action(trimmed)) }
                rest = inside[close.upperBound...]
            }
            var text = String(rest)
            if trimNextText { text = String(text.drop(while: \.isWhitespace)) }
            if !text.isEmpty { tokens.append(.text(text)) }
            return tokens
        }

        /// The `}}` that ends an action, skipping any inside quoted strings.
        private static func closingBraces(in text: Substring) -> Range<Substring.Index>? {
            var i = text.startIndex
            var quote: Character?
            while i < text.endIndex {
                let c = text[i]
                if let q = quote {
                    if c == "\\" && q == "\"" { i = text.index(after: i); if i == text.endIndex { return nil } }
                    else if c == q { quote = nil }
                } else if c == "\"" || c == "`" {
                    quote = c
                } else if c == "}", text[i...].hasPrefix("}}") {
                    return i..<text.index(i, offsetBy: 2)
                }
                i = text.index(after: i)
            }
            return nil
        }
    }

    private struct Parser {
        var tokens: [Token]
        var position = 0

        /// Nodes up to one of the `keywords` (`end`, `else`…), which is left for the caller.
        mutating func parseList(until keywords: Set<String>) throws -> [Node] {
            var nodes: [Node] = []
            while position < tokens.count {
                switch tokens[position] {
                case .text(let text):
                    position += 1
                    nodes.append(.text(text))
                case .action(let body):
                    let word = body.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.map(String.init) ?? ""
                    if keywords.contains(word) { return nodes }
                    position += 1
                    switch word {
                    case "if", "range", "with":
                        nodes.append(try parseBranch(kind: word, header: String(body.dropFirst(word.count))))
                    case "end", "else":
                        throw Failure(description: "the template has {{\(word)}} with no {{if}}, {{range}} or {{with}} before it")
                    case "define", "template", "block", "break", "continue":
                        throw Failure(description: "{{\(word)}} is not supported in a --format template")
                    default:
                        nodes.append(.action(try PipelineParser.parse(body)))
                    }
                }
            }
            if !keywords.isEmpty { throw Failure(description: "the template ends before its {{end}}") }
            return nodes
        }

        mutating func parseBranch(kind: String, header: String) throws -> Node {
            let pipeline = try PipelineParser.parse(header)
            let then = try parseList(until: ["end", "else"])
            guard case .action(let body) = tokens[position] else { throw Failure(description: "the template ends before its {{end}}") }
            position += 1
            if body == "end" { return .branch(kind: kind, pipeline, then: then, otherwise: []) }
            let afterElse = body.dropFirst(4).trimmingCharacters(in: .whitespaces)
            if afterElse.hasPrefix("if ") || afterElse.hasPrefix("with ") {
                // `{{else if X}}` is `{{else}}{{if X}}…{{end}}{{end}}` sharing one {{end}}.
                let word = afterElse.hasPrefix("if ") ? "if" : "with"
                let nested = try parseBranch(kind: word, header: String(afterElse.dropFirst(word.count)))
                return .branch(kind: kind, pipeline, then: then, otherwise: [nested])
            }
            guard afterElse.isEmpty else { throw Failure(description: "unexpected '\(body)' in the template") }
            let otherwise = try parseList(until: ["end"])
            guard position < tokens.count else { throw Failure(description: "the template ends before its {{end}}") }
            position += 1
            return .branch(kind: kind, pipeline, then: then, otherwise: otherwise)
        }
    }

    /// One action's pipeline: `$a, $b := cmd arg | cmd`.
    private enum PipelineParser {
        static func parse(_ text: String) throws -> Pipeline {
            var words = try split(text)
            var pipeline = Pipeline()
            if let assign = words.firstIndex(of: ":=") ?? words.firstIndex(of: "=") {
                pipeline.declarations = words[..<assign].filter { $0 != "," }.map { $0.hasSuffix(",") ? String($0.dropLast()) : $0 }
                guard pipeline.declarations.allSatisfy({ $0.hasPrefix("$") }) else {
                    throw Failure(description: "'\(text)': only $variables can be declared")
                }
                words.removeFirst(assign + 1)
            }
            var command: [Operand] = []
            for word in words {
                if word == "|" {
                    guard !command.isEmpty else { throw Failure(description: "'\(text)': a '|' with nothing before it") }
                    pipeline.commands.append(command)
                    command = []
                } else {
                    command.append(try operand(word))
                }
            }
            guard !command.isEmpty else { throw Failure(description: "'\(text)': an empty command in the template") }
            pipeline.commands.append(command)
            return pipeline
        }

        static func operand(_ word: String) throws -> Operand {
            if word.hasPrefix("(") {
                // `(pipeline).Field`
                guard let close = matchingParen(word) else { throw Failure(description: "unbalanced parentheses in '\(word)'") }
                let inner = String(word[word.index(after: word.startIndex)..<close])
                let tail = word[word.index(after: close)...]
                return .group(try parse(inner), try fields(String(tail)))
            }
            if word == "." { return .dot([]) }
            if word.hasPrefix(".") { return .dot(try fields(word)) }
            if word.hasPrefix("$") {
                let name = String(word.prefix { $0 != "." })
                return .variable(name, try fields(String(word.dropFirst(name.count))))
            }
            if word.hasPrefix("\"") {
                guard let data = word.data(using: .utf8), let s = try? JSONDecoder().decode(String.self, from: data) else {
                    throw Failure(description: "the string \(word) in the template is not closed or holds a bad escape")
                }
                return .literal(.string(s))
            }
            if word.hasPrefix("`") { return .literal(.string(String(word.dropFirst().dropLast()))) }
            if word == "true" || word == "false" { return .literal(.bool(word == "true")) }
            if word == "nil" { return .literal(.null) }
            if let i = Int64(word) { return .literal(.int(i)) }
            if let d = Double(word), word.first?.isNumber == true || word.first == "-" { return .literal(.double(d)) }
            guard word.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw Failure(description: "'\(word)' is not something a template understands")
            }
            return .function(word)
        }

        static func fields(_ chain: String) throws -> [String] {
            guard !chain.isEmpty else { return [] }
            guard chain.hasPrefix(".") else { throw Failure(description: "'\(chain)' should start with a '.'") }
            let names = chain.dropFirst().split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard names.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } }) else {
                throw Failure(description: "'\(chain)' is not a field name")
            }
            return names
        }

        static func matchingParen(_ word: String) -> String.Index? {
            var depth = 0
            var quote: Character?
            var i = word.startIndex
            while i < word.endIndex {
                let c = word[i]
                if let q = quote { if c == "\\" && q == "\"" { i = word.index(after: i) } else if c == q { quote = nil } }
                else if c == "\"" || c == "`" { quote = c }
                else if c == "(" { depth += 1 }
                else if c == ")" { depth -= 1; if depth == 0 { return i } }
                if i < word.endIndex { i = word.index(after: i) }
            }
            return nil
        }

        /// Words of an action: quoted strings and parenthesised groups stay whole; `|` and `:=` stand alone.
        static func split(_ text: String) throws -> [String] {
            var words: [String] = []
            var current = ""
            var depth = 0
            var quote: Character?
            var chars = Array(text)[...]
            func flush() { if !current.isEmpty { words.append(current); current = "" } }
            while let c = chars.popFirst() {
                if let q = quote {
                    current.append(c)
                    if c == "\\" && q == "\"", let next = chars.popFirst() { current.append(next) }
                    else if c == q { quote = nil }
                    continue
                }
                switch c {
                case "\"", "`": quote = c; current.append(c)
                case "(": depth += 1; current.append(c)
                case ")":
                    depth -= 1
                    guard depth >= 0 else { throw Failure(description: "unbalanced parentheses in '\(text)'") }
                    current.append(c)
                case " ", "\t", "\n", "\r", ",":
                    if depth == 0 { flush() } else { current.append(c) }
                case "|":
                    if depth == 0 { flush(); words.append("|") } else { current.append(c) }
                case ":" where depth == 0 && chars.first == "=":
                    chars.removeFirst(); flush(); words.append(":=")
                default: current.append(c)
                }
            }
            guard quote == nil else { throw Failure(description: "a string in '\(text)' is not closed") }
            guard depth == 0 else { throw Failure(description: "unbalanced parentheses in '\(text)'") }
            flush()
            return words
        }
    }

    // MARK: evaluation

    private struct Context {
        let root: JSONValue
        let rootFields: Set<String>?
        var scopes: [[String: JSONValue]] = [[:]]

        init(root: JSONValue, rootFields: Set<String>?) {
            self.root = root
            self.rootFields = rootFields
            scopes = [["$": root]]
        }

        /// `dotIsRoot`: field names on the root are checked against `rootFields`.
        mutating func run(_ nodes: [Node], dot: JSONValue, dotIsRoot: Bool = true, into output: inout String) throws {
            for node in nodes {
                switch node {
                case .text(let text): output += text
                case .action(let pipeline):
                    let value = try evaluate(pipeline, dot: dot, dotIsRoot: dotIsRoot)
                    if pipeline.declarations.isEmpty { output += GoTemplate.print(value) }
                case .branch(let kind, let pipeline, let then, let otherwise):
                    scopes.append([:])
                    defer { scopes.removeLast() }
                    switch kind {
                    case "range":
                        let value = try evaluate(pipeline, dot: dot, dotIsRoot: dotIsRoot, declare: false)
                        let items: [(JSONValue, JSONValue)]
                        switch value {
                        case .array(let a): items = a.enumerated().map { (.int(Int64($0.offset)), $0.element) }
                        case .object(let o): items = o.keys.sorted().map { (.string($0), o[$0]!) }
                        case .null: items = []
                        case .int(let n): items = (0..<max(0, n)).map { (.int($0), .int($0)) }
                        default: throw Failure(description: "range can't iterate over \(GoTemplate.print(value))")
                        }
                        if items.isEmpty { try run(otherwise, dot: dot, dotIsRoot: dotIsRoot, into: &output); continue }
                        for (key, element) in items {
                            switch pipeline.declarations.count {
                            case 0: break
                            case 1: scopes[scopes.count - 1][pipeline.declarations[0]] = element
                            default:
                                scopes[scopes.count - 1][pipeline.declarations[0]] = key
                                scopes[scopes.count - 1][pipeline.declarations[1]] = element
                            }
                            try run(then, dot: element, dotIsRoot: false, into: &output)
                        }
                    default:
                        let value = try evaluate(pipeline, dot: dot, dotIsRoot: dotIsRoot)
                        if GoTemplate.truth(value) {
                            try run(then, dot: kind == "with" ? value : dot, dotIsRoot: kind == "with" ? false : dotIsRoot, into: &output)
                        } else {
                            try run(otherwise, dot: dot, dotIsRoot: dotIsRoot, into: &output)
                        }
                    }
                }
            }
        }

        mutating func evaluate(_ pipeline: Pipeline, dot: JSONValue, dotIsRoot: Bool, declare: Bool = true) throws -> JSONValue {
            var value: JSONValue?
            for command in pipeline.commands {
                value = try call(command, dot: dot, dotIsRoot: dotIsRoot, piped: value)
            }
            let result = value ?? .null
            if declare, let name = pipeline.declarations.first { scopes[scopes.count - 1][name] = result }
            return result
        }

        mutating func call(_ command: [Operand], dot: JSONValue, dotIsRoot: Bool, piped: JSONValue?) throws -> JSONValue {
            if case .function(let name) = command[0] {
                var arguments = try command.dropFirst().map { try value(of: $0, dot: dot, dotIsRoot: dotIsRoot) }
                if let piped { arguments.append(piped) }
                return try GoTemplate.function(name, arguments)
            }
            guard command.count == 1, piped == nil else {
                throw Failure(description: "only a function can take arguments in a template, not \(command.count > 1 ? "a value followed by others" : "a piped value")")
            }
            return try value(of: command[0], dot: dot, dotIsRoot: dotIsRoot)
        }

        mutating func value(of operand: Operand, dot: JSONValue, dotIsRoot: Bool) throws -> JSONValue {
            switch operand {
            case .dot(let fields): return try walk(dot, fields, fromRoot: dotIsRoot)
            case .variable(let name, let fields):
                guard let value = scopes.last(where: { $0[name] != nil })?[name] else {
                    throw Failure(description: "the template uses \(name) before it is declared")
                }
                return try walk(value, fields, fromRoot: name == "$")
            case .literal(let value): return value
            case .function(let name):
                return try GoTemplate.function(name, [])
            case .group(let pipeline, let fields):
                return try walk(try evaluate(pipeline, dot: dot, dotIsRoot: dotIsRoot), fields, fromRoot: false)
            }
        }

        private func walk(_ start: JSONValue, _ fields: [String], fromRoot: Bool) throws -> JSONValue {
            var value = start
            for (depth, field) in fields.enumerated() {
                guard case .object(let object) = value else {
                    if case .null = value { return .null }
                    throw Failure(description: "can't evaluate field \(field) in \(GoTemplate.print(value))")
                }
                if let next = object[field] { value = next; continue }
                if depth == 0, fromRoot, let rootFields, !rootFields.contains(field) {
                    throw Failure(description: "the template names .\(field), which is not a field here; use one of " +
                                  rootFields.sorted().map { "." + $0 }.joined(separator: ", "))
                }
                return .missing
            }
            return value
        }
    }

    // MARK: values

    /// Go's `%v` of a value, as text/template prints it.
    static func print(_ value: JSONValue) -> String {
        switch value {
        case .null: return "<nil>"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return goFloat(d)
        case .string(let s): return s == JSONValue.missingMarker ? "<no value>" : s
        case .array(let a): return "[" + a.map(print).joined(separator: " ") + "]"
        case .object(let o): return "map[" + o.keys.sorted().map { "\($0):\(print(o[$0]!))" }.joined(separator: " ") + "]"
        }
    }

    /// Go's `%v` for float64: the shortest representation, exponent for large and small values.
    private static func goFloat(_ d: Double) -> String {
        let exponent = d == 0 ? 0 : Int(floor(log10(abs(d))))
        if exponent < -4 || exponent >= 21 {
            var text = String(format: "%e", d)
            // Shortest mantissa, as Go's strconv 'g' with precision -1 prints it.
            let shortest = "\(d)"
            if let e = shortest.firstIndex(where: { $0 == "e" || $0 == "E" }) {
                let mantissa = shortest[..<e]
                let exp = Int(shortest[shortest.index(after: e)...]) ?? exponent
                text = "\(mantissa)e\(exp < 0 ? "-" : "+")\(String(format: "%02d", abs(exp)))"
            }
            return text
        }
        let text = "\(d)"
        return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
    }

    static func truth(_ value: JSONValue) -> Bool {
        switch value {
        case .null: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty && s != JSONValue.missingMarker
        case .array(let a): return !a.isEmpty
        case .object(let o): return !o.isEmpty
        }
    }

    /// Docker's `json` function: compact, no HTML escaping, keys sorted.
    static func json(_ value: JSONValue) -> String {
        if value == .missing { return "null" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "null"
    }

    private static func text(_ value: JSONValue) -> String {
        if case .string(let s) = value, s != JSONValue.missingMarker { return s }
        return print(value)
    }

    private static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    private static func compare(_ a: JSONValue, _ b: JSONValue, _ name: String) throws -> Int {
        if let x = number(a), let y = number(b) { return x < y ? -1 : (x > y ? 1 : 0) }
        if case .string(let x) = a, case .string(let y) = b { return x < y ? -1 : (x > y ? 1 : 0) }
        if name == "eq" || name == "ne" { return a == b ? 0 : 1 }
        throw Failure(description: "\(name) can't compare \(print(a)) with \(print(b))")
    }

    private static func function(_ name: String, _ args: [JSONValue]) throws -> JSONValue {
        func need(_ n: Int) throws {
            guard args.count == n else { throw Failure(description: "\(name) takes \(n) argument\(n == 1 ? "" : "s"), not \(args.count)") }
        }
        switch name {
        case "json": try need(1); return .string(json(args[0]))
        case "lower": try need(1); return .string(text(args[0]).lowercased())
        case "upper": try need(1); return .string(text(args[0]).uppercased())
        case "title":
            try need(1)
            return .string(text(args[0]).split(separator: " ", omittingEmptySubsequences: false)
                .map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: " "))
        case "join":
            try need(2)
            guard case .array(let items) = args[0] else { throw Failure(description: "join needs a list first, not \(print(args[0]))") }
            return .string(items.map(text).joined(separator: text(args[1])))
        case "split":
            try need(2)
            return .array(text(args[0]).components(separatedBy: text(args[1])).map(JSONValue.string))
        case "truncate":
            try need(2)
            guard let n = args[1].int64Value else { throw Failure(description: "truncate needs a length, not \(print(args[1]))") }
            return .string(String(text(args[0]).prefix(Int(max(0, n)))))
        case "pad":
            try need(3)
            guard let left = args[1].int64Value, let right = args[2].int64Value else { throw Failure(description: "pad needs two counts") }
            return .string(String(repeating: " ", count: Int(max(0, left))) + text(args[0]) + String(repeating: " ", count: Int(max(0, right))))
        case "len":
            try need(1)
            switch args[0] {
            case .string(let s): return .int(Int64(s.utf8.count))
            case .array(let a): return .int(Int64(a.count))
            case .object(let o): return .int(Int64(o.count))
            default: throw Failure(description: "len of \(print(args[0])) is not defined")
            }
        case "index":
            guard var value = args.first else { throw Failure(description: "index needs something to index") }
            for key in args.dropFirst() {
                switch (value, key) {
                case (.array(let a), _):
                    guard let i = key.int64Value, i >= 0, i < a.count else { throw Failure(description: "index \(print(key)) out of range") }
                    value = a[Int(i)]
                case (.object(let o), .string(let k)): value = o[k] ?? .missing
                case (.null, _): return .null
                default: throw Failure(description: "can't index \(print(value)) with \(print(key))")
                }
            }
            return value
        case "print": return .string(args.map(text).joined(separator: ""))
        case "println": return .string(args.map(text).joined(separator: " ") + "\n")
        case "printf":
            guard case .string(let format)? = args.first else { throw Failure(description: "printf needs a format string first") }
            return .string(GoPrintf.format(format, Array(args.dropFirst())))
        case "not": try need(1); return .bool(!truth(args[0]))
        case "and":
            guard !args.isEmpty else { throw Failure(description: "and needs arguments") }
            return args.first { !truth($0) } ?? args.last!
        case "or":
            guard !args.isEmpty else { throw Failure(description: "or needs arguments") }
            return args.first(where: truth) ?? args.last!
        case "eq":
            guard args.count >= 2 else { throw Failure(description: "eq needs two arguments") }
            return .bool(try args.dropFirst().contains { try compare(args[0], $0, name) == 0 })
        case "ne": try need(2); return .bool(try compare(args[0], args[1], name) != 0)
        case "lt": try need(2); return .bool(try compare(args[0], args[1], name) < 0)
        case "le": try need(2); return .bool(try compare(args[0], args[1], name) <= 0)
        case "gt": try need(2); return .bool(try compare(args[0], args[1], name) > 0)
        case "ge": try need(2); return .bool(try compare(args[0], args[1], name) >= 0)
        default:
            throw Failure(description: "the template calls \(name), which is not a function here (json, join, split, lower, upper, title, truncate, pad, index, len, printf, print, println, and, or, not, eq, ne, lt, le, gt, ge)")
        }
    }

    fileprivate static func printText(_ value: JSONValue) -> String { text(value) }
}

extension JSONValue {
    /// A map key that is not there: Go prints `<no value>`, and `json` of it is `null`.
    fileprivate static let missingMarker = "\u{0}<no value>\u{0}"
    fileprivate static let missing = JSONValue.string(missingMarker)
}

/// The `printf` verbs templates use: %s %v %d %q %x %f %t %%, with flags, width and precision.
private enum GoPrintf {
    static func format(_ format: String, _ args: [JSONValue]) -> String {
        var output = ""
        var next = 0
        var chars = Array(format)[...]
        while let c = chars.popFirst() {
            guard c == "%" else { output.append(c); continue }
            var flags = ""
            while let f = chars.first, "-+ 0#".contains(f) { flags.append(f); chars.removeFirst() }
            var width = ""
            while let d = chars.first, d.isNumber { width.append(d); chars.removeFirst() }
            var precision: Int?
            if chars.first == "." {
                chars.removeFirst()
                var p = ""
                while let d = chars.first, d.isNumber { p.append(d); chars.removeFirst() }
                precision = Int(p) ?? 0
            }
            guard let verb = chars.popFirst() else { output += "%!(NOVERB)"; break }
            if verb == "%" { output.append("%"); continue }
            guard next < args.count else { output += "%!\(verb)(MISSING)"; continue }
            let arg = args[next]
            next += 1
            var piece: String
            switch verb {
            case "d":
                piece = arg.int64Value.map(String.init) ?? "%!d(\(GoTemplate.printText(arg)))"
            case "f", "e", "g":
                let d: Double? = { if case .double(let d) = arg { return d }; return arg.int64Value.map(Double.init) }()
                piece = d.map { String(format: "%.\(precision ?? 6)\(verb)", $0) } ?? "%!\(verb)(\(GoTemplate.printText(arg)))"
            case "q": piece = GoTemplate.json(.string(GoTemplate.printText(arg)))
            case "x": piece = arg.int64Value.map { String($0, radix: 16) } ?? GoTemplate.printText(arg).utf8.map { String(format: "%02x", $0) }.joined()
            case "t": if case .bool(let b) = arg { piece = b ? "true" : "false" } else { piece = "%!t(\(GoTemplate.printText(arg)))" }
            default:
                piece = GoTemplate.printText(arg)
                if let precision, verb == "s" || verb == "v" { piece = String(piece.prefix(precision)) }
            }
            if let w = Int(width), piece.count < w {
                let pad = String(repeating: flags.contains("0") && !flags.contains("-") ? "0" : " ", count: w - piece.count)
                piece = flags.contains("-") ? piece + pad : pad + piece
            }
            output += piece
        }
        if next < args.count { output += "%!(EXTRA " + args[next...].map(GoTemplate.printText).joined(separator: ", ") + ")" }
        return output
    }
}
