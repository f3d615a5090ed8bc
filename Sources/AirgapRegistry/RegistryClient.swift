import AirgapOCI
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A client for registries speaking the OCI distribution spec / Docker registry v2.
///
/// One HTTP client per process (scoped by `withClient`), per-request TLS settings per registry,
/// Basic and Bearer auth driven by `WWW-Authenticate` challenges, tokens cached per scope,
/// manual redirects (Authorization dropped on a host change), retries with backoff on 5xx and 429.
public final class RegistryClient: Sendable {
    let http: HTTPClient
    let credentials: CredentialStore
    let optionsTable: RegistryOptionsTable
    let state = AuthState()
    let warn: @Sendable (String) -> Void
    public let retryPolicy: RetryPolicy
    let certificateDirectories: [String]

    public struct RetryPolicy: Sendable {
        public var attempts = 5
        public var baseDelay: Double = 0.5
        public var maxDelay: Double = 30
        /// Seconds a request may take before it counts as a network failure.
        public var requestTimeoutSeconds: Int64 = 60
        var requestTimeout: TimeAmount { .seconds(requestTimeoutSeconds) }
        public init() {}
    }

    init(http: HTTPClient, credentials: CredentialStore, options: RegistryOptionsTable, retryPolicy: RetryPolicy,
         certificateDirectories: [String], warn: @escaping @Sendable (String) -> Void) {
        self.http = http
        self.credentials = credentials
        self.optionsTable = options
        self.retryPolicy = retryPolicy
        self.certificateDirectories = certificateDirectories
        self.warn = warn
    }

