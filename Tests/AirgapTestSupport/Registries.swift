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
