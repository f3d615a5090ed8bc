import Foundation

/// The throwaway registries `scripts/test.sh` starts on 127.0.0.1 (see scripts/registries.sh).
public struct TestRegistries: Sendable {
    public let plain: String
    public let tls: String
    public let tlsCA: String
    /// A directory holding the CA as ca.crt, for skopeo's --cert-dir.
    public let tlsCertDir: String
    public let tlsUser: String
    public let tlsPassword: String
    public let token: String
    public let tokenUser: String
    public let tokenPassword: String

    public static let current: TestRegistries? = {
        let env = ProcessInfo.processInfo.environment
        guard let plain = env["AIRGAP_TEST_REGISTRY_PLAIN"], let tls = env["AIRGAP_TEST_REGISTRY_TLS"],
              let ca = env["AIRGAP_TEST_REGISTRY_TLS_CA"], let certDir = env["AIRGAP_TEST_REGISTRY_TLS_CERT_DIR"], let tlsUser = env["AIRGAP_TEST_REGISTRY_TLS_USER"],
              let tlsPassword = env["AIRGAP_TEST_REGISTRY_TLS_PASSWORD"], let token = env["AIRGAP_TEST_REGISTRY_TOKEN"],
              let tokenUser = env["AIRGAP_TEST_REGISTRY_TOKEN_USER"], let tokenPassword = env["AIRGAP_TEST_REGISTRY_TOKEN_PASSWORD"]
        else { return nil }
        return TestRegistries(plain: plain, tls: tls, tlsCA: ca, tlsCertDir: certDir, tlsUser: tlsUser, tlsPassword: tlsPassword,
                              token: token, tokenUser: tokenUser, tokenPassword: tokenPassword)
    }()

    /// True when registries are running. Under the test command (`AIRGAP_REQUIRE_REGISTRIES=1`)
    /// a missing registry is a failure of its own test, not a skip.
    public static var available: Bool { current != nil }
    public static var required: Bool { ProcessInfo.processInfo.environment["AIRGAP_REQUIRE_REGISTRIES"] == "1" }

    /// A repository name no other test uses.
    public static func uniqueRepository(_ label: String) -> String {
        "\(label)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// scripts/fault-proxy.py in front of a registry: injects cuts, error statuses and stalls.
public final class FaultProxy: @unchecked Sendable {
    public let address: String
    private let process: Process
    private let dir = TempDirectory("proxy")

    public init(upstream: String) throws {
        let portFile = dir.file("port")
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [packageRoot + "/scripts/fault-proxy.py", "--upstream", upstream, "--port-file", portFile]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var port: String?
        for _ in 0..<100 {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), !text.isEmpty { port = text; break }
            usleep(50_000)
        }
        guard let port else { process.terminate(); throw TestFailure("the fault proxy did not start") }
        address = "127.0.0.1:\(port.trimmingCharacters(in: .whitespacesAndNewlines))"
    }

    /// Replaces the rule list and clears the log (see scripts/fault-proxy.py for the rule fields).
    public func setRules(_ rules: [[String: Any]]) throws {
        _ = try runProcess("curl", ["-sf", "-X", "DELETE", "http://\(address)/__faults"])
        let body = try JSONSerialization.data(withJSONObject: ["rules": rules])
        let result = try runProcess("curl", ["-sf", "-X", "POST", "--data-binary", "@-", "http://\(address)/__faults"], stdinData: body)
        guard result.status == 0 else { throw TestFailure("the fault proxy refused the rules: \(result.stdout)") }
    }

    /// Every proxied request since the last rule change.
    public func log() throws -> [[String: Any]] {
        let result = try runProcess("curl", ["-sf", "http://\(address)/__log"])
        return (try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]) ?? []
    }

    deinit {
        // SIGKILL: the test runner's threads block SIGTERM, and children inherit that mask.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A plain distribution registry of a test's own on 127.0.0.1, so that the test can stop it (the
/// registry a bundle was exported from is gone inside).
public final class ThrowawayRegistry: @unchecked Sendable {
    public let address: String
    private let process = Process()
    private let dir = TempDirectory("registry")

    public init() throws {
        let port = try freePort()
        address = "127.0.0.1:\(port)"
        let config = "version: 0.1\nstorage: {filesystem: {rootdirectory: \(dir.file("data"))}}\nhttp: {addr: \(address)}\nlog: {level: error}\n"
        try Data(config.utf8).write(to: URL(fileURLWithPath: dir.file("config.yml")))
        process.executableURL = URL(fileURLWithPath: try which("docker-registry"))
        process.arguments = ["serve", dir.file("config.yml")]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<100 {
            if try runProcess("curl", ["-sf", "-o", "/dev/null", "http://\(address)/v2/"]).status == 0 { return }
            usleep(100_000)
        }
        stop()
        throw TestFailure("docker-registry did not start on \(address)")
    }

    public var running: Bool { process.isRunning }

    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A TCP port on 127.0.0.1 nobody listens on right now.
public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("no socket") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw TestFailure("cannot bind a port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
