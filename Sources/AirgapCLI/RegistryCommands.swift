import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapStore
import AirgapTransfer
import ArgumentParser
import Foundation

/// `--ca-file` and `--insecure`, on every command that talks to a registry.
struct RegistryFlags: ParsableArguments {
    @Option(name: .customLong("ca-file"), help: ArgumentHelp("Trust this CA certificate (PEM) for registry TLS.", valueName: "FILE"))
    var caFile: String?
    @Flag(help: "Allow plain HTTP or unverified TLS (loopback registries may use plain HTTP without it).")
    var insecure = false

    var table: RegistryOptionsTable { RegistryOptionsTable(defaults: RegistryOptions(caFile: caFile, insecure: insecure)) }

    func withClient<T>(_ body: (RegistryClient) async throws -> T) async throws -> T {
        try await RegistryClient.withClient(options: table, warn: { printErr($0) }, body)
    }
}

struct ImagePull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull", abstract: "Pull images from a registry into the store.",
        discussion: """
        Examples:
          airgap-export image pull httpd:2.4
          airgap-export pull --platform linux/arm64 127.0.0.1:5000/team/app:1
          airgap-export pull --all-platforms alpine:3.19
        """)
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var registry: RegistryFlags
    @Option(name: .customLong("platform"), help: ArgumentHelp("OS/ARCH[/VARIANT] to pull from a multi-platform image (repeatable).", valueName: "PLATFORM"))
    var platforms: [String] = []
    @Flag(name: .customLong("all-platforms"), help: "Pull every platform of a multi-platform image.") var allPlatforms = false
    @Flag(name: .shortAndLong, help: "Print only the pulled references.") var quiet = false
    @OptionGroup var display: ProgressOptions
    @Argument(help: "Image references.") var references: [String]

    func validate() throws {
        if references.isEmpty { throw ValidationError("give at least one image to pull") }
        if allPlatforms && !platforms.isEmpty { throw ValidationError("--platform and --all-platforms exclude each other") }
    }

    func run() async throws {
        let store = try globals.openStore()
        let platforms = try self.platforms.map { try Platform(parsing: $0) }
        let requests = try references.map { CopyRequest(reference: try Reference(parsing: $0), platforms: platforms, allPlatforms: allPlatforms) }
        let progress = display.renderer(verb: "Pull", quiet: quiet)
        let resolved = try await registry.withClient { client in
            try await ImagePuller(client: client, store: store, events: progress.handle).pull(requests)
        }
        progress.finish()
        for image in resolved {
            if !quiet { print("Digest: \(image.top.digest)") }
            print(image.name.description)
        }
    }
}

struct ImagePush: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push", abstract: "Push an image from the store to a registry.",
        discussion: """
        Examples:
          airgap-import image push registry.internal:5000/web/httpd:2.4
          airgap-import image push httpd:2.4 registry.internal:5000/web/httpd:2.4
        """)
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var registry: RegistryFlags
    @Flag(name: .shortAndLong, help: "Print only the pushed digest.") var quiet = false
    @OptionGroup var display: ProgressOptions
    @Argument(help: "Image name or ID in the store.") var source: String
    @Argument(help: "Where to push (defaults to the image's own name).") var target: String?

    func run() async throws {
        let store = try globals.openStoreForReading()
        let image = try store.findOne(source)
        let destination: Reference
        if let target { destination = try Reference(parsing: target) }
        else if let name = image.reference { destination = name }
        else { throw CommandError(.usage, "\(source) has no name; give the target reference to push it to") }
        let progress = display.renderer(verb: "Push", quiet: quiet)
        let digest = try await registry.withClient { client in
            try await ImagePusher(client: client, store: store, events: progress.handle).push(image, to: destination)
        }
        progress.finish()
        print(quiet ? digest.description : "\(destination.familiarDescription): digest: \(digest) size: \(image.entry.size)")
    }
}

