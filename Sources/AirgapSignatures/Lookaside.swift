import AirgapOCI
import Foundation
import Yams

/// containers' `registries.d` (containers-registries.d(5)): where each repository's simple-signing
/// (GPG) signatures live, outside the registry. `docker:` maps scopes (`host[:port]`,
/// `host[:port]/namespace…`, `host[:port]/repo`) to a `lookaside` URL (read, and write for
/// `file://`) and a `lookaside-staging` URL (write); `sigstore`/`sigstore-staging` are the old
/// names. The most specific scope wins, then `default-docker`.
public struct RegistriesD: Sendable {
    public struct Entry: Sendable, Equatable {
        public var lookaside: String?
        public var staging: String?
    }
    public var scopes: [String: Entry] = [:]
    public var defaultDocker: Entry?

    public init(scopes: [String: Entry] = [:], defaultDocker: Entry? = nil) {
        self.scopes = scopes
        self.defaultDocker = defaultDocker
    }

    /// `directory`, or as containers/image looks: `$HOME/.config/containers/registries.d` if it
    /// exists, else `/etc/containers/registries.d`. A directory that does not exist is empty.
    public static func load(directory: String?) throws -> RegistriesD {
        let home = ProcessInfo.processInfo.environment["HOME"].map { $0 + "/.config/containers/registries.d" }
        let dir = directory ?? (home.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil } ?? "/etc/containers/registries.d")
        var config = RegistriesD()
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        for file in files {
            let path = dir + "/" + file
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            try config.merge(text, path: path)
        }
        return config
    }

    mutating func merge(_ text: String, path: String) throws {
        let node: Node?
        do { node = try Yams.compose(yaml: text, .basic) } catch {  // scalars are read as text; see ImageSet.parse
            throw SignatureError("\(path) is not valid YAML (\(error)); fix it or point --registries.d elsewhere")
        }
        guard case .mapping(let top)? = node else { return }
        for (key, value) in top {
            switch key.string {
            case "default-docker":
                guard defaultDocker == nil else { throw SignatureError("\(path): default-docker is set in two files of the registries.d directory") }
                defaultDocker = Self.entry(value)
            case "docker":
                guard case .mapping(let scopes) = value else { continue }
                for (scope, settings) in scopes {
                    guard let name = scope.string else { continue }
                    guard self.scopes[name] == nil else { throw SignatureError("\(path): the scope \(name) is set in two files of the registries.d directory") }
                    self.scopes[name] = Self.entry(settings)
                }
            default: continue
            }
        }
    }

    static func entry(_ node: Node) -> Entry {
        guard case .mapping(let settings) = node else { return Entry() }
        func value(_ names: [String]) -> String? {
            for name in names { if let v = settings[Node(name)]?.string, !v.isEmpty { return v } }
            return nil
        }
        return Entry(lookaside: value(["lookaside", "sigstore"]), staging: value(["lookaside-staging", "sigstore-staging"]))
    }

    /// The settings for a repository: its most specific scope, else `default-docker`.
    public func entry(for repository: Reference) -> Entry? {
        var scope = repository.name
        while true {
            if let entry = scopes[scope] { return entry }
            guard let slash = scope.lastIndex(of: "/") else { break }
            scope = String(scope[..<slash])
        }
        return defaultDocker
    }

    /// Where a manifest's signatures are read: `BASE/<repository path>@sha256=<hex>`.
    public static func directory(base: String, repository: Reference, digest: Digest) -> String {
        let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
        return "\(trimmed)/\(repository.repository)@\(digest.algorithm.rawValue)=\(digest.encoded)"
    }
}

/// Reading and writing a lookaside store at a `file://` URL (what `skopeo copy --sign-by` writes
/// to by default); `http(s)://` lookasides are read by the caller's HTTP client.
public enum LookasideFiles {
    /// A signature is a small OpenPGP message; a manifest has few.
    public static let signatureLimit = 64 << 10
    public static let perManifestLimit = 64

    /// containers/image's lookaside when registries.d names none: root's, or the user's.
    public static var defaultURL: String {
        if getuid() == 0 { return "file:///var/lib/containers/sigstore" }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/"
        return "file://\(home)/.local/share/containers/sigstore"
    }

    /// The local path a `file://` URL names, or nil for another scheme.
    public static func path(_ url: String) -> String? {
        guard url.hasPrefix("file://") else { return nil }
        return String(url.dropFirst("file://".count))
    }

    /// `signature-1`, `signature-2`, … up to the first one missing. Each is opened without
    /// following a link and checked as a regular file of at most 64 KiB through that descriptor,
    /// so what is checked is what is read.
    public static func read(directory: String) throws -> [Data] {
        var found: [Data] = []
        for n in 1...perManifestLimit {
            let path = "\(directory)/signature-\(n)"
            let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            if fd < 0 {
                if errno == ENOENT || errno == ENOTDIR { break }
                if errno == EISDIR { break }
                throw SignatureError("\(path) is not a signature (\(String(cString: strerror(errno)))); remove it or fix the lookaside store")
            }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw SignatureError("cannot read \(path): \(String(cString: strerror(errno)))") }
            if info.st_mode & S_IFMT == S_IFDIR { break }
            guard info.st_mode & S_IFMT == S_IFREG, info.st_size <= signatureLimit else {
                throw SignatureError("\(path) is not a signature (a regular file of at most 64 KiB); remove it or fix the lookaside store")
            }
            var data = Data(count: Int(info.st_size))
            let got = data.withUnsafeMutableBytes { buffer in buffer.isEmpty ? 0 : Foundation.read(fd, buffer.baseAddress, buffer.count) }
            guard got == Int(info.st_size) else { throw SignatureError("\(path) changed while it was read") }
            found.append(data)
        }
        return found
    }

    /// Adds the signatures `directory` lacks (a byte-identical one is not written twice), each
    /// written to a temporary name and renamed; returns how many were added.
    public static func add(_ signatures: [Data], directory: String) throws -> Int {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var present = try read(directory: directory)
        var added = 0
        for signature in signatures where !present.contains(signature) {
            // A fresh name created exclusively, never through a link someone left in a shared directory.
            let temporary = "\(directory)/.signature.\(UUID().uuidString).tmp"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw SignatureError("cannot write in \(directory): \(String(cString: strerror(errno)))") }
            defer { unlink(temporary) }
            let wrote = signature.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            let synced = fsync(fd) == 0
            close(fd)
            guard wrote == signature.count, synced else { throw SignatureError("cannot write \(temporary): \(String(cString: strerror(errno)))") }
            // link(2) never replaces: a signature another writer put at that number stays, and
            // this one takes the next free number.
            while true {
                let path = "\(directory)/signature-\(present.count + 1)"
                if link(temporary, path) == 0 { break }
                guard errno == EEXIST else { throw SignatureError("cannot write \(path): \(String(cString: strerror(errno)))") }
                present = try read(directory: directory)
                guard present.count < perManifestLimit else { throw SignatureError("\(directory) holds \(perManifestLimit) signatures already") }
            }
            present.append(signature)
            added += 1
        }
        return added
    }
}
