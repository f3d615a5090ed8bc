/// An OS/architecture pair with optional variant, as in image indexes and `--platform`.
public struct Platform: Hashable, Sendable, Codable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    public var variant: String?
    public var osVersion: String?
    public var osFeatures: [String]?

    enum CodingKeys: String, CodingKey {
        case os, architecture, variant
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }

    public init(os: String, architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }

    /// Parses `OS/ARCH[/VARIANT]`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else {
            throw OCIError.invalidPlatform(text, reason: "expected two or three parts separated by '/'")
        }
        for part in parts where !part.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == ".") }) {
            throw OCIError.invalidPlatform(text, reason: "'\(part)' holds characters other than letters, digits, '_', '-', '.'")
        }
        self.init(os: parts[0].lowercased(), architecture: parts[1].lowercased(), variant: parts.count == 3 ? parts[2].lowercased() : nil)
    }

    public var description: String {
        [os, architecture, variant].compactMap { $0 }.joined(separator: "/")
    }

    /// The platform this binary runs on, as Go and containerd name it.
    public static var host: Platform {
        #if arch(x86_64)
        Platform(os: "linux", architecture: "amd64")
        #elseif arch(arm64)
        Platform(os: "linux", architecture: "arm64", variant: "v8")
        #else
        Platform(os: "linux", architecture: "unknown")
        #endif
    }

    /// Normalised form used for matching (containerd's rules): aliases folded, default variants filled.
    public var normalized: Platform {
        var arch = architecture
        var variant = self.variant
        switch arch {
        case "x86_64", "x86-64": arch = "amd64"
        case "aarch64": arch = "arm64"
        case "armhf": arch = "arm"; variant = variant ?? "v7"
        case "armel": arch = "arm"; variant = variant ?? "v6"
        case "i386", "i686": arch = "386"
        default: break
        }
        if arch == "arm64" && (variant == nil || variant == "8") { variant = "v8" }
        if arch == "arm" && variant == nil { variant = "v7" }
        if arch == "arm", let v = variant, !v.hasPrefix("v") { variant = "v" + v }
        if arch == "amd64" && variant == "v1" { variant = nil }
        return Platform(os: os.lowercased(), architecture: arch, variant: variant)
    }

    /// Whether an image for `candidate` should be chosen when this platform is wanted.
    /// An absent variant on the wanted side matches any variant.
    public func matches(_ candidate: Platform) -> Bool {
        let want = normalized
        let have = candidate.normalized
        guard want.os == have.os, want.architecture == have.architecture else { return false }
        if self.variant == nil && want.architecture != "arm64" { return true }
        return want.variant == have.variant
    }

    /// Among candidates, the index of the best match: exact variant first, then (arm) older compatible variants.
    public func bestMatch(in candidates: [Platform]) -> Int? {
        if let exact = candidates.firstIndex(where: { matches($0) }) { return exact }
        let want = normalized
        guard want.architecture == "arm", let v = want.variant, let level = Int(v.dropFirst()) else { return nil }
        for lower in stride(from: level - 1, through: 5, by: -1) {
            let fallback = Platform(os: want.os, architecture: "arm", variant: "v\(lower)")
            if let i = candidates.firstIndex(where: { fallback.matches($0) }) { return i }
        }
        return nil
    }
}