/// Reads a SERVER argument the way `docker login` does (`https://host/`, `host:port`, nothing = Docker Hub).
func registryHost(_ server: String?) throws -> String {
    guard var text = server?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return Reference.dockerHub }
    for prefix in ["https://", "http://"] where text.hasPrefix(prefix) { text.removeFirst(prefix.count) }
    if let slash = text.firstIndex(of: "/") { text = String(text[..<slash]) }
    let normalized = CredentialStore.key(for: text) == CredentialStore.dockerHubKey ? Reference.dockerHub : text
    guard !normalized.isEmpty, !normalized.contains(" ") else { throw CommandError(.usage, "'\(server ?? "")' is not a registry address such as registry.example.com:5000") }
    return normalized
}

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login", abstract: "Log in to a registry (credentials checked before they are saved).",
        discussion: """
        Examples:
          airgap-export login registry.example.com
            (asks for the user name and password)
          echo "$TOKEN" | airgap-export login -u ci --password-stdin reg.example.com
        """)
    @OptionGroup var registry: RegistryFlags
    @Option(name: .shortAndLong, help: "User name.") var username: String?
    @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input.") var passwordStdin = false
    @Option(name: .shortAndLong, help: .hidden) var password: String?
    @Argument(help: "Registry (default: Docker Hub).") var server: String?

    func run() async throws {
        let host = try registryHost(server)
        // Like docker login: on a terminal, ask for what was not given (the password without echo).
        let interactive = !passwordStdin && password == nil && isTerminal(0)
        var user = username ?? ""
        if user.isEmpty && interactive { user = TerminalPrompt.line("Username: ") ?? "" }
        guard !user.isEmpty else { throw CommandError(.usage, "give the user name with -u USER (on a terminal, login asks for it)") }
        var secret = password ?? ""
        if password != nil { printErr("warning: --password puts the password in the process list and shell history; prefer --password-stdin") }
        if passwordStdin {
            var data = FileHandle.standardInput.readDataToEndOfFile()
            while let last = data.last, last == 0x0a || last == 0x0d { data.removeLast() }
            secret = String(decoding: data, as: UTF8.self)
        } else if interactive {
            secret = TerminalPrompt.secret("Password: ") ?? ""
        }
        guard !secret.isEmpty else { throw CommandError(.usage, "no password given: on a terminal login asks for it; in a script, pipe it into --password-stdin") }
        let username = user
        let credential = Credential(username: username, secret: secret)
        try await registry.withClient { client in try await client.checkLogin(registry: host, credential: credential) }
        let store = CredentialStore()
        try store.save(credential, for: host)
        print("Login Succeeded")
    }
}

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logout", abstract: "Remove stored credentials for a registry.",
        discussion: """
        Examples:
          airgap-export logout registry.example.com
        """)
    @Argument(help: "Registry (default: Docker Hub).") var server: String?

    func run() async throws {
        let host = try registryHost(server)
        if try CredentialStore().remove(for: host) { print("Removing login credentials for \(host)") }
        else { print("Not logged in to \(host)") }
    }
}

struct Search: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search", abstract: "Search a registry (and the local store) for images.",
        discussion: """
        Examples:
          airgap-export search nginx
          airgap-import search registry.internal:5000/web --limit 10
        """)
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var registry: RegistryFlags
    @Option(help: "Maximum number of results.") var limit = 25
    @Option(help: "table or json.") var format = "table"
    @Flag(name: .customLong("no-trunc"), help: "Do not truncate descriptions.") var noTrunc = false
    @Argument(help: "[REGISTRY/]TERM") var term: String

    func validate() throws {
        guard limit > 0 && limit <= 100 else { throw ValidationError("--limit must be between 1 and 100") }
        guard ["table", "json"].contains(format) else { throw ValidationError("--format must be table or json") }
    }

    func run() async throws {
        var host = Reference.dockerHub
        var query = term
        if let slash = term.firstIndex(of: "/") {
            let first = String(term[..<slash])
            if first.contains(".") || first.contains(":") || first == "localhost" {
                host = first
                query = String(term[term.index(after: slash)...])
            }
        }
        let remote = try await registry.withClient { client in try await client.search(registry: host, term: query, limit: limit) }
        var results = remote
        // The local store answers too, so the command is useful with no network at all.
        if let store = try? globals.openStoreForReading(), let images = try? store.images() {
            let names = Set(images.compactMap { $0.reference?.familiarName }).filter { $0.contains(query.lowercased()) }
            for name in names.sorted() where !results.contains(where: { $0.name == name }) && results.count < limit {
                results.append(SearchResult(name: name, description: "(local store)"))
            }
        }
        if format == "json" {
            for r in results { print(Format.json(r, pretty: false)) }
            return
        }
        let rows = results.map { r in
            [r.name, noTrunc || r.description.count <= 45 ? r.description : String(r.description.prefix(44)) + "…",
             "\(r.stars)", r.official ? "[OK]" : ""]
        }
        print(Format.table(["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], rows))
    }
}

/// Questions on the terminal: a line, or a secret read with echo off (restored on Ctrl-C too).
enum TerminalPrompt {
    nonisolated(unsafe) static var saved = termios()

    static func line(_ prompt: String) -> String? {
        writeOut(1, prompt)
        return readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces)
    }

    static func secret(_ prompt: String) -> String? {
        var settings = termios()
        guard tcgetattr(0, &settings) == 0 else { return line(prompt) }
        saved = settings
        settings.c_lflag &= ~tcflag_t(ECHO)
        signal(SIGINT) { _ in
            tcsetattr(0, TCSANOW, &TerminalPrompt.saved)
            _exit(130)
        }
        tcsetattr(0, TCSANOW, &settings)
        defer {
            tcsetattr(0, TCSANOW, &saved)
            signal(SIGINT, SIG_DFL)
            writeOut(1, "\n")
        }
        writeOut(1, prompt)
        return readLine(strippingNewline: true)
    }
}
