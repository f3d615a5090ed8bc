import AirgapContext
import AirgapOCI
import Foundation
import Yams

/// The batch export input: a YAML `ImageSet` or a plain list (one reference a line, `#` comments).
public struct ImageSet: Sendable {
    public struct Entry: Sendable {
        public var reference: Reference
        /// nil: the set's default platforms apply.
        public var platforms: [Platform]?
        public var allPlatforms: Bool
        /// Name the image gets inside when pinned by digest.
        public var insideTag: String?
        public var line: Int
        /// nil: the set's default (`referrers:` at the top, true unless set) applies.
        public var referrers: Bool? = nil
        /// Public keys the image must be signed with (`verify: {key: FILE}`, paths as written
        /// relative to the manifest's directory); nil: the set's `verify:` applies.
        public var verifyKeys: [String]? = nil

        /// The name the image has in the store and in the bundle: `NAME:TAG@DIGEST` is fetched by
        /// digest and named `NAME:TAG` (the same rule as `Naming.destinationName`).
        public var insideName: Reference {
            if let insideTag { return Reference(registry: reference.registry, repository: reference.repository, tag: insideTag, digest: nil) }
            return reference.tag != nil ? reference.withDigest(nil) : reference
        }
    }

    public var path: String
    public var data: Data
    public var platforms: [Platform]
    public var allPlatforms: Bool
    /// Carry signatures, attestations, SBOMs and other referrers with every image (default true).
    public var referrers = true
    /// Public keys every image must be signed with (`verify:` at the top), resolved like an entry's.
    public var verifyKeys: [String] = []
    public var images: [Entry]
    /// Build contexts to carry (`contexts:`), each with the images its Dockerfile pulls.
    public var contexts: [Context] = []
    /// Per-registry settings from the manifest's `registries:` block; the command layer turns them into
    /// registry client options (this module knows nothing of the network).
    public var registries: [String: RegistrySettings]
    /// Where each inside name was first listed (duplicate check in one pass).
    var lineOfName: [String: Int] = [:]

    /// One `contexts:` entry: what `docker build [-f DOCKERFILE] [--build-arg …] [--target …]
    /// [--platform …] -t TAG SOURCE` would be given.
    public struct Context: Sendable {
        /// `source:` as written (a git URL without its user and password), for the record.
        public var source: String
        public var location: ContextLocation
        /// The Dockerfile's path relative to the context (`-f`), which may lead outside it.
        public var dockerfile: String
        /// The name the built image gets.
        public var tag: Reference
        public var buildArgs: [String: String]
        public var target: String?
        /// nil: the set's default platforms apply.
        public var platforms: [Platform]?
        public var line: Int
    }

