/// An image reference in Docker's addressing convention:
/// `[REGISTRY[:PORT]/][NAMESPACE/]REPOSITORY[:TAG][@DIGEST]`.
///
/// Values are always normalised: `httpd` becomes `docker.io/library/httpd:latest`.
public struct Reference: Hashable, Sendable, CustomStringConvertible, Comparable {
    public static let dockerHub = "docker.io"
    public static let defaultTag = "latest"

    /// Registry host with optional port, e.g. `docker.io`, `localhost:5000`.
    public let registry: String
    /// Repository path inside the registry, e.g. `library/httpd`.
    public let repository: String
    public let tag: String?
    public let digest: Digest?

    public init(registry: String, repository: String, tag: String?, digest: Digest?) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// Parses and normalises a reference; the error names the part that is wrong.
    public init(parsing input: String) throws {
        func fail(_ reason: String) -> OCIError { .invalidReference(input, reason: reason) }
        guard !input.isEmpty else { throw fail("it is empty") }
        guard input.utf8.count <= 4096 else { throw fail("it is too long") }

        var rest = Substring(input)
        var digest: Digest?
        if let at = rest.firstIndex(of: "@") {
            let digestText = String(rest[rest.index(after: at)...])
            do { digest = try Digest(parsing: digestText) } catch let error as OCIError {
                if case .invalidDigest(_, let reason) = error { throw fail("the digest '\(digestText)' is not valid (\(reason))") }
                throw error
            }
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            tag = String(rest[rest.index(after: colon)...])
            rest = rest[..<colon]
        }
        if let tag {
            guard Reference.isValidTag(tag) else {
                throw fail("the tag '\(tag)' is not valid (up to 128 characters of letters, digits, '_', '.', '-', not starting with '.' or '-')")
            }
        }

        var registry = Reference.dockerHub
        var path = rest
        if let slash = rest.firstIndex(of: "/") {
            let first = rest[..<slash]
            if first.contains(".") || first.contains(":") || first == "localhost" {
                registry = String(first)
                path = rest[rest.index(after: slash)...]
                guard Reference.isValidRegistry(registry) else {
                    throw fail("the registry '\(registry)' is not a valid host name with an optional port")
                }
            }
        }
        if registry == "index.docker.io" || registry == "registry-1.docker.io" { registry = Reference.dockerHub }
        guard !path.isEmpty else { throw fail("the repository name is missing") }
        if path.lowercased() != path {
            throw fail("the repository name '\(path)' must be lower-case")
        }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            guard Reference.isValidPathComponent(component) else {
                throw fail("the repository path component '\(component)' is not valid (lower-case letters and digits, separated by '.', '_', '__' or '-')")
            }
        }
        var repository = String(path)
        if registry == Reference.dockerHub && !repository.contains("/") { repository = "library/" + repository }
        guard registry.utf8.count + 1 + repository.utf8.count <= 255 else {
            throw fail("the name is longer than 255 characters")
        }
        if tag == nil && digest == nil { tag = Reference.defaultTag }
        self.init(registry: registry, repository: repository, tag: tag, digest: digest)
    }

    /// `registry/repository` without tag or digest.
    public var name: String { "\(registry)/\(repository)" }

    /// Full normalised form, as stored in `org.opencontainers.image.ref.name`.
    public var description: String {
        var text = name
        if let tag { text += ":" + tag }
        if let digest { text += "@" + digest.description }
        return text
    }

    /// Repository the way Docker prints it: `httpd`, `team/app`, `myreg:5000/team/app`.
    public var familiarName: String {
        if registry == Reference.dockerHub {
            if repository.hasPrefix("library/") && repository.split(separator: "/").count == 2 {
                return String(repository.dropFirst("library/".count))
            }
            return repository
        }
        return name
    }

    /// Short form the way Docker prints it: `httpd:alpine`, `myreg:5000/team/app:1`.
    public var familiarDescription: String {
        var text = familiarName
        if let tag { text += ":" + tag }
        if let digest { text += "@" + digest.description }
        return text
    }

    /// The string a registry API takes after `/manifests/`: the digest when pinned, else the tag.
    public var manifestSelector: String { digest?.description ?? tag ?? Reference.defaultTag }

    public func withTag(_ tag: String?) -> Reference { Reference(registry: registry, repository: repository, tag: tag, digest: digest) }
    public func withDigest(_ digest: Digest?) -> Reference { Reference(registry: registry, repository: repository, tag: tag, digest: digest) }
    public func withName(registry: String, repository: String) -> Reference {
        Reference(registry: registry, repository: repository, tag: tag, digest: digest)
    }

    public static func < (lhs: Reference, rhs: Reference) -> Bool { lhs.description < rhs.description }

    // MARK: grammar (Docker's distribution/reference rules)

    static func isValidTag(_ tag: String) -> Bool {
        let bytes = Array(tag.utf8)
        guard (1...128).contains(bytes.count) else { return false }
        func word(_ b: UInt8) -> Bool { isAlnum(b) || b == UInt8(ascii: "_") }
        guard word(bytes[0]) else { return false }
        return bytes.dropFirst().allSatisfy { word($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    static func isValidPathComponent(_ component: Substring) -> Bool {
        // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
        let bytes = Array(component.utf8)
        guard let first = bytes.first, let last = bytes.last, isLowerAlnum(first), isLowerAlnum(last) else { return false }
        var i = 0
        while i < bytes.count {
            if isLowerAlnum(bytes[i]) { i += 1; continue }
            var j = i
            while j < bytes.count, !isLowerAlnum(bytes[j]) { j += 1 }
            let separator = bytes[i..<j]
            let ok = separator.elementsEqual([UInt8(ascii: ".")]) || separator.elementsEqual([UInt8(ascii: "_")])
                || separator.elementsEqual([UInt8(ascii: "_"), UInt8(ascii: "_")])
                || separator.allSatisfy { $0 == UInt8(ascii: "-") }
            guard ok else { return false }
            i = j
        }
        return true
    }

    public static func isValidRegistry(_ registry: String) -> Bool {
        var host = Substring(registry)
        if host.hasPrefix("[") {
            // IPv6 literal: [hex:colons] optionally followed by :port
            guard let close = host.firstIndex(of: "]") else { return false }
            let inside = host[host.index(after: host.startIndex)..<close]
            guard !inside.isEmpty, inside.allSatisfy({ $0.isHexDigit || $0 == ":" }) else { return false }
            let after = host[host.index(after: close)...]
            if after.isEmpty { return true }
            guard after.first == ":" else { return false }
            return isValidPort(after.dropFirst())
        }
        if let colon = host.lastIndex(of: ":") {
            guard isValidPort(host[host.index(after: colon)...]) else { return false }
            host = host[..<colon]
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return !labels.isEmpty && labels.allSatisfy { label in
            let b = Array(label.utf8)
            guard let f = b.first, let l = b.last, isAlnum(f), isAlnum(l) else { return false }
            return b.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") }
        }
    }

    private static func isValidPort(_ text: Substring) -> Bool {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy(\.isASCIIDigit), let n = Int(text) else { return false }
        return n <= 65535
    }

    private static func isLowerAlnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) }
    private static func isAlnum(_ b: UInt8) -> Bool { isLowerAlnum(b) || (b >= 0x41 && b <= 0x5a) }

    /// True when the registry is on this machine: Docker lets such registries speak plain HTTP.
    public static func isLoopback(registry: String) -> Bool {
        var host = registry
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            host = String(host[host.index(after: host.startIndex)..<close])
            return host == "::1"
        }
        if let colon = host.lastIndex(of: ":") { host = String(host[..<colon]) }
        if host == "localhost" { return true }
        let parts = host.split(separator: ".")
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