    /// Runs `body` with a client whose HTTP connections are shut down afterwards.
    public static func withClient<T>(options: RegistryOptionsTable = RegistryOptionsTable(),
                                     credentials: CredentialStore = CredentialStore(),
                                     retryPolicy: RetryPolicy = RetryPolicy(),
                                     certificateDirectories: [String] = AirgapRegistry.certificateDirectories,
                                     warn: @escaping @Sendable (String) -> Void = { _ in },
                                     _ body: (RegistryClient) async throws -> T) async throws -> T {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        // A registry that is there connects within a second or two; on an air-gapped machine a
        // host that is not answers never, and the user should hear so in seconds.
        configuration.timeout = .init(connect: .seconds(5), read: retryPolicy.requestTimeout)
        configuration.decompression = .disabled
        configuration.httpVersion = .automatic
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let client = RegistryClient(http: http, credentials: credentials, options: options, retryPolicy: retryPolicy,
                                    certificateDirectories: certificateDirectories, warn: warn)
        do {
            let result = try await body(client)
            try await http.shutdown()
            return result
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    // MARK: endpoints

    struct Endpoint: Sendable {
        var baseURL: String
        var tls: TLSConfiguration?
    }

    /// Chooses https or http for a registry: https always, except that loopback registries and
    /// `--insecure` ones fall back to plain HTTP when the server does not speak TLS.
    func endpoint(_ registry: String) async throws -> Endpoint {
        if let known = await state.endpoint(registry) { return known }
        let options = optionsTable.options(for: registry)
        let host = registry == "docker.io" ? "registry-1.docker.io" : registry
        let tls = try TLSSetup.configuration(registry: registry, options: options, certificateDirectories: certificateDirectories)
        let secure = Endpoint(baseURL: "https://\(host)", tls: tls)
        let mayUsePlainHTTP = options.insecure || Reference.isLoopback(registry: registry)
        if options.insecure { warn("warning: --insecure: \(registry) is used without TLS certificate verification, or over plain HTTP") }
        guard mayUsePlainHTTP else {
            try await probeTLS(secure, registry: registry)
            await state.setEndpoint(registry, secure)
            return secure
        }
        // Probe plain HTTP first: a TLS server answers it at once with 400, whereas a plain server
        // would sit on a TLS hello until the timeout.
        let plain = Endpoint(baseURL: "http://\(host)", tls: nil)
        do {
            let response = try await http.execute(HTTPClientRequest(url: plain.baseURL + "/v2/"), timeout: .seconds(10))
            _ = try? await response.body.collect(upTo: 1 << 16)
            if response.status != .badRequest {
                await state.setEndpoint(registry, plain)
                return plain
            }
        } catch where Self.isPermanentTransportFailure(error) {
            throw Self.mapTransportError(error, registry: registry)
        } catch {}
        try await probeTLS(secure, registry: registry)
        await state.setEndpoint(registry, secure)
        return secure
    }

    /// One short request to learn early, and clearly, that the certificate is not trusted: the HTTP
    /// client would otherwise retry the handshake until its connect timeout.
    private func probeTLS(_ endpoint: Endpoint, registry: String) async throws {
        var request = HTTPClientRequest(url: endpoint.baseURL + "/v2/")
        request.tlsConfiguration = endpoint.tls
        do {
            let response = try await http.execute(request, timeout: .seconds(3))
            _ = try? await response.body.collect(upTo: 1 << 16)
        } catch {
            // No such host, or nobody listening: say so now, not after every retry.
            if Self.isPermanentTransportFailure(error) { throw Self.mapTransportError(error, registry: registry) }
            if Self.isCertificateProblem(error) {
                throw RegistryError(.tls, "the TLS certificate of \(registry) is not trusted (\(Self.shortTLSReason(error))); give its CA with --ca-file, put it in /etc/docker/certs.d/\(registry)/ca.crt, or use --insecure")
            }
        }
    }

    static func isCertificateProblem(_ error: any Error) -> Bool {
        let text = String(describing: error)
        return text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate") && !text.contains("WRONG_VERSION_NUMBER")
            && text.contains("handshake")
    }

    static func shortTLSReason(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("CERTIFICATE_VERIFY_FAILED") { return "certificate verify failed" }
        if text.contains("hostname") || text.contains("Hostname") { return "the certificate does not name this host" }
        return "TLS handshake failed"
    }

    // MARK: requests

    /// A request against `/v2/…` of a registry. `makeBody` is called for each attempt.
    struct Call: Sendable {
        var registry: String
        var path: String
        var method: HTTPMethod = .GET
        var headers: HTTPHeaders = HTTPHeaders()
        var scope: String?
        var makeBody: (@Sendable () -> HTTPClientRequest.Body)?
        /// Whether the request may be repeated after a failure that happened once the request was sent.
        var idempotent = true
        /// An absolute URL (upload locations); `path` is ignored when set.
        var absoluteURL: String?
    }

    /// Sends a request with auth, redirects and retries. The response body is the caller's to consume.
    func send(_ call: Call) async throws -> HTTPClientResponse {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let response = try await sendAuthenticated(call)
                if response.status == .tooManyRequests || (response.status.code >= 500 && response.status.code != 501) {
                    let retryAfter = Self.retryAfter(response.headers)
                    let body = try? await response.body.collect(upTo: 1 << 16)
                    let detail = body.flatMap { RegistryErrorBody.summary(Data(buffer: $0)) }
                    if attempt < retryPolicy.attempts && call.idempotent {
                        // Said, so a wait between attempts does not read as a stall.
                        let wait = delay(attempt: attempt, retryAfter: retryAfter)
                        warn("note: \(call.registry) answered HTTP \(response.status.code) to \(call.method) \(Self.describePath(call)); retrying in \(String(format: "%.0f", wait.rounded(.up)))s (attempt \(attempt + 1) of \(retryPolicy.attempts))")
                        try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
                        continue
                    }
                    if response.status == .tooManyRequests {
                        let when = retryAfter.map { " in \(Int($0.rounded(.up))) seconds" } ?? " later"
                        throw RegistryError(.rateLimited, "\(call.registry) is rate-limiting requests (HTTP 429\(detail.map { ": \($0)" } ?? "")); try again\(when)")
                    }
                    throw RegistryError(.server, "\(call.registry) answered HTTP \(response.status.code) to \(call.method) \(Self.describePath(call))\(detail.map { ": \($0)" } ?? ""); try again later")
                }
                return response
            } catch let error as RegistryError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                let mapped = Self.mapTransportError(error, registry: call.registry)
                if attempt < retryPolicy.attempts && call.idempotent && mapped.kind == .network && !Self.isPermanentTransportFailure(error) {
                    // Not in silence: a stall of minutes would look like a hang.
                    warn("warning: \(mapped.message); retrying (\(attempt + 1) of \(retryPolicy.attempts))")
                    try await Task.sleep(nanoseconds: UInt64(delay(attempt: attempt, retryAfter: nil) * 1e9))
                    continue
                }
                throw mapped
            }
        }
    }

    func delay(attempt: Int, retryAfter: Double?) -> Double {
        if let retryAfter { return min(max(retryAfter, 0), retryPolicy.maxDelay) }
        let base = retryPolicy.baseDelay * pow(2, Double(attempt - 1))
        return min(base * Double.random(in: 0.8...1.2), retryPolicy.maxDelay)
    }

    static func retryAfter(_ headers: HTTPHeaders) -> Double? {
        guard let value = headers.first(name: "Retry-After")?.trimmingCharacters(in: .whitespaces) else { return nil }
        if let seconds = Double(value) { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value).map { max(0, $0.timeIntervalSinceNow) }
    }

    static func describePath(_ call: Call) -> String {
        call.absoluteURL.map(redactedURL) ?? call.path.split(separator: "?").first.map(String.init) ?? call.path
    }

    static func mapTransportError(_ error: any Error, registry: String) -> RegistryError {
        if let error = error as? RegistryError { return error }
        let text = String(describing: error)
        if isCertificateProblem(error) || text.contains("NIOSSL") || text.contains("handshake") {
            return RegistryError(.tls, "TLS with \(registry) failed (\(shortTLSReason(error))); give its CA with --ca-file or use --insecure")
        }
        if isUnresolvable(error) {
            let host = registry == "docker.io" ? "registry-1.docker.io" : String(registry.split(separator: ":").first ?? Substring(registry))
            if registry == "docker.io" {
                return RegistryError(.network, "cannot resolve \(host): this machine has no route to Docker Hub; on an air-gapped machine, load a bundle instead ('airgap-import load BUNDLE')")
            }
            return RegistryError(.network, "cannot resolve \(host): no name server this machine can reach knows it; check the name, or on an air-gapped machine load a bundle instead")
        }
        if isRefused(error) {
            return RegistryError(.network, "cannot connect to \(registry): nothing is listening there (connection refused); check the address and that the registry is running")
        }
        if text.contains("connectTimeout") || text.contains("Connect timeout") {
            return RegistryError(.network, "cannot connect to \(registry): no answer within 5 seconds; check the address, the route and any firewall")
        }
        if text.contains("deadlineExceeded") || text.contains("readTimeout") {
            return RegistryError(.network, "\(registry) stopped answering (timed out); check the network and try again")
        }
        return RegistryError(.network, "the connection to \(registry) failed (\(plainReason(text))); check the network and try again")
    }

    /// No address for the host: SwiftNIO's resolver failed and no connection was tried.
    static func isUnresolvable(_ error: any Error) -> Bool {
        if error is SocketAddressError.UnknownHost { return true }
        guard let failure = error as? NIOConnectionError else { return false }
        return (failure.dnsAError != nil || failure.dnsAAAAError != nil) && failure.connectionErrors.isEmpty
    }

    /// Every address of the host refused the connection.
    static func isRefused(_ error: any Error) -> Bool {
        func refused(_ e: any Error) -> Bool { (e as? IOError)?.errnoCode == ECONNREFUSED }
        if refused(error) { return true }
        guard let failure = error as? NIOConnectionError, !failure.connectionErrors.isEmpty else { return false }
        return failure.connectionErrors.allSatisfy { refused($0.error) }
    }

    /// Failures another attempt would only repeat: no such host, nobody listening.
    static func isPermanentTransportFailure(_ error: any Error) -> Bool { isUnresolvable(error) || isRefused(error) }

    /// An error's description without Swift type names (`NIOConnectionError.connectFailed: …`).
    static func plainReason(_ text: String) -> String {
        var reason = text.replacingOccurrences(of: #"\b[A-Z][A-Za-z0-9]*(Error|Exception)(\.[A-Za-z0-9]+)*(\([^)]*\))?:?\s*"#, with: "", options: .regularExpression)
        reason = reason.trimmingCharacters(in: .whitespacesAndNewlines.union(CharacterSet(charactersIn: ":()")))
        return reason.isEmpty ? "a network error" : String(reason.prefix(120))
    }

    /// One attempt: auth header from cache, redirects followed by hand, one re-authentication on 401.
    private func sendAuthenticated(_ call: Call) async throws -> HTTPClientResponse {
        let endpoint = try await endpoint(call.registry)
        var authorization = try await authorizationHeader(registry: call.registry, scope: call.scope)
        var reauthenticated = false
        while true {
            let (response, finalURL) = try await sendFollowingRedirects(call, endpoint: endpoint, authorization: authorization)
            guard response.status == .unauthorized, !reauthenticated else { return response }
            // Only the registry's own origin says how to authenticate to it: a challenge from where a
            // redirect led would send the credentials to a token server of that host's choosing.
            guard let origin = Origin(endpoint.baseURL), Origin(finalURL) == origin else { return response }
            reauthenticated = true
            let challenges = response.headers["WWW-Authenticate"].flatMap(AuthChallenge.parse)
            _ = try? await response.body.collect(upTo: 1 << 16)
            guard let challenge = challenges.first(where: { $0.scheme == "bearer" }) ?? challenges.first(where: { $0.scheme == "basic" }) else {
                throw RegistryError(.unauthorized, "\(call.registry) refused access without saying how to authenticate; check the registry's address")
            }
            await state.setChallenge(call.registry, challenge)
            var scope = call.scope
            if let wanted = challenge.scope, !(scope ?? "").contains(wanted) { scope = [scope, wanted].compactMap { $0 }.joined(separator: " ") }
            authorization = try await authorizationHeader(registry: call.registry, scope: scope, forceRefresh: true)
            if authorization == nil {
                throw RegistryError(.unauthorized, "\(call.registry) requires credentials; run 'login \(call.registry)' first")
            }
        }
    }

    /// The response, and the URL that gave it.
    private func sendFollowingRedirects(_ call: Call, endpoint: Endpoint, authorization: String?) async throws -> (HTTPClientResponse, String) {
        var url = call.absoluteURL ?? endpoint.baseURL + call.path
        // Credentials belong to the registry's own origin (scheme, host and port), wherever a
        // redirect or an upload Location points: a blob store on another host, or the same host
        // over plain HTTP or on another port, gets none.
        let registryOrigin = Origin(endpoint.baseURL)
        var method = call.method
        for _ in 0..<6 {
            var request = HTTPClientRequest(url: url)
            request.method = method
            request.headers = call.headers
            if let authorization, let registryOrigin, Origin(url) == registryOrigin {
                request.headers.replaceOrAdd(name: "Authorization", value: authorization)
            }
            // The scheme in any case (a redirect may spell it `HTTPS:`): the registry's TLS settings apply.
            if url.prefix(8).lowercased() == "https://" { request.tlsConfiguration = endpoint.tls }
            if method == call.method, let makeBody = call.makeBody { request.body = makeBody() }
            let response = try await http.execute(request, timeout: retryPolicy.requestTimeout)
            guard [301, 302, 303, 307, 308].contains(response.status.code), let location = response.headers.first(name: "Location") else {
                return (response, url)
            }
            _ = try? await response.body.collect(upTo: 1 << 16)
            guard let next = URL(string: location, relativeTo: URL(string: url))?.absoluteString else {
                throw RegistryError(.protocolViolation, "\(call.registry) redirected to an unreadable location")
            }
            url = next
            if response.status.code == 303 { method = .GET }
        }
        throw RegistryError(.protocolViolation, "\(call.registry) redirected too many times for \(Self.describePath(call))")
    }

    // MARK: auth

    func authorizationHeader(registry: String, scope: String?, forceRefresh: Bool = false) async throws -> String? {
        guard let challenge = await state.challenge(registry) else { return nil }
        let credential = try credentials.credential(for: registry)
        switch challenge.scheme {
        case "basic":
            guard let credential, !credential.isIdentityToken else { return nil }
            return "Basic " + Data("\(credential.username):\(credential.secret)".utf8).base64EncodedString()
        case "bearer":
            let key = "\(registry)|\(scope ?? "")"
            if !forceRefresh, let cached = await state.token(key) { return "Bearer " + cached }
            let token = try await fetchToken(challenge: challenge, registry: registry, scope: scope, credential: credential)
            await state.setToken(key, token.value, expires: token.expires)
            return "Bearer " + token.value
        default:
            throw RegistryError(.unsupported, "\(registry) asks for '\(challenge.scheme)' authentication, which is not supported (Basic and Bearer are)")
        }
    }

    struct Token { var value: String; var expires: Date }

    /// Docker's token protocol: GET realm?service=…&scope=… with Basic credentials when we have them.
    func fetchToken(challenge: AuthChallenge, registry: String, scope: String?, credential: Credential?) async throws -> Token {
        guard let realm = challenge.realm, var components = URLComponents(string: realm), components.scheme != nil else {
            throw RegistryError(.protocolViolation, "\(registry) sent a Bearer challenge without a usable realm")
        }
        var items = components.queryItems ?? []
        if let service = challenge.service { items.append(URLQueryItem(name: "service", value: service)) }
        for s in (scope ?? "").split(separator: " ") { items.append(URLQueryItem(name: "scope", value: String(s))) }
        if let credential, !credential.isIdentityToken { items.append(URLQueryItem(name: "account", value: credential.username)) }
        components.queryItems = items
        guard let url = components.url?.absoluteString else { throw RegistryError(.protocolViolation, "bad token realm from \(registry)") }
        var request = HTTPClientRequest(url: url)
        if let credential, !credential.isIdentityToken {
            // The realm gets the registry's credentials, as the token protocol has it, but never in clear
            // when the registry itself speaks HTTPS.
            if let endpoint = try? await endpoint(registry), endpoint.baseURL.hasPrefix("https://"), !url.hasPrefix("https://") {
                throw RegistryError(.unauthorized, "\(registry) sends its credentials' token requests to \(redactedURL(realm)), which is plain HTTP; refusing to send the credentials in clear (fix the registry's token realm)")
            }
            request.headers.add(name: "Authorization", value: "Basic " + Data("\(credential.username):\(credential.secret)".utf8).base64EncodedString())
        }
        if url.hasPrefix("https://") {
            let realmHost = components.host.map { h in components.port.map { "\(h):\($0)" } ?? h } ?? registry
            request.tlsConfiguration = try TLSSetup.configuration(registry: realmHost, options: optionsTable.options(for: realmHost == registry ? registry : realmHost),
                                                                  certificateDirectories: certificateDirectories)
        }
        let response: HTTPClientResponse
        do { response = try await http.execute(request, timeout: retryPolicy.requestTimeout) }
        catch { throw Self.mapTransportError(error, registry: components.host ?? registry) }
        let body = try await response.body.collect(upTo: 1 << 20)
        let realmName = components.host ?? "the token server"
        switch response.status.code {
        case 200: break
        case 401, 403:
            throw RegistryError(.unauthorized, credential == nil
                ? "\(registry) requires credentials; run 'login \(registry)' first"
                : "the token server \(realmName) for \(registry) rejected the stored credentials; run 'login \(registry)' again")
        default:
            throw RegistryError(.server, "the token server \(realmName) for \(registry) answered HTTP \(response.status.code); try again later")
        }
        struct Reply: Decodable { var token: String?; var access_token: String?; var expires_in: Double?; var issued_at: String? }
        guard let reply = try? JSONDecoder().decode(Reply.self, from: Data(buffer: body)), let value = reply.token ?? reply.access_token, !value.isEmpty else {
            throw RegistryError(.protocolViolation, "the token server \(realmName) for \(registry) sent no token")
        }
        let lifetime = max(reply.expires_in ?? 60, 10)
        let issued = reply.issued_at.flatMap(parseRFC3339) ?? Date()
        // Refresh a little before expiry so a long transfer never presents a stale token.
        let expires = min(issued, Date()).addingTimeInterval(lifetime * 0.9)
        return Token(value: value, expires: expires)
    }

    /// Checks credentials against the registry (`login`): succeeds only when they are accepted.
    public func checkLogin(registry: String, credential: Credential) async throws {
        let endpoint = try await endpoint(registry)
        var request = HTTPClientRequest(url: endpoint.baseURL + "/v2/")
        request.tlsConfiguration = endpoint.tls
        let first: HTTPClientResponse
        do { first = try await http.execute(request, timeout: retryPolicy.requestTimeout) }
        catch { throw Self.mapTransportError(error, registry: registry) }
        _ = try? await first.body.collect(upTo: 1 << 16)
        guard first.status == .unauthorized else {
            if first.status == .ok { return } // a registry without auth accepts anything
            throw RegistryError(.server, "\(registry) answered HTTP \(first.status.code) to /v2/; is this a registry?")
        }
        let challenges = first.headers["WWW-Authenticate"].flatMap(AuthChallenge.parse)
        if let bearer = challenges.first(where: { $0.scheme == "bearer" }) {
            let token = try await fetchToken(challenge: bearer, registry: registry, scope: nil, credential: credential)
            request.headers.replaceOrAdd(name: "Authorization", value: "Bearer " + token.value)
        } else {
            request.headers.replaceOrAdd(name: "Authorization", value: "Basic " + Data("\(credential.username):\(credential.secret)".utf8).base64EncodedString())
        }
        let second: HTTPClientResponse
        do { second = try await http.execute(request, timeout: retryPolicy.requestTimeout) }
        catch { throw Self.mapTransportError(error, registry: registry) }
        _ = try? await second.body.collect(upTo: 1 << 16)
        guard second.status == .ok else {
            throw RegistryError(.unauthorized, "\(registry) rejected the user name or password (HTTP \(second.status.code)); nothing was saved")
        }
    }
}

