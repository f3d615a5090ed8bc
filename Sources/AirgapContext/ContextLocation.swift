import Foundation

/// Where a build context is, in the forms `docker build` takes: a directory, or a git repository
/// `URL`, `URL#REF`, `URL#REF:FOLDER`, `URL#:FOLDER` (https, http, ssh, git and file URLs, and
/// scp-like `git@host:path`).
public enum ContextLocation: Sendable, Equatable {
    case directory(String)
    case git(url: String, ref: String?, folder: String?)

    /// Reads `source:` as Docker reads the build context argument. A relative directory is taken
    /// relative to `base` (the manifest's directory).
    public init(parsing text: String, relativeTo base: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw ContextError("the context's source is empty; name a directory or a git URL") }
        if Self.isGit(trimmed) {
            var url = trimmed, ref: String?, folder: String?
            if let hash = trimmed.firstIndex(of: "#") {
                url = String(trimmed[..<hash])
                let fragment = trimmed[trimmed.index(after: hash)...]
                if let colon = fragment.firstIndex(of: ":") {
                    ref = String(fragment[..<colon])
                    folder = String(fragment[fragment.index(after: colon)...])
                } else {
                    ref = String(fragment)
                }
            }
            if ref?.isEmpty == true { ref = nil }
            if let f = folder {
                let cleaned = DockerIgnore.clean(f)
                if cleaned == "." || cleaned.isEmpty { folder = nil }
                else if cleaned == ".." || cleaned.hasPrefix("../") || f.hasPrefix("/") {
                    throw ContextError("the folder '\(f)' of \(Self.redacted(url)) leaves the repository; name a folder inside it")
                } else { folder = cleaned }
            }
            if let ref, ref.hasPrefix("-") || ref.contains("..") || ref.contains(where: { $0 == " " || $0.asciiValue.map { $0 < 32 } ?? false }) {
                throw ContextError("'\(ref)' is not a git branch, tag or commit")
            }
            guard !url.hasPrefix("-") else { throw ContextError("'\(url)' is not a git URL") }
            self = .git(url: url, ref: ref, folder: folder)
            return
        }
        if trimmed.hasPrefix("http://") || trimmed.hasPrefix("https://") {
            throw ContextError("\(trimmed) is a URL but no git repository (git URLs end in .git or have a #REF); a remote tarball context is not supported: download and unpack it, then name the directory")
        }
        self = .directory(trimmed.hasPrefix("/") || base.isEmpty ? trimmed : ((base as NSString).appendingPathComponent(trimmed) as NSString).standardizingPath)
    }

    /// Docker's rule (moby's urlutil): `git://`, `git@`, and http(s) URLs ending in `.git` (before
    /// any `#`), plus `ssh://` and `file://`, and http(s) URLs with a `#` fragment, which no
    /// directory has.
    static func isGit(_ text: String) -> Bool {
        if text.hasPrefix("git://") || text.hasPrefix("git@") || text.hasPrefix("ssh://") || text.hasPrefix("file://") { return true }
        guard text.hasPrefix("http://") || text.hasPrefix("https://") else { return false }
        let url = text.split(separator: "#", maxSplits: 1).first.map(String.init) ?? text
        return url.hasSuffix(".git") || text.contains("#") || url.hasPrefix("https://github.com/")
    }

    /// A URL without the user and password it may carry (`https://user:token@host/…`), for
    /// messages and for what the bundle records.
    public static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let hostEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        guard let at = rest[..<hostEnd].lastIndex(of: "@") else { return url }
        return String(url[..<scheme.upperBound]) + String(rest[rest.index(after: at)...])
    }

    public var description: String {
        switch self {
        case .directory(let path): return path
        case .git(let url, let ref, let folder):
            return Self.redacted(url) + (ref == nil && folder == nil ? "" : "#\(ref ?? "")") + (folder.map { ":\($0)" } ?? "")
        }
    }
}

/// A git repository checked out at one commit with the system `git`, the way BuildKit fetches a
/// git context: a shallow fetch of the ref (a full fetch when the server refuses that), detached
/// checkout, submodules too, and no line-ending conversion (the same commit gives the same bytes).
public struct GitCheckout: Sendable {
    public let directory: String
    public let commit: String

    public static func fetch(url: String, ref: String?, into directory: String, git: String = GitCheckout.gitPath()) throws -> GitCheckout {
        // git's own protocol policy stays: file:// for the URL the user gave, but not for a
        // submodule a hostile repository names (it would carry local repositories of this machine).
        let config = ["-c", "core.autocrlf=false", "-c", "core.eol=lf", "-c", "core.symlinks=true", "-c", "advice.detachedHead=false"]
        func run(_ args: [String], in cwd: String? = directory) throws -> String {
            try Self.run(git, config + args, cwd: cwd, url: url)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = try run(["init", "--quiet", directory], in: nil)
        _ = try run(["remote", "add", "origin", "--", url])
        let wanted = ref ?? "HEAD"
        do {
            _ = try run(["fetch", "--quiet", "--depth", "1", "--no-tags", "origin", "--", wanted])
        } catch {
            // A commit given by its hash on a server that only sends what a ref names: everything, then the commit.
            _ = try run(["fetch", "--quiet", "--tags", "origin", "--", "+refs/heads/*:refs/remotes/origin/*"])
            _ = try run(["update-ref", "FETCH_HEAD", try run(["rev-parse", "--verify", "--quiet", "--end-of-options", "\(wanted)^{commit}"])])
        }
        let commit = try run(["rev-parse", "--verify", "FETCH_HEAD^{commit}"])
        _ = try run(["checkout", "--quiet", "--detach", commit])
        if FileManager.default.fileExists(atPath: directory + "/.gitmodules") {
            _ = try run(["submodule", "update", "--quiet", "--init", "--recursive", "--depth", "1"])
        }
        return GitCheckout(directory: directory, commit: commit)
    }

    public static func gitPath() -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/git"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return "/usr/bin/git"
    }

    /// Runs git with no terminal prompt; its output trimmed, or its last error line in a sentence.
    static func run(_ git: String, _ args: [String], cwd: String?, url: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: git)
        process.arguments = args
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        var environment = ProcessInfo.processInfo.environment
        environment["GIT_TERMINAL_PROMPT"] = "0"
        environment["GIT_LFS_SKIP_SMUDGE"] = "1"
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw ContextError("cannot run \(git) to fetch \(ContextLocation.redacted(url)) (\(error.localizedDescription)); install git")
        }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let last = String(decoding: errors, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "exit \(process.terminationStatus)"
            throw ContextError("git could not fetch \(ContextLocation.redacted(url)): \(last.replacingOccurrences(of: url, with: ContextLocation.redacted(url)))")
        }
        return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
