import AirgapTar

/// Archive entry names are data: they are normalised and checked, and never used as paths.
enum EntryName {
    /// `./a//b/` → `a/b`. Rejects absolute names and `..` (a name that tries to leave the archive).
    static func normalize(_ raw: String) throws -> String {
        guard let name = EntryNames.normalize(raw) else {
            throw TransferError.bad(raw.hasPrefix("/")
                ? "the archive entry '\(raw)' has an absolute name; refusing an archive that writes outside itself"
                : "the archive entry '\(raw)' contains '..'; refusing an archive that writes outside itself")
        }
        return name
    }

    /// Resolves a link target relative to the link's directory; stays inside the archive or fails.
    static func resolveLink(_ target: String, from linkName: String, hard: Bool) throws -> String {
        if hard { return try normalize(target) }
        guard !target.hasPrefix("/") else { throw TransferError.bad("the link '\(linkName)' points to the absolute path '\(target)'") }
        var parts = linkName.split(separator: "/").dropLast().map(String.init)
        for part in target.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                guard !parts.isEmpty else { throw TransferError.bad("the link '\(linkName)' points outside the archive ('\(target)')") }
                parts.removeLast()
            } else { parts.append(String(part)) }
        }
        return parts.joined(separator: "/")
    }
}