/// Mutable auth state shared by concurrent requests.
actor AuthState {
    private var endpoints: [String: RegistryClient.Endpoint] = [:]
    private var challenges: [String: AuthChallenge] = [:]
    private var tokens: [String: (value: String, expires: Date)] = [:]

    func endpoint(_ registry: String) -> RegistryClient.Endpoint? { endpoints[registry] }
    func setEndpoint(_ registry: String, _ endpoint: RegistryClient.Endpoint) { endpoints[registry] = endpoint }
    func challenge(_ registry: String) -> AuthChallenge? { challenges[registry] }
    func setChallenge(_ registry: String, _ challenge: AuthChallenge) { challenges[registry] = challenge }
    func token(_ key: String) -> String? {
        guard let entry = tokens[key], entry.expires > Date() else { return nil }
        return entry.value
    }
    func setToken(_ key: String, _ value: String, expires: Date) { tokens[key] = (value, expires) }
}

/// Scheme, host and port of a URL, the unit credentials are bound to (ports defaulted, case folded).
/// Read by a strict parser of its own rather than through URLComponents, whose `host` runs every
/// host through IDNA and so loads ICU (4 MB of pages) for the first request: only
/// `http(s)://[user@]host[:port]` followed by the end, `/`, `?` or `#` is an origin, the host
/// letters, digits, `.`, `-`, `_` or a bracketed IPv6 literal. Anything else (a backslash, percent
/// escapes, a second `@`, non-ASCII) is no origin at all and so never matches the registry's:
/// credentials are withheld, never sent where an other parser would connect.
struct Origin: Equatable {
    var scheme: String
    var host: String
    var port: Int

