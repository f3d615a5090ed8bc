import AirgapContent
import AirgapOCI
import Foundation

/// One request, as the API sees it (no HTTP library types: the routing is tested without sockets).
public struct APIRequest: Sendable {
    public var method: String
    /// The path as sent, before `?`, still percent-encoded.
    public var path: String
    public var query: [String: String]
    /// The `Range` header, if any.
    public var range: String?
    public init(method: String, target: String, range: String? = nil) {
        self.method = method
        self.range = range
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = String(parts.first ?? "")
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = String(kv[0]).removingPercentEncoding ?? String(kv[0])
                let value = kv.count > 1 ? (String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(kv[1])) : ""
                query[key] = value
            }
        }
        self.query = query
    }
}

/// What to send back: bytes held in memory, or a blob streamed from its file segments.
public enum APIResponse: Sendable {
    case bytes(status: Int, headers: [(String, String)], body: Data)
    /// `range` of the blob; the server hashes the whole blob as it serves the range.
    case blob(status: Int, headers: [(String, String)], segments: FileSegments, digest: Digest, range: Range<Int64>)

    public var status: Int {
        switch self { case .bytes(let status, _, _), .blob(let status, _, _, _, _): status }
    }
}

/// The read side of the OCI distribution API over a `ServedContent`: `/v2/`, manifests and blobs
/// (GET, HEAD, Range), tags and catalog with `n`/`last` and `Link`, referrers with the
/// `artifactType` filter. Everything else is the spec's error JSON.
public struct RegistryAPI: Sendable {
    public let content: ServedContent
    /// Sorted once: the catalog pages through it.
    let catalog: [String]
    /// Reports a document the source could not give back intact (the media changed).
    let alarm: @Sendable (String) -> Void

    public init(content: ServedContent, alarm: @escaping @Sendable (String) -> Void = { _ in }) {
        self.content = content
        catalog = content.repositories.keys.sorted()
        self.alarm = alarm
    }

    static let apiVersion = ("Docker-Distribution-API-Version", "registry/2.0")

    public func respond(to request: APIRequest) async -> APIResponse {
        let head = request.method == "HEAD"
        let response = await route(request)
        guard head, case .bytes(let status, let headers, _) = response else { return response }
        return .bytes(status: status, headers: headers, body: Data()) // the length header stays
    }

    /// containers' lookaside protocol: `/sigstore/<repository path>@sha256=<hex>/signature-<n>`.
    static let lookasidePrefix = "/sigstore/"

    func lookaside(_ path: String) -> APIResponse {
        let decoded = path.removingPercentEncoding ?? path
        let rest = decoded.dropFirst(Self.lookasidePrefix.count)
        guard let at = rest.lastIndex(of: "@"), let slash = rest[at...].firstIndex(of: "/"),
              let digest = try? Digest(parsing: rest[rest.index(after: at)..<slash].replacingOccurrences(of: "=", with: ":")),
              rest[slash...].hasPrefix("/signature-"), let n = Int(rest[rest.index(slash, offsetBy: "/signature-".count)...]), n >= 1,
              let signatures = content.lookaside[String(rest[..<at])]?[digest], n <= signatures.count else {
            return Self.error(404, "NOT_FOUND", "no such signature")
        }
        return .bytes(status: 200, headers: [("Content-Type", "application/octet-stream"), ("Content-Length", "\(signatures[n - 1].count)")],
                      body: signatures[n - 1])
    }