    public struct RegistrySettings: Sendable, Hashable {
        public var caFile: String?
        public var insecure: Bool = false
    }

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let line: Int?
        public let problem: String
        /// The file could not be read at all (a failure, exit 1), rather than read and found wrong (a usage error).
        public var unreadable = false
        public var description: String { "\(path)\(line.map { ":\($0)" } ?? ""): \(problem)" }
    }

    public static func load(path: String) throws -> ImageSet {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ParseError(path: path, line: nil, problem: "cannot read the manifest; check the path given to -f", unreadable: true)
        }
        guard let text = String(data: data, encoding: .utf8) else { throw ParseError(path: path, line: nil, problem: "the file is not UTF-8 text") }
        return try parse(text, data: data, path: path)
    }

    public static func parse(_ text: String, data: Data? = nil, path: String) throws -> ImageSet {
        var set = try parseEntries(text, data: data, path: path)
        set.lineOfName = [:] // only duplicates need it, and they are found: 10,000 names let go
        return set
    }

    private static func parseEntries(_ text: String, data: Data?, path: String) throws -> ImageSet {
        var set = ImageSet(path: path, data: data ?? Data(text.utf8), platforms: [Platform.host], allPlatforms: false, images: [], registries: [:])
        // The YAML composer recurses once per nesting level, and aliases multiply what it builds:
        // bound both before composing (a manifest is shallow and has no need for either).
        try checkShape(text, path: path)
        let node: Node?
        // The basic resolver tags every scalar a string: the manifest reads scalars as text, and
        // the default resolver's regular expressions would load ICU (3.5 MiB of pages) for nothing.
        do { node = try Yams.compose(yaml: text, .basic) } catch let error as YamlError {
            if looksLikePlainList(text) { try set.parsePlainList(text); return set }
            throw ParseError(path: path, line: yamlLine(error), problem: "not valid YAML (\(yamlProblem(error)))")
        }
        guard let node, case .mapping(let mapping) = node else {
            try set.parsePlainList(text)
            return set
        }
        try set.parseYAML(mapping)
        return set
    }

    static let deepestNesting = 64
    static let mostAliases = 64

    /// Refuses YAML nested deeper than any manifest is (each level needs a column of indentation,
    /// a `- `/`? ` indicator on the line or an open bracket) or with many aliases, so that
    /// composing it cannot exhaust the stack or the memory.
    static func checkShape(_ text: String, path: String) throws {
        var flowDepth = 0, aliases = 0, lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let bytes = Array(line.utf8)
            var i = 0
            while i < bytes.count && bytes[i] == UInt8(ascii: " ") { i += 1 }
            var depth = i
            // `- - - x` or `? - x`: one level per indicator.
            while i + 1 < bytes.count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "?"), bytes[i + 1] == UInt8(ascii: " ") {
                depth += 2
                i += 2
                while i < bytes.count && bytes[i] == UInt8(ascii: " ") { i += 1 }
            }
            var quote: UInt8?
            var j = i
            while j < bytes.count {
                let c = bytes[j]
                if let q = quote {
                    if q == UInt8(ascii: "\"") && c == UInt8(ascii: "\\") { j += 1 } // an escaped character
                    else if c == q { quote = nil }
                } else if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                    quote = c
                } else if c == UInt8(ascii: "#") && (j == 0 || bytes[j - 1] == UInt8(ascii: " ")) {
                    break
                } else if c == UInt8(ascii: "[") || c == UInt8(ascii: "{") {
                    flowDepth += 1
                } else if c == UInt8(ascii: "]") || c == UInt8(ascii: "}") {
                    flowDepth = max(0, flowDepth - 1)
                } else if c == UInt8(ascii: "*") && (j == 0 || [UInt8(ascii: " "), UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ",")].contains(bytes[j - 1])) {
                    aliases += 1
                }
                if flowDepth > deepestNesting {
                    throw ParseError(path: path, line: lineNumber, problem: "brackets nest more than \(deepestNesting) deep; a manifest is a flat list of images")
                }
                j += 1
            }
            if depth / 2 > deepestNesting {
                throw ParseError(path: path, line: lineNumber, problem: "the YAML nests more than \(deepestNesting) levels deep; a manifest is a flat list of images")
            }
            if aliases > mostAliases {
                throw ParseError(path: path, line: lineNumber, problem: "more than \(mostAliases) YAML aliases (*name); a manifest needs none")
            }
        }
    }

    static func looksLikePlainList(_ text: String) -> Bool {
        !text.contains("apiVersion") && !text.contains("images:")
    }

    static func yamlLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    static func yamlProblem(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): return problem
        default: return "\(error)"
        }
    }

    func fail(_ line: Int?, _ problem: String) -> ParseError { ParseError(path: path, line: line, problem: problem) }

    mutating func parsePlainList(_ text: String) throws {
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = raw
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard !trimmed.contains(" ") else { throw fail(number + 1, "expected one image reference on the line, found '\(trimmed)'") }
            try add(Entry(reference: try reference(trimmed, line: number + 1), platforms: nil, allPlatforms: false, insideTag: nil, line: number + 1))
        }
        if images.isEmpty { throw fail(nil, "the manifest lists no images") }
    }

    func reference(_ text: String, line: Int) throws -> Reference {
        do { return try Reference(parsing: text) } catch let error as OCIError {
            if case .invalidReference(_, let reason) = error { throw fail(line, "bad image reference '\(text)': \(reason)") }
            throw fail(line, "\(error)")
        }
    }

    mutating func add(_ entry: Entry) throws {
        let name = entry.insideName.description
        if let previous = lineOfName[name] {
            throw fail(entry.line, "duplicate image \(entry.insideName.familiarDescription) (first listed on line \(previous))")
        }
        lineOfName[name] = entry.line
        images.append(entry)
    }

    func platformList(_ node: Node) throws -> (platforms: [Platform], all: Bool) {
        let line = node.mark?.line
        var items: [Node] = []
        switch node {
        case .sequence(let sequence): items = Array(sequence)
        case .scalar: items = [node]
        default: throw fail(line, "platforms must be a list such as [linux/amd64, linux/arm64]")
        }
        var platforms: [Platform] = []
        for item in items {
            guard let text = item.string else { throw fail(item.mark?.line ?? line, "a platform must be a string such as linux/amd64") }
            if text == "all" { return ([], true) }
            do { platforms.append(try Platform(parsing: text)) } catch {
                throw fail(item.mark?.line ?? line, "bad platform '\(text)': use OS/ARCH[/VARIANT] such as linux/arm64, or all")
            }
        }
        guard !platforms.isEmpty else { throw fail(line, "platforms is empty; name at least one, or all") }
        return (platforms, false)
    }

    mutating func parseYAML(_ mapping: Node.Mapping) throws {
        var imagesNode: Node?
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            let line = keyNode.mark?.line
            switch key {
            case "apiVersion":
                guard value.string == "airgap/v1" else { throw fail(value.mark?.line, "apiVersion must be airgap/v1, not '\(value.string ?? "?")'") }
            case "kind":
                guard value.string == "ImageSet" else { throw fail(value.mark?.line, "kind must be ImageSet, not '\(value.string ?? "?")'") }
            case "platforms":
                let (p, all) = try platformList(value)
                platforms = all ? [] : p
                allPlatforms = all
            case "images": imagesNode = value
            case "contexts": try parseContexts(value)
            case "registries": try parseRegistries(value)
            case "referrers": referrers = try boolean(value, key: "referrers")
            case "verify": verifyKeys = try verifyBlock(value)
            default: throw fail(line, "unknown key '\(key)' (known: apiVersion, kind, platforms, referrers, verify, images, contexts, registries)")
            }
        }
        if imagesNode == nil && !contexts.isEmpty { return }
        guard let imagesNode, case .sequence(let sequence) = imagesNode, !sequence.isEmpty else {
            throw fail(imagesNode?.mark?.line, "the manifest needs an 'images:' list with at least one image (or a 'contexts:' list)")
        }
        for item in sequence {
            let line = item.mark?.line ?? 0
            switch item {
            case .scalar:
                try add(Entry(reference: try reference(item.string ?? "", line: line), platforms: nil, allPlatforms: false, insideTag: nil, line: line))
            case .mapping(let fields):
                var ref: Reference?
                var platforms: [Platform]?
                var all = false
                var tag: String?
                var referrers: Bool?
                var keys: [String]?
                for (k, v) in fields {
                    switch k.string ?? "" {
                    case "ref": ref = try reference(v.string ?? "", line: v.mark?.line ?? line)
                    case "platforms":
                        let (p, a) = try platformList(v)
                        platforms = a ? [] : p
                        all = a
                    case "tag":
                        guard let t = v.string, (try? Reference(parsing: "x:\(t)")) != nil else {
                            throw fail(v.mark?.line ?? line, "bad tag '\(v.string ?? "")' (up to 128 letters, digits, '_', '.', '-')")
                        }
                        tag = t
                    case "referrers": referrers = try boolean(v, key: "referrers")
                    case "verify": keys = try verifyBlock(v)
                    default: throw fail(k.mark?.line ?? line, "unknown key '\(k.string ?? "")' in an image (known: ref, platforms, tag, referrers, verify)")
                    }
                }
                guard let ref else { throw fail(line, "an image entry needs 'ref:'") }
                if tag != nil && ref.digest == nil { throw fail(line, "'tag:' names a digest-pinned image inside; \(ref.familiarDescription) is not pinned by digest") }
                try add(Entry(reference: ref, platforms: platforms, allPlatforms: all, insideTag: tag, line: line, referrers: referrers, verifyKeys: keys))
            default:
                throw fail(line, "an image must be a reference or a mapping with ref/platforms/tag")
            }
        }
    }

    mutating func parseContexts(_ node: Node) throws {
        guard case .sequence(let items) = node, !items.isEmpty else {
            throw fail(node.mark?.line, "contexts must be a list of build contexts, each with source: and tag:")
        }
        let base = (path as NSString).deletingLastPathComponent
        var lineOfTag: [String: Int] = [:]
        for item in items {
            let line = item.mark?.line ?? 0
            guard case .mapping(let fields) = item else {
                throw fail(line, "a context must be a mapping such as {source: ./app, tag: app:1.0}")
            }
            var location: ContextLocation?
            var source = ""
            var dockerfile = "Dockerfile", tag: Reference?, buildArgs: [String: String] = [:], target: String?, platforms: [Platform]?
            for (k, v) in fields {
                let at = v.mark?.line ?? line
                switch k.string ?? "" {
                case "source":
                    guard let text = v.string else { throw fail(at, "source must be a directory or a git URL") }
                    source = ContextLocation.redacted(text)
                    do { location = try ContextLocation(parsing: text, relativeTo: base) } catch let error as ContextError {
                        throw fail(at, error.message)
                    }
                case "dockerfile":
                    guard let text = v.string, !text.isEmpty, !text.contains("\0") else { throw fail(at, "dockerfile must be a path relative to the context") }
                    dockerfile = text
                case "tag":
                    guard let text = v.string, let name = try? Reference(parsing: text), name.digest == nil else {
                        throw fail(at, "tag must name the built image, such as registry.example/app:1.0 (no digest)")
                    }
                    guard BuildContextArtifact.artifactName(for: name) != nil else { throw fail(at, "the tag of \(text) is too long to name its context (\(text).context)") }
                    tag = name
                case "buildArgs":
                    guard case .mapping(let args) = v else { throw fail(at, "buildArgs must map names to values: {BASE: alpine:3.19}") }
                    for (name, value) in args {
                        guard let n = name.string, !n.isEmpty, let text = value.string else { throw fail(name.mark?.line ?? at, "a build argument needs a name and a string value") }
                        buildArgs[n] = text
                    }
                case "target":
                    guard let text = v.string, !text.isEmpty else { throw fail(at, "target must name a stage of the Dockerfile") }
                    target = text
                case "platforms":
                    let (p, all) = try platformList(v)
                    guard !all else { throw fail(at, "a context builds for the platforms it names, not all; list them") }
                    platforms = p
                default:
                    throw fail(k.mark?.line ?? line, "unknown key '\(k.string ?? "")' in a context (known: source, dockerfile, tag, buildArgs, target, platforms)")
                }
            }
            guard let location else { throw fail(line, "a context needs 'source:' (a directory or a git URL)") }
            guard let tag else { throw fail(line, "a context needs 'tag:', the name the built image gets") }
            if let previous = lineOfTag[tag.description] { throw fail(line, "duplicate context tag \(tag.familiarDescription) (first on line \(previous))") }
            lineOfTag[tag.description] = line
            contexts.append(Context(source: source, location: location, dockerfile: dockerfile, tag: tag, buildArgs: buildArgs, target: target, platforms: platforms, line: line))
        }
    }

    /// `verify: {key: FILE}` or `verify: {keys: [FILE, …]}`: key paths, relative ones to the manifest's directory.
    func verifyBlock(_ node: Node) throws -> [String] {
        guard case .mapping(let mapping) = node else { throw fail(node.mark?.line, "verify must be a mapping: verify: {key: cosign.pub}") }
        var paths: [String] = []
        for (k, v) in mapping {
            switch k.string ?? "" {
            case "key":
                guard let path = v.string, !path.isEmpty else { throw fail(v.mark?.line, "verify.key must be the path of a public key file") }
                paths.append(path)
            case "keys":
                guard case .sequence(let items) = v, !items.isEmpty, items.allSatisfy({ !($0.string ?? "").isEmpty }) else {
                    throw fail(v.mark?.line, "verify.keys must be a list of public key files")
                }
                paths += items.compactMap(\.string)
            default: throw fail(k.mark?.line, "unknown key '\(k.string ?? "")' in verify (known: key, keys)")
            }
        }
        guard !paths.isEmpty else { throw fail(node.mark?.line, "verify needs a key: verify: {key: cosign.pub}") }
        let base = (path as NSString).deletingLastPathComponent
        return paths.map { $0.hasPrefix("/") || base.isEmpty ? $0 : (base as NSString).appendingPathComponent($0) }
    }

    func boolean(_ node: Node, key: String) throws -> Bool {
        switch node.string {
        case "true": return true
        case "false": return false
        default: throw fail(node.mark?.line, "\(key) must be true or false, not '\(node.string ?? "?")'")
        }
    }

    mutating func parseRegistries(_ node: Node) throws {
        guard case .mapping(let mapping) = node else { throw fail(node.mark?.line, "registries must map a registry host to its settings") }
        let base = (path as NSString).deletingLastPathComponent
        for (hostNode, settings) in mapping {
            guard let host = hostNode.string, Reference.isValidRegistry(host) else {
                throw fail(hostNode.mark?.line, "'\(hostNode.string ?? "")' is not a registry host[:port]")
            }
            var options = RegistrySettings()
            guard case .mapping(let fields) = settings else { throw fail(settings.mark?.line, "settings of \(host) must be a mapping such as {insecure: true}") }
            for (k, v) in fields {
                switch k.string ?? "" {
                case "ca-file":
                    guard let file = v.string else { throw fail(v.mark?.line, "ca-file must be a path") }
                    options.caFile = file.hasPrefix("/") || base.isEmpty ? file : base + "/" + file
                case "insecure":
                    guard let flag = v.bool else { throw fail(v.mark?.line, "insecure must be true or false") }
                    options.insecure = flag
                default: throw fail(k.mark?.line, "unknown key '\(k.string ?? "")' for \(host) (known: ca-file, insecure)")
                }
            }
            registries[host] = options
        }
    }
}