    init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), bytes[colon...].starts(with: Array("://".utf8)) else { return nil }
        let scheme = String(decoding: bytes[..<colon], as: UTF8.self).lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let start = colon + 3
        let end = bytes[start...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? bytes.endIndex
        var authority = bytes[start..<end]
        if let at = authority.firstIndex(of: UInt8(ascii: "@")) {
            // RFC 3986 userinfo only: a backslash (a path separator to WHATWG parsers) ends it.
            let userinfo = Set("-._~!$&'()*+,;=:%".utf8)
            guard authority[(at + 1)...].firstIndex(of: UInt8(ascii: "@")) == nil,
                  authority[..<at].allSatisfy({ Self.isHex($0) || (0x61...0x7a).contains($0 | 0x20) || userinfo.contains($0) }) else { return nil }
            authority = authority[(at + 1)...]
        }
        var hostBytes = authority, portBytes: ArraySlice<UInt8> = []
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            hostBytes = authority[authority.startIndex...close]
            let rest = authority[(close + 1)...]
            guard hostBytes.dropFirst().dropLast().allSatisfy({ Self.isHex($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }) else { return nil }
            if let first = rest.first {
                guard first == UInt8(ascii: ":") else { return nil }
                portBytes = rest.dropFirst()
            }
        } else {
            if let c = authority.firstIndex(of: UInt8(ascii: ":")) {
                hostBytes = authority[..<c]
                portBytes = authority[(c + 1)...]
            }
            guard hostBytes.allSatisfy({ Self.isHex($0) || (0x61...0x7a).contains($0 | 0x20) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else { return nil }
        }
        guard !hostBytes.isEmpty, portBytes.count <= 5, portBytes.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        self.scheme = scheme
        host = String(decoding: hostBytes, as: UTF8.self).lowercased()
        if portBytes.isEmpty {
            port = scheme == "https" ? 443 : 80
        } else {
            guard let number = Int(String(decoding: portBytes, as: UTF8.self)), number <= 65535 else { return nil }
            port = number
        }
    }

    private static func isHex(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x61...0x66).contains(byte | 0x20)
    }
}
