import AirgapOCI
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// One row of `search`.
public struct SearchResult: Sendable, Codable, Equatable {
    public var name: String
    public var description: String
    public var stars: Int
    public var official: Bool
    public init(name: String, description: String = "", stars: Int = 0, official: Bool = false) {
        self.name = name; self.description = description; self.stars = stars; self.official = official
    }
}

extension RegistryClient {
    /// Follows `Link: <…>; rel="next"` pagination, collecting `key` arrays.
    func paginated(registry: String, firstPath: String, key: String, scope: String, limit: Int) async throws -> [String] {
        var path: String? = firstPath
        var result: [String] = []
        var pages = 0
        while let current = path, result.count < limit, pages < 1000 {
            pages += 1
            let response = try await send(Call(registry: registry, path: current, scope: scope))
            let body = try await response.body.collect(upTo: 16 << 20)
            guard response.status == .ok else {
                let reference = Reference(registry: registry, repository: key == "repositories" ? "_catalog" : String(firstPath.split(separator: "/").dropFirst().dropLast(2).joined(separator: "/")), tag: nil, digest: nil)
                try Self.check(response, body: body, what: key == "tags" ? "tag list" : "catalog", reference: reference, selector: key)
                return result
            }
            let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
            result += (object?[key] as? [String]) ?? []
            path = response.headers.first(name: "Link").flatMap(Self.nextLink)
        }
        return result
    }

    /// `<url>; rel="next"` → path and query (the link may be relative or absolute).
    static func nextLink(_ header: String) -> String? {
        for part in header.split(separator: ",") where part.contains("rel=\"next\"") || part.contains("rel=next") {
            guard let open = part.firstIndex(of: "<"), let close = part.firstIndex(of: ">") else { continue }
            let target = String(part[part.index(after: open)..<close])
            if target.hasPrefix("/") { return target }
            if let url = URLComponents(string: target) { return url.percentEncodedPath + (url.percentEncodedQuery.map { "?" + $0 } ?? "") }
        }
        return nil
    }

    public func listTags(_ reference: Reference, limit: Int = Int.max) async throws -> [String] {
        try await paginated(registry: reference.registry, firstPath: "/v2/\(reference.repository)/tags/list?n=1000", key: "tags",
                            scope: Self.pullScope(reference.repository), limit: limit)
    }

    public func catalog(registry: String, limit: Int = Int.max) async throws -> [String] {
        try await paginated(registry: registry, firstPath: "/v2/_catalog?n=1000", key: "repositories", scope: "registry:catalog:*", limit: limit)
    }

    /// Docker Hub's search API where the registry offers it; otherwise `_catalog` filtered by the term.
    public func search(registry: String, term: String, limit: Int) async throws -> [SearchResult] {
        if registry == Reference.dockerHub {
            return try await hubSearch(term: term, limit: limit)
        }
        let names = try await catalog(registry: registry)
        let lower = term.lowercased()
        return names.filter { lower.isEmpty || $0.lowercased().contains(lower) }.prefix(limit).map { SearchResult(name: "\(registry)/\($0)") }
    }

    private func hubSearch(term: String, limit: Int) async throws -> [SearchResult] {
        var components = URLComponents(string: "https://index.docker.io/v1/search")!
        components.queryItems = [URLQueryItem(name: "q", value: term), URLQueryItem(name: "n", value: "\(limit)")]
        var request = HTTPClientRequest(url: components.url!.absoluteString)
        request.tlsConfiguration = try TLSSetup.configuration(registry: "index.docker.io", options: optionsTable.options(for: "docker.io"),
                                                              certificateDirectories: certificateDirectories)
        let response: HTTPClientResponse
        do { response = try await http.execute(request, timeout: retryPolicy.requestTimeout) }
        catch { throw Self.mapTransportError(error, registry: "index.docker.io") }
        let body = try await response.body.collect(upTo: 8 << 20)
        guard response.status == .ok else {
            throw RegistryError(.server, "Docker Hub's search answered HTTP \(response.status.code); try again later")
        }
        struct Reply: Decodable {
            struct Item: Decodable { var name: String; var description: String?; var star_count: Int?; var is_official: Bool? }
            var results: [Item]
        }
        let reply = try JSONDecoder().decode(Reply.self, from: Data(buffer: body))
        return reply.results.prefix(limit).map { SearchResult(name: $0.name, description: $0.description ?? "", stars: $0.star_count ?? 0, official: $0.is_official ?? false) }
    }
}

extension RegistryClient {
    /// The OCI 1.1 referrers API's index for `subject` (every page); nil when the registry has no
    /// such API (distribution 2.8 answers 404; a registry with it answers 200 with an index, an
    /// empty one when nothing refers to the subject).
    public func referrers(_ reference: Reference, of subject: Digest) async throws -> Data? {
        var path: String? = "/v2/\(reference.repository)/referrers/\(subject)"
        var merged: ImageIndex?
        var pages = 0
        while let current = path, pages < 100 {
            pages += 1
            var headers = HTTPHeaders()
            headers.add(name: "Accept", value: MediaType.ociIndex.rawValue)
            let response = try await send(Call(registry: reference.registry, path: current, headers: headers, scope: Self.pullScope(reference.repository)))
            let body = try await response.body.collect(upTo: 4 << 20)
            let type = response.headers.first(name: "Content-Type")?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) }
            // As go-containerregistry and oras decide: only an index with the index's type is the API.
            guard response.status == .ok, type == MediaType.ociIndex.rawValue else { break }
            let page: ImageIndex
            do { page = try ImageIndex.decode(Data(buffer: body), what: "referrers index") } catch {
                throw RegistryError(.protocolViolation, "\(reference.registry) answered the referrers of \(subject) with something that is not an image index: \(error)")
            }
            if merged == nil { merged = page } else { merged?.manifests += page.manifests }
            guard (merged?.manifests.count ?? 0) <= 10_000 else {
                throw RegistryError(.protocolViolation, "\(reference.registry) lists more than 10,000 referrers of \(subject) in \(reference.familiarName); leave them out with 'referrers: false'")
            }
            path = response.headers.first(name: "Link").flatMap(Self.nextLink)
        }
        return try merged.map { try CanonicalJSON.encode($0) }
    }
}

extension RegistryClient {
    /// A small file from a plain web server (a lookaside signature store): no registry
    /// credentials are sent, redirects are not followed. nil when the server has no such file.
    public func fetchFile(_ url: String, limit: Int) async throws -> Data? {
        let response: HTTPClientResponse
        do { response = try await http.execute(HTTPClientRequest(url: url), timeout: retryPolicy.requestTimeout) } catch {
            throw RegistryError(.network, "cannot read \(url): \(error); check the lookaside URL in registries.d")
        }
        let body = try await response.body.collect(upTo: limit + 1)
        if response.status == .notFound { return nil }
        guard response.status == .ok else { throw RegistryError(.server, "\(url) answered HTTP \(response.status.code)") }
        guard body.readableBytes <= limit else { throw RegistryError(.protocolViolation, "\(url) is larger than \(limit) bytes; it is no signature") }
        return Data(buffer: body)
    }
}
