/// Archive entry names are data, never file-system paths: this is the one place they are normalised.
public enum EntryNames {
    /// `./a//b/` → `a/b`; nil for absolute names and names with `..` (they try to leave the archive).
    public static func normalize(_ raw: String) -> String? {
        guard !raw.hasPrefix("/") else { return nil }
        var parts: [Substring] = []
        for part in raw.split(separator: "/") where part != "." {
            if part == ".." { return nil }
            parts.append(part)
        }
        return parts.joined(separator: "/")
    }
}