    func route(_ request: APIRequest) async -> APIResponse {
        if request.path.hasPrefix(Self.lookasidePrefix) {
            return request.method == "GET" || request.method == "HEAD" ? lookaside(request.path) : Self.unsupported(request.method)
        }
        guard request.path == "/v2" || request.path.hasPrefix("/v2/") else {
            return Self.error(404, "NOT_FOUND", "not a registry API path")
        }
        let components = request.path.dropFirst(4).split(separator: "/", omittingEmptySubsequences: false)
            .map { String($0).removingPercentEncoding ?? String($0) }
        let read = request.method == "GET" || request.method == "HEAD"
        if components.isEmpty || components == [""] {
            return read ? Self.json(200, ["Content-Type": "application/json"], Data("{}".utf8))
                        : Self.unsupported(request.method)
        }
        guard read else { return Self.unsupported(request.method) }
        if components == ["_catalog"] { return catalogPage(request) }
        let n = components.count
        if n >= 3 && components[n - 2] == "tags" && components[n - 1] == "list" {
            return tags(String(components[..<(n - 2)].joined(separator: "/")), request)
        }
        guard n >= 3 else { return Self.error(404, "NOT_FOUND", "not a registry API path") }
        let name = components[..<(n - 2)].joined(separator: "/")
        let kind = components[n - 2], reference = components[n - 1]
        if n >= 4 && components[n - 3] == "blobs" && kind == "uploads" { return Self.unsupported(request.method) }
        switch kind {
        case "manifests": return await manifest(name, reference)
        case "blobs": return blob(name, reference, range: request.range)
        case "referrers": return referrers(name, reference, artifactType: request.query["artifactType"])
        default: return Self.error(404, "NOT_FOUND", "not a registry API path")
        }
    }

    func manifest(_ name: String, _ reference: String) async -> APIResponse {
        guard let repository = content.repositories[name] else { return Self.nameUnknown(name) }
        let descriptor: Descriptor
        if reference.contains(":") {
            guard let digest = try? Digest(parsing: reference) else {
                return Self.error(400, "DIGEST_INVALID", "\(reference) is not a valid digest")
            }
            guard let found = repository.documents[digest] else {
                return Self.error(404, "MANIFEST_UNKNOWN", "manifest unknown to repository \(name)", detail: reference)
            }
            descriptor = found
        } else {
            guard let found = repository.tags[reference] else {
                return Self.error(404, "MANIFEST_UNKNOWN", "manifest unknown to repository \(name)", detail: reference)
            }
            descriptor = found
        }
        let data: Data
        do {
            guard let read = try await content.source.document(descriptor, in: Reference(registry: "serve", repository: name, tag: nil, digest: nil)) else {
                alarm("\(name)@\(descriptor.digest) is no longer in \(content.source.description)")
                return Self.error(404, "MANIFEST_UNKNOWN", "manifest unknown to repository \(name)", detail: reference)
            }
            data = read
        } catch {
            alarm("refused to serve \(name)@\(descriptor.digest): \(error)")
            return Self.error(500, "UNKNOWN", "the manifest failed its check on the server; nothing was sent")
        }
        return Self.json(200, ["Content-Type": descriptor.mediaType.rawValue, "Docker-Content-Digest": descriptor.digest.description,
                               "ETag": "\"\(descriptor.digest)\""], data)
    }

    func blob(_ name: String, _ reference: String, range: String?) -> APIResponse {
        guard let repository = content.repositories[name] else { return Self.nameUnknown(name) }
        guard let digest = try? Digest(parsing: reference) else {
            return Self.error(400, "DIGEST_INVALID", "\(reference) is not a valid digest")
        }
        guard let descriptor = repository.blobs[digest], let segments = content.source.fileSegments(descriptor) else {
            return Self.error(404, "BLOB_UNKNOWN", "blob unknown to repository \(name)", detail: digest.description)
        }
        let size = descriptor.size
        var headers: [(String, String)] = [Self.apiVersion, ("Content-Type", "application/octet-stream"),
                                           ("Docker-Content-Digest", digest.description), ("Accept-Ranges", "bytes"),
                                           ("ETag", "\"\(digest)\"")]
        switch Self.parseRange(range, size: size) {
        case .none:
            headers.append(("Content-Length", "\(size)"))
            return .blob(status: 200, headers: headers, segments: segments, digest: digest, range: 0..<size)
        case .some(.unsatisfiable):
            return .bytes(status: 416, headers: [Self.apiVersion, ("Content-Range", "bytes */\(size)"), ("Content-Length", "0")], body: Data())
        case .some(.bytes(let r)):
            headers.append(("Content-Length", "\(r.count)"))
            headers.append(("Content-Range", "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(size)"))
            return .blob(status: 206, headers: headers, segments: segments, digest: digest, range: r)
        }
    }

    enum RangeRequest: Equatable { case bytes(Range<Int64>), unsatisfiable }

