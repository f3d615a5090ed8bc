import AirgapTestSupport
import Foundation
import Testing

/// scripts/hostile-registry.py: redirects a blob GET to another port over plain HTTP and hands out
/// an upload Location on another host name. Credentials must go to the registry's own origin only.
final class HostileRegistry: @unchecked Sendable {
    let dir = TempDirectory("hostile")
    let port: Int, sidePort: Int
    let process = Process()
    var log: String { dir.file("requests.jsonl") }
    var address: String { "127.0.0.1:\(port)" }
    let password = "s3cret-hostile"

    init(tls: Bool, challengeElsewhere: Bool = false) throws {
        let ports = try runProcess("/usr/bin/python3", ["-c", "import socket\nfor _ in range(2):\n s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1]); s.close()"])
            .stdout.split(separator: "\n").compactMap { Int($0) }
        port = ports[0]; sidePort = ports[1]
        var arguments = [packageRoot + "/scripts/hostile-registry.py", "--port", "\(port)", "--side-port", "\(sidePort)", "--log", dir.file("requests.jsonl"),
                         "--password", password] + (challengeElsewhere ? ["--challenge-elsewhere"] : [])
        if tls {
            let subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
            let made = try runProcess("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
                                                  "-keyout", dir.file("key.pem"), "-out", dir.file("cert.pem")] + subject)
            guard made.status == 0 else { throw TestFailure("openssl: \(made.stderr)") }
            arguments += ["--tls-cert", dir.file("cert.pem"), "--tls-key", dir.file("key.pem")]
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = arguments
        let ready = Pipe()
        process.standardOutput = ready
        process.standardError = FileHandle.nullDevice
        try process.run()
        _ = ready.fileHandleForReading.availableData // "ready"
        // Credentials for the registry's own origin, as `login` would store them.
        let auth = Data("alice:\(password)".utf8).base64EncodedString()
        try FileManager.default.createDirectory(atPath: dir.file("docker-config"), withIntermediateDirectories: true)
        try Data(#"{"auths":{"\#(address)":{"auth":"\#(auth)"}}}"#.utf8).write(to: URL(fileURLWithPath: dir.file("docker-config/config.json")))
    }

    func requests() throws -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    deinit { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
}

@Suite(.serialized) struct CredentialOriginTests {
    func run(_ registry: HostileRegistry, _ args: [String], store: String) throws -> ProcessResult {
        try runProcess(builtBinary("airgap-import"), args, environment: ["AIRGAP_STORE": store, "DOCKER_CONFIG": registry.dir.file("docker-config")])
    }

    /// Who got an Authorization header: only requests to the registry's port under its own host name.
    func expectCredentialsStayed(_ registry: HostileRegistry, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let requests = try registry.requests()
        let leaked = requests.filter { ($0["authorization"] as? Bool) == true &&
            (($0["port"] as? Int) != registry.port || !(($0["host"] as? String) ?? "").hasPrefix("127.0.0.1")) }
        #expect(leaked.isEmpty, "credentials left their origin: \(leaked)", sourceLocation: sourceLocation)
        #expect(requests.contains { ($0["authorization"] as? Bool) == true }, "the credentials were never used at all: \(requests)", sourceLocation: sourceLocation)
    }

    @Test(arguments: [false, true])
    func aRedirectToAnotherPortGetsNoCredentials(tls: Bool) throws {
        let registry = try HostileRegistry(tls: tls)
        let store = registry.dir.file("store")
        let pull = try run(registry, ["image", "pull", "\(registry.address)/hostile/app:1"] + (tls ? ["--ca-file", registry.dir.file("cert.pem")] : []), store: store)
        // The redirect target serves the right bytes, so the pull itself succeeds.
        #expect(pull.status == 0, "\(pull.stderr)")
        #expect(try registry.requests().contains { ($0["port"] as? Int) == registry.sidePort }, "the redirect was not followed")
        try expectCredentialsStayed(registry)
        #expect(!pull.stderr.contains(registry.password) && !pull.stdout.contains(registry.password))
    }

    @Test func aChallengeFromWhereARedirectLedIsNotAnswered() throws {
        let registry = try HostileRegistry(tls: false, challengeElsewhere: true)
        let pull = try run(registry, ["image", "pull", "\(registry.address)/hostile/app:1"], store: registry.dir.file("store"))
        #expect(pull.status != 0)
        let requests = try registry.requests()
        #expect(!requests.contains { (($0["path"] as? String) ?? "").hasPrefix("/token") }, "the other host's token server was asked: \(requests)")
        try expectCredentialsStayed(registry)
    }

    @Test func anUploadLocationOnAnotherHostNameGetsNoCredentials() throws {
        let registry = try HostileRegistry(tls: false)
        let store = registry.dir.file("store")
        let samples = registry.dir.file("samples.tar")
        #expect(try runProcess(builtBinary("airgap-export"), ["sample-images", "-o", samples, "--count", "1"]).status == 0)
        #expect(try run(registry, ["image", "load", "-i", samples], store: store).status == 0)
        _ = try run(registry, ["image", "push", "sample/app-1:1.0", "\(registry.address)/hostile/pushed:1"], store: store)
        #expect(try registry.requests().contains { (($0["host"] as? String) ?? "").hasPrefix("localhost") }, "the upload Location was not used")
        try expectCredentialsStayed(registry)
    }
}
