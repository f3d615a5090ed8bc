import AirgapTar
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A build context as Docker's builder would receive it, packed reproducibly: every file the
/// `.dockerignore` (or `<Dockerfile>.dockerignore` next to the Dockerfile) leaves in, in sorted
/// order, with fixed owners and times (the same tree gives the same bytes); regular files keep
/// whether they are executable, symbolic links stay links; the Dockerfile and the ignore file are
/// always sent, as Docker sends them. Sockets, FIFOs and devices are left out and counted.
public struct ContextPacker {
    public struct Summary: Sendable, Equatable {
        public var files = 0
        public var bytes: Int64 = 0
        public var excluded: [String] = []
        public var skippedSpecial: [String] = []
    }

    public let root: String
    /// The Dockerfile's path relative to the context (`Dockerfile`, `docker/Dockerfile.dev`).
    public let dockerfile: String
    /// Leave out every `.git` (a git context: BuildKit sends the files of the commit, not the
    /// repository, and a submodule's `.git` file names a path of this machine).
    public let skipGit: Bool
    public init(root: String, dockerfile: String = "Dockerfile", skipGit: Bool = false) {
        self.root = root; self.dockerfile = dockerfile; self.skipGit = skipGit
    }

    /// Docker's rule: `<Dockerfile>.dockerignore` next to the Dockerfile wins over `.dockerignore`.
    public func ignoreFile() -> String? {
        let specific = dockerfile + ".dockerignore"
        for candidate in [specific, ".dockerignore"] where FileManager.default.fileExists(atPath: root + "/" + candidate) { return candidate }
        return nil
    }

    public func pack(into writer: TarWriter) throws -> Summary {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ContextError("the context \(root) is not a directory")
        }
        let ignorePath = ignoreFile()
        let ignore = try ignorePath.map { path -> DockerIgnore in
            guard let text = try? String(contentsOfFile: root + "/" + path, encoding: .utf8) else {
                throw ContextError("\(root)/\(path) is not readable UTF-8 text")
            }
            return try DockerIgnore(text)
        } ?? DockerIgnore("")
        let alwaysSent = Set([DockerIgnore.clean(dockerfile)] + (ignorePath.map { [$0] } ?? []))
        var summary = Summary()
        try walk("", ignore: ignore, alwaysSent: alwaysSent, writer: writer, summary: &summary)
        return summary
    }

    private func walk(_ relative: String, ignore: DockerIgnore, alwaysSent: Set<String>, writer: TarWriter, summary: inout Summary) throws {
        let directory = relative.isEmpty ? root : root + "/" + relative
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        for name in names where !(skipGit && name == ".git") {
            let path = relative.isEmpty ? name : relative + "/" + name
            let full = root + "/" + path
            let attributes = try FileManager.default.attributesOfItem(atPath: full)
            let type = attributes[.type] as? FileAttributeType
            let excluded = ignore.excludes(path) && !alwaysSent.contains(path)
            switch type {
            case .typeDirectory?:
                if excluded {
                    summary.excluded.append(path + "/")
                    // Docker still looks inside an excluded directory when an exception may bring something back.
                    guard ignore.mayReinclude(below: path) else { continue }
                } else {
                    try writer.addDirectory(path)
                }
                try walk(path, ignore: ignore, alwaysSent: alwaysSent, writer: writer, summary: &summary)
            case .typeRegular?:
                guard !excluded else { summary.excluded.append(path); continue }
                // Opened without following a link, and checked to be the regular file just listed:
                // a file swapped for a link to /etc/shadow after the listing is not read.
                let fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { throw ContextError("cannot read \(full): \(String(cString: strerror(errno)))") }
                let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
                var info = stat()
                guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw ContextError("\(full) changed while it was packed; pack the context again") }
                let size = Int64(info.st_size)
                try writer.beginFile(path, size: size, mode: info.st_mode & 0o111 != 0 ? 0o755 : 0o644)
                var written: Int64 = 0
                while written < size, let chunk = try handle.read(upToCount: min(1 << 20, Int(size - written))), !chunk.isEmpty {
                    try writer.write(chunk)
                    written += Int64(chunk.count)
                }
                guard written == size else { throw ContextError("\(full) changed while it was packed; pack the context again") }
                summary.files += 1
                summary.bytes += size
            case .typeSymbolicLink?:
                guard !excluded else { summary.excluded.append(path); continue }
                try writer.addSymlink(path, target: try FileManager.default.destinationOfSymbolicLink(atPath: full))
                summary.files += 1
            default:
                summary.skippedSpecial.append(path)
            }
        }
    }
}
