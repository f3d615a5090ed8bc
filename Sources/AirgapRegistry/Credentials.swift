import Foundation

public struct Credential: Sendable, Equatable {
    public var username: String
    public var secret: String
    public init(username: String, secret: String) { self.username = username; self.secret = secret }
    /// Identity tokens (username `<token>`) go to the token endpoint as refresh tokens, not as Basic auth.
    public var isIdentityToken: Bool { username == "<token>" }
}

/// Docker's client config (`$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`), with
/// `auths`, `credsStore` and `credHelpers`; containers' auth.json (`REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json`) is read too. Secrets are never printed or logged.
public struct CredentialStore: Sendable {
    public let configPath: String
    let extraAuthFiles: [String]
    let environment: [String: String]

    public static let dockerHubKey = "https://index.docker.io/v1/"

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
        let home = environment["HOME"] ?? NSHomeDirectory()
        let dir = environment["DOCKER_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.docker"
        configPath = dir + "/config.json"
        var extra: [String] = []
        if let file = environment["REGISTRY_AUTH_FILE"], !file.isEmpty { extra.append(file) }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { extra.append(runtime + "/containers/auth.json") }
        extra.append(home + "/.config/containers/auth.json")
        extraAuthFiles = extra
    }

    /// The key a registry's entry has in `auths`: Docker Hub's aliases share one.
    public static func key(for registry: String) -> String {
        switch registry {
        case "docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/": return dockerHubKey
        default: return registry
        }
    }

    /// Host names a stored `auths` key may use for a registry (with or without scheme and path).
    static func matches(_ key: String, registry: String) -> Bool {
        if key == CredentialStore.key(for: registry) { return true }
        var host = key
        if let range = host.range(of: "://") { host = String(host[range.upperBound...]) }
        if let slash = host.firstIndex(of: "/") { host = String(host[..<slash]) }
        return CredentialStore.key(for: host) == CredentialStore.key(for: registry)
    }

    func readConfig(_ path: String) -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object
    }

    /// Credentials for a registry, or nil for anonymous access.
    public func credential(for registry: String) throws -> Credential? {
        let config = readConfig(configPath)
        let key = CredentialStore.key(for: registry)
        if let helpers = config["credHelpers"] as? [String: String], let helper = helpers.first(where: { CredentialStore.matches($0.key, registry: registry) })?.value {
            return try CredentialHelper(name: helper).get(serverURL: key)
        }
        if let entry = authEntry(in: config, registry: registry) { return entry }
        if let store = config["credsStore"] as? String, !store.isEmpty {
            if let found = try CredentialHelper(name: store).get(serverURL: key) { return found }
        }
        for file in extraAuthFiles {
            if let entry = authEntry(in: readConfig(file), registry: registry) { return entry }
        }
        return nil
    }

    private func authEntry(in config: [String: Any], registry: String) -> Credential? {
        guard let auths = config["auths"] as? [String: Any] else { return nil }
        for (key, value) in auths where CredentialStore.matches(key, registry: registry) {
            guard let entry = value as? [String: Any] else { continue }
            if let token = entry["identitytoken"] as? String, !token.isEmpty { return Credential(username: "<token>", secret: token) }
            if let auth = entry["auth"] as? String, let decoded = Data(base64Encoded: auth).map({ String(decoding: $0, as: UTF8.self) }),
               let colon = decoded.firstIndex(of: ":") {
                return Credential(username: String(decoded[..<colon]), secret: String(decoded[decoded.index(after: colon)...]))
            }
        }
        return nil
    }

    /// Stores credentials: through the configured helper, else base64 in `auths`; the file is mode 0600.
    public func save(_ credential: Credential, for registry: String) throws {
        var config = readConfig(configPath)
        let key = CredentialStore.key(for: registry)
        let helper = (config["credHelpers"] as? [String: String])?.first(where: { CredentialStore.matches($0.key, registry: registry) })?.value
            ?? (config["credsStore"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        if let helper {
            try CredentialHelper(name: helper).store(serverURL: key, credential: credential)
            var auths = config["auths"] as? [String: Any] ?? [:]
            auths[key] = [String: Any]()
            config["auths"] = auths
        } else {
            var auths = config["auths"] as? [String: Any] ?? [:]
            for existing in auths.keys where CredentialStore.matches(existing, registry: registry) { auths.removeValue(forKey: existing) }
            auths[key] = ["auth": Data("\(credential.username):\(credential.secret)".utf8).base64EncodedString()]
            config["auths"] = auths
        }
        try write(config)
    }

    /// Removes credentials; returns false when there were none.
    @discardableResult
    public func remove(for registry: String) throws -> Bool {
        var config = readConfig(configPath)
        let key = CredentialStore.key(for: registry)
        var removed = false
        let helper = (config["credHelpers"] as? [String: String])?.first(where: { CredentialStore.matches($0.key, registry: registry) })?.value
            ?? (config["credsStore"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        if let helper { removed = (try? CredentialHelper(name: helper).erase(serverURL: key)) != nil }
        if var auths = config["auths"] as? [String: Any] {
            for existing in auths.keys where CredentialStore.matches(existing, registry: registry) {
                auths.removeValue(forKey: existing)
                removed = true
            }
            config["auths"] = auths
        }
        if removed { try write(config) }
        return removed
    }

    private func write(_ config: [String: Any]) throws {
        let dir = (configPath as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        // Written to a private temp file and renamed, so the secret is never readable by others, even briefly.
        let temp = configPath + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temp, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw RegistryError(.unsupported, "cannot write \(configPath); check the directory's permissions")
        }
        chmod(temp, 0o600)
        guard rename(temp, configPath) == 0 else {
            unlink(temp)
            throw RegistryError(.unsupported, "cannot write \(configPath): \(String(cString: strerror(errno)))")
        }
    }
}

/// A `docker-credential-NAME` helper program (get / store / erase over stdin and stdout).
struct CredentialHelper {
    let name: String
    var program: String { "docker-credential-" + name }

    private func run(_ action: String, input: Data) throws -> (status: Int32, output: Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program, action]
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch {
            throw RegistryError(.unsupported, "the credential helper \(program) could not be started; install it or remove it from \(CredentialStore().configPath)")
        }
        stdin.fileHandleForWriting.write(input)
        try? stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    func get(serverURL: String) throws -> Credential? {
        let (status, output) = try run("get", input: Data(serverURL.utf8))
        guard status == 0 else { return nil } // "credentials not found"
        struct Reply: Decodable { var Username: String; var Secret: String }
        guard let reply = try? JSONDecoder().decode(Reply.self, from: output) else {
            throw RegistryError(.unsupported, "the credential helper \(program) gave an unreadable answer")
        }
        return Credential(username: reply.Username, secret: reply.Secret)
    }

    func store(serverURL: String, credential: Credential) throws {
        let payload = try JSONSerialization.data(withJSONObject: ["ServerURL": serverURL, "Username": credential.username, "Secret": credential.secret])
        let (status, _) = try run("store", input: payload)
        guard status == 0 else { throw RegistryError(.unsupported, "the credential helper \(program) refused to store the credentials") }
    }

    func erase(serverURL: String) throws {
        let (status, _) = try run("erase", input: Data(serverURL.utf8))
        guard status == 0 else { throw RegistryError(.unsupported, "the credential helper \(program) could not erase the credentials") }
    }
}
