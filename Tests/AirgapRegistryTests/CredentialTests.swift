import AirgapRegistry
import AirgapTestSupport
import Foundation
import Testing

@Suite struct CredentialTests {
    @Test func dockerHubAliasesShareOneEntry() throws {
        let dir = TempDirectory("creds")
        let store = CredentialStore(environment: ["DOCKER_CONFIG": dir.path, "HOME": dir.path])
        try store.save(Credential(username: "u", secret: "p"), for: "docker.io")
        for alias in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            #expect(try store.credential(for: alias) == Credential(username: "u", secret: "p"))
        }
        let text = try String(contentsOfFile: dir.file("config.json"), encoding: .utf8)
        #expect(text.contains("https://index.docker.io/v1/"))
        #expect(!text.contains("\"p\""), "the secret is stored base64-encoded as Docker does")
        let mode = try FileManager.default.attributesOfItem(atPath: dir.file("config.json"))[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try store.remove(for: "registry-1.docker.io"))
        #expect(try store.credential(for: "docker.io") == nil)
    }

    @Test func readsContainersAuthFile() throws {
        let dir = TempDirectory("creds")
        let auth = dir.file("auth.json")
        try Data(#"{"auths":{"registry.example.com:5000":{"auth":"\#(Data("alice:s3cret".utf8).base64EncodedString())"}}}"#.utf8)
            .write(to: URL(fileURLWithPath: auth))
        let store = CredentialStore(environment: ["DOCKER_CONFIG": dir.file("none"), "HOME": dir.path, "REGISTRY_AUTH_FILE": auth])
        #expect(try store.credential(for: "registry.example.com:5000") == Credential(username: "alice", secret: "s3cret"))
        #expect(try store.credential(for: "other.example.com") == nil)
    }

    /// A real credential helper program speaking Docker's helper protocol over stdin/stdout.
    @Test func credentialHelpersAreRun() throws {
        let dir = TempDirectory("creds")
        let bin = dir.file("bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let helper = """
        #!/bin/sh
        # Test helper: keeps one secret in a file next to itself.
        store="\(dir.path)/helper-data"
        case "$1" in
          get) server=$(cat); if [ -f "$store" ]; then cat "$store"; else echo "credentials not found"; exit 1; fi ;;
          store) cat > "$store" ;;
          erase) cat >/dev/null; rm -f "$store" ;;
        esac
        """
        try Data(helper.utf8).write(to: URL(fileURLWithPath: bin + "/docker-credential-airgaptest"))
        chmod(bin + "/docker-credential-airgaptest", 0o755)
        try Data(#"{"credHelpers":{"reg.example.com":"airgaptest"}}"#.utf8).write(to: URL(fileURLWithPath: dir.file("config.json")))
        setenv("PATH", bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"), 1)
        let store = CredentialStore(environment: ["DOCKER_CONFIG": dir.path, "HOME": dir.path])
        #expect(try store.credential(for: "reg.example.com") == nil)
        try store.save(Credential(username: "bob", secret: "hunter2"), for: "reg.example.com")
        #expect(try store.credential(for: "reg.example.com") == Credential(username: "bob", secret: "hunter2"))
        let config = try String(contentsOfFile: dir.file("config.json"), encoding: .utf8)
        #expect(!config.contains("hunter2"), "with a helper the secret stays out of config.json")
        #expect(try store.remove(for: "reg.example.com"))
        #expect(try store.credential(for: "reg.example.com") == nil)
    }

    @Test func challengeParsing() {
        let challenges = AuthChallenge.parse(#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push", Basic realm="x""#)
        #expect(challenges.count == 2)
        #expect(challenges[0].scheme == "bearer")
        #expect(challenges[0].realm == "https://auth.example.com/token")
        #expect(challenges[0].scope == "repository:a/b:pull,push")
        #expect(challenges[1].scheme == "basic")
    }
}
