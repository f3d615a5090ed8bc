import AirgapOCI

/// The one naming function: what an image is called at its destination, in index.json, in a
/// Docker archive's manifest.json and in a registry a bundle is pushed to.
public enum Naming {
    /// The name a copy uses in messages and as a repository for content that has none (an
    /// unnamed store entry, an archive entry before its image is known); it is never written.
    public static let unnamed = Reference(registry: "localhost", repository: "unnamed", tag: nil, digest: nil)

    /// `NAME:TAG@DIGEST` is fetched by digest and named `NAME:TAG`; `NAME@DIGEST` keeps its digest
    /// (it has no other name); an explicit name (a manifest's `tag:`) wins.
    public static func destinationName(of source: Reference, explicit: Reference? = nil) -> Reference {
        if let explicit { return explicit }
        return source.tag != nil ? source.withDigest(nil) : source
    }

    /// index.json annotations for a named entry: the full reference, for OCI readers and containerd.
    public static func indexAnnotations(_ name: Reference) -> [String: String] {
        [Descriptor.refNameAnnotation: name.description, Descriptor.containerdNameAnnotation: name.description]
    }

    /// The RepoTags entry of a Docker archive (`httpd:2.4`, `myreg:5000/team/app:1`); nil for a
    /// digest-only name, which Docker cannot tag.
    public static func repoTag(_ name: Reference) -> String? {
        name.tag == nil ? nil : name.withDigest(nil).familiarDescription
    }

    /// Where `name` lands under `HOST[:PORT]/PREFIX`: the source registry is dropped, the path kept.
    public static func rewrite(_ name: Reference, registry: String, prefix: String) -> Reference {
        Reference(registry: registry, repository: prefix.isEmpty ? name.repository : "\(prefix)/\(name.repository)",
                  tag: name.tag, digest: name.digest)
    }

    /// A blob's path inside an OCI layout (store, bundle, archive).
    public static func blobPath(_ digest: Digest) -> String { "blobs/\(digest.algorithm.rawValue)/\(digest.encoded)" }

    /// The digest an OCI layout path names, if it is one (`blobs/sha256/<hex>`).
    public static func digest(ofBlobPath path: String) -> Digest? {
        let parts = path.split(separator: "/")
        guard parts.count == 3, parts[0] == "blobs", let algorithm = Digest.Algorithm(rawValue: String(parts[1])) else { return nil }
        return try? Digest(algorithm: algorithm, encoded: String(parts[2]))
    }
}
