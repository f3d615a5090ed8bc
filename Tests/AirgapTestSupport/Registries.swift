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