    /// One `bytes=` range (first-last, first-, -suffix). Anything else is ignored (the whole
    /// blob), as RFC 9110 allows; a range that starts past the end is 416.
    static func parseRange(_ header: String?, size: Int64) -> RangeRequest? {
        guard let header, header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let suffix = Int64(parts[1]), suffix >= 0, parts[1].allSatisfy(\.isNumber) else { return nil }
            if suffix == 0 || size == 0 { return .unsatisfiable }
            return .bytes(Swift.max(0, size - suffix)..<size)
        }
        guard parts[0].allSatisfy(\.isNumber), let first = Int64(parts[0]) else { return nil }
        var last = size - 1
        if !parts[1].isEmpty {
            guard parts[1].allSatisfy(\.isNumber), let value = Int64(parts[1]) else { return nil }
            guard value >= first else { return nil }
            last = Swift.min(value, size - 1)
        }
        guard first < size else { return .unsatisfiable }
        return .bytes(first..<(last + 1))
    }

    func tags(_ name: String, _ request: APIRequest) -> APIResponse {
        guard let repository = content.repositories[name] else { return Self.nameUnknown(name) }
        let (page, next) = Self.paginate(repository.tags.keys.sorted(), request)
        struct Body: Encodable { var name: String; var tags: [String] }
        var headers = ["Content-Type": "application/json"]
        if let next { headers["Link"] = "</v2/\(name)/tags/list?\(next)>; rel=\"next\"" }
        return Self.json(200, headers, Self.encode(Body(name: name, tags: page)))
    }

    func catalogPage(_ request: APIRequest) -> APIResponse {
        let (page, next) = Self.paginate(catalog, request)
        struct Body: Encodable { var repositories: [String] }
        var headers = ["Content-Type": "application/json"]
        if let next { headers["Link"] = "</v2/_catalog?\(next)>; rel=\"next\"" }
        return Self.json(200, headers, Self.encode(Body(repositories: page)))
    }

    /// Entries after `last`, at most `n` of them, and the query of the next page when more remain.
    static func paginate(_ sorted: [String], _ request: APIRequest) -> ([String], String?) {
        var entries = sorted[...]
        if let last = request.query["last"] { entries = entries.drop { $0 <= last } }
        guard let text = request.query["n"], let n = Int(text), n >= 0 else { return (Array(entries), nil) }
        let page = Array(entries.prefix(n))
        guard entries.count > n, let end = page.last else { return (page, nil) }
        let escaped = end.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? end
        return (page, "n=\(n)&last=\(escaped)")
    }

    func referrers(_ name: String, _ reference: String, artifactType: String?) -> APIResponse {
        guard let digest = try? Digest(parsing: reference) else {
            return Self.error(400, "DIGEST_INVALID", "\(reference) is not a valid digest")
        }
        // The spec: never 404 for a known API; an unknown subject has no referrers.
        var listed = content.repositories[name]?.referrers[digest] ?? []
        var headers = ["Content-Type": MediaType.ociIndex.rawValue]
        if let artifactType {
            listed = listed.filter { $0.artifactType == artifactType }
            headers["OCI-Filters-Applied"] = "artifactType"
        }
        let index = ImageIndex(mediaType: .ociIndex, manifests: listed)
        return Self.json(200, headers, (try? CanonicalJSON.encode(index)) ?? Data())
    }

    static func encode<T: Encodable>(_ value: T) -> Data { (try? CanonicalJSON.encode(value)) ?? Data() }

    static func json(_ status: Int, _ headers: [String: String], _ body: Data) -> APIResponse {
        var list = [apiVersion]
        list += headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        list.append(("Content-Length", "\(body.count)"))
        return .bytes(status: status, headers: list, body: body)
    }

    static func error(_ status: Int, _ code: String, _ message: String, detail: String? = nil) -> APIResponse {
        struct Item: Encodable { var code: String; var message: String; var detail: String? }
        struct Body: Encodable { var errors: [Item] }
        return json(status, ["Content-Type": "application/json"], encode(Body(errors: [Item(code: code, message: message, detail: detail)])))
    }

    static func nameUnknown(_ name: String) -> APIResponse {
        error(404, "NAME_UNKNOWN", "repository name not known to registry", detail: name)
    }

    static func unsupported(_ method: String) -> APIResponse {
        error(405, "UNSUPPORTED", "this registry is read-only (airgap-import serve): \(method) is not supported")
    }
}
