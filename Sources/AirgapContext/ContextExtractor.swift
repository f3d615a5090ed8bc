import AirgapTar
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Unpacks a context tar into a new, empty directory, refusing anything that could land outside
/// it: absolute names, `..`, an entry below a symbolic link, a name given twice, hard links and
/// special files. Files are created fresh (never opened through a link), directories only by us.
public enum ContextExtractor {
    public struct Summary: Sendable, Equatable {
        public var files = 0
        public var bytes: Int64 = 0
    }

    public static func extract(_ reader: TarReader, into root: String) throws -> Summary {
        try prepare(root)
        var directories: Set<String> = [""]
        var taken: Set<String> = []
        var summary = Summary()
        while let entry = try reader.next() {
            let name = try checkedName(entry.name)
            guard taken.insert(name).inserted || (entry.kind == .directory && directories.contains(name)) else {
                throw ContextError("the context names \(name) twice; it is not one the exporter wrote")
            }
            try makeDirectories(parent(of: name), root: root, made: &directories)
            let path = root + "/" + name
            switch entry.kind {
            case .directory:
                try makeDirectories(name, root: root, made: &directories)
            case .file:
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, entry.mode & 0o111 != 0 ? 0o755 : 0o644)
                guard fd >= 0 else { throw ContextError("cannot create \(path): \(String(cString: strerror(errno)))") }
                defer { close(fd) }
                var failed: Int32 = 0
                try reader.readData { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                        if n < 0 { failed = errno; throw ContextError("cannot write \(path): \(String(cString: strerror(failed)))") }
                        offset += n
                    }
                    summary.bytes += Int64(bytes.count)
                }
                summary.files += 1
            case .symlink:
                guard let target = entry.linkTarget, !target.isEmpty else { throw ContextError("the link \(name) in the context has no target") }
                guard symlink(target, path) == 0 else { throw ContextError("cannot create the link \(path): \(String(cString: strerror(errno)))") }
                summary.files += 1
            case .hardlink, .other:
                throw ContextError("the context holds \(name), which is no file, directory or symbolic link; it is not one the exporter wrote")
            }
        }
        return summary
    }

    /// The target must not exist yet, or be an empty directory (nothing of the user's is overwritten).
    static func prepare(_ root: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) {
            guard isDirectory.boolValue, (try? FileManager.default.contentsOfDirectory(atPath: root))?.isEmpty == true else {
                throw ContextError("\(root) exists and is not an empty directory; name a new one with -o")
            }
        } else {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        }
    }

    public static func checkedName(_ raw: String) throws -> String {
        var name = raw
        while name.hasPrefix("./") { name.removeFirst(2) }
        while name.hasSuffix("/") { name.removeLast() }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, !raw.hasPrefix("/"), !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }), !name.contains("\0") else {
            throw ContextError("the context holds an entry named '\(raw)', which would land outside the directory; it is not one the exporter wrote")
        }
        return name
    }

    static func parent(of name: String) -> String {
        name.lastIndex(of: "/").map { String(name[..<$0]) } ?? ""
    }

    /// Each directory on the way is one this extraction made (so none is a link planted by an entry).
    static func makeDirectories(_ relative: String, root: String, made: inout Set<String>) throws {
        guard !relative.isEmpty, !made.contains(relative) else { return }
        try makeDirectories(parent(of: relative), root: root, made: &made)
        let path = root + "/" + relative
        guard mkdir(path, 0o755) == 0 else {
            throw ContextError(errno == EEXIST ? "the context puts \(relative) below a file or link of the same name; it is not one the exporter wrote"
                                               : "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        made.insert(relative)
    }
}
