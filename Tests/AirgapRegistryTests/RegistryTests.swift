import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapStore
import AirgapTestSupport
import AirgapTransfer
import Foundation
import Testing

/// Runs the CLI with its own store and Docker config.
struct Operator {
    let dir = TempDirectory("registry")
    var store: String { dir.file("store") }
    var dockerConfig: String { dir.file("docker-config") }

    @discardableResult
    func run(_ args: [String], store: String? = nil, stdin: String? = nil) throws -> ProcessResult {
        try runProcess(builtBinary("airgap-export"), args, environment: ["AIRGAP_STORE": store ?? self.store, "DOCKER_CONFIG": dockerConfig], stdin: stdin)
    }

    func loadSamples(multiArch: Bool = true) throws {
        let archive = dir.file("samples.tar")
        #expect(try run(["sample-images", "-o", archive, "--multi-arch"]).status == 0)
        #expect(try run(["image", "load", "-i", archive]).status == 0)
    }

    func skopeoDigest(_ reference: String, extra: [String] = ["--tls-verify=false"]) throws -> String {
        let raw = try runProcess("skopeo", ["inspect", "--raw"] + extra + ["docker://\(reference)"], environment: ["REGISTRY_AUTH_FILE": dir.file("no-auth.json")])
        #expect(raw.status == 0, "\(raw.stderr)")
        return Digest.sha256(of: Data(raw.stdout.utf8)).description
    }

    func storeDigest(_ reference: String, store: String? = nil) throws -> String {
        let out = try run(["image", "inspect", reference], store: store)
        let json = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as! [[String: Any]]
        return (json[0]["Descriptor"] as! [String: Any])["digest"] as! String
    }
}

@Suite struct RegistryEnvironmentTests {
    @Test func registriesAreRunningUnderTheTestCommand() {
        if TestRegistries.required { #expect(TestRegistries.available, "scripts/test.sh should have started the registries") }
    }
}

@Suite(.enabled(if: TestRegistries.available)) struct PlainRegistryTests {
    let registries = TestRegistries.current!

    @Test func pushPullRoundTripKeepsDigests() throws {
        let op = Operator()
        try op.loadSamples()
        let repo = TestRegistries.uniqueRepository("rt")
        for (local, name) in [("sample/app-1:1.0", "app"), ("sample/app-multi:1.0", "multi")] {
            let target = "\(registries.plain)/\(repo)/\(name):1"
            let push = try op.run(["image", "push", local, target])
            #expect(push.status == 0, "\(push.stderr)")
            #expect(try op.skopeoDigest(target) == (try op.storeDigest(local)), "registry bytes differ from the store's")
            let second = op.dir.file("second")
            let pull = try op.run(["image", "pull", "--all-platforms", target], store: second)
            #expect(pull.status == 0, "\(pull.stderr)")
            #expect(try op.storeDigest(target, store: second) == (try op.skopeoDigest(target)))
        }
    }

    @Test func platformSelectionFromAnIndex() async throws {
        let op = Operator()
        try op.loadSamples()
        let target = "\(registries.plain)/\(TestRegistries.uniqueRepository("platforms"))/multi:1"
        #expect(try op.run(["image", "push", "sample/app-multi:1.0", target]).status == 0)
        let armStore = op.dir.file("arm")
        #expect(try op.run(["image", "pull", "--platform", "linux/arm64", target], store: armStore).status == 0)
        // One platform of an index is stored as that platform's manifest, byte for byte the
        // registry's, so the store stays a complete layout every OCI reader accepts.
        let store = try LocalStore(path: armStore)
        let entry = try store.findOne(target).entry
        let remote = try ImageIndex.decode(Data(try runProcess("skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://\(target)"]).stdout.utf8))
        let arm = try #require(remote.manifests.first { $0.platform?.architecture == "arm64" })
        #expect(entry.digest == arm.digest && entry.mediaType.isImageManifest && entry.platform?.architecture == "arm64")
        let copied = try runProcess("skopeo", ["copy", "--all", "oci:\(armStore):\(target)", "dir:\(op.dir.file("copied"))"])
        #expect(copied.status == 0, "skopeo reads the store: \(copied.stderr)")
        let missing = try op.run(["image", "pull", "--platform", "linux/s390x", target], store: armStore)
        #expect(missing.status != 0 && missing.stderr.contains("offers linux/amd64, linux/arm64/v8"))
    }

    @Test func sharedBaseLayerIsDownloadedOnce() async throws {
        let op = Operator()
        try op.loadSamples()
        let repo = TestRegistries.uniqueRepository("shared")
        for i in 1...2 { #expect(try op.run(["image", "push", "sample/app-\(i):1.0", "\(registries.plain)/\(repo)/app-\(i):1"]).status == 0) }
        let target = try LocalStore(path: op.dir.file("fresh"))
        let counter = EventCounter()
        let refs = try (1...2).map { try Reference(parsing: "\(registries.plain)/\(repo)/app-\($0):1") }
        _ = try await RegistryClient.withClient { client in
            try await ImagePuller(client: client, store: target, events: { counter.record($0) }).pull(refs.map { CopyRequest(reference: $0) })
        }
        let base = try target.findOne(refs[0].description).manifest.layers[0].digest
        #expect(counter.started.filter { $0 == base }.count == 1)
        // config + app layer per image, base once
        #expect(counter.started.count == 5)
    }

    @Test func unknownTagAndRepositoryErrors() throws {
        let op = Operator()
        let result = try op.run(["image", "pull", "\(registries.plain)/nothing/here:v9"])
        #expect(result.status == 4)
        #expect(result.stderr.contains("'v9'") && result.stderr.contains("nothing/here"))
        #expect(try op.run(["image", "ls", "-q"]).stdout.isEmpty)
    }

    @Test func catalogSearchFindsPushedRepositories() throws {
        let op = Operator()
        try op.loadSamples()
        let repo = TestRegistries.uniqueRepository("searchable")
        #expect(try op.run(["image", "push", "sample/app-2:1.0", "\(registries.plain)/\(repo)/app:1"]).status == 0)
        let search = try op.run(["search", "\(registries.plain)/\(repo)"])
        #expect(search.status == 0, "\(search.stderr)")
        #expect(search.stdout.contains("\(registries.plain)/\(repo)/app"))
    }
}

final class EventCounter: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var started: [Digest] = []
    func record(_ event: TransferEvent) {
        if case .blobStarted(let digest, _, _) = event { lock.withLock { started.append(digest) } }
    }
}

@Suite(.enabled(if: TestRegistries.available)) struct AuthenticatedRegistryTests {
    let registries = TestRegistries.current!

    @Test func tokenAuthAllowsAnonymousPullAndDeniesAnonymousPush() throws {
        let op = Operator()
        try op.loadSamples()
        let target = "\(registries.token)/\(TestRegistries.uniqueRepository("tok"))/app:1"
        let denied = try op.run(["image", "push", "sample/app-1:1.0", target])
        #expect(denied.status == 4)
        #expect(denied.stderr.contains("login"))
        let login = try op.run(["login", "-u", registries.tokenUser, "--password-stdin", registries.token], stdin: registries.tokenPassword + "\n")
        #expect(login.status == 0, "\(login.stderr)")
        let push = try op.run(["image", "push", "sample/app-1:1.0", target])
        #expect(push.status == 0, "\(push.stderr)")
        #expect(try op.run(["logout", registries.token]).status == 0)
        let anonymous = try op.run(["image", "pull", target], store: op.dir.file("anon"))
        #expect(anonymous.status == 0, "\(anonymous.stderr)")
        #expect(try op.storeDigest(target, store: op.dir.file("anon")) == (try op.storeDigest("sample/app-1:1.0")))
    }

    @Test func wrongPasswordWritesNothing() throws {
        let op = Operator()
        for registry in [registries.token, registries.tls] {
            let result = try op.run(["login", "-u", registries.tokenUser, "--password-stdin", "--ca-file", registries.tlsCA, registry], stdin: "not-the-password")
            #expect(result.status == 4)
            #expect(!FileManager.default.fileExists(atPath: op.dockerConfig + "/config.json"))
            #expect(!result.stderr.contains("not-the-password") && !result.stdout.contains("not-the-password"))
        }
    }

    @Test func tlsNeedsTheCAAndCredentials() throws {
        let op = Operator()
        try op.loadSamples()
        let target = "\(registries.tls)/\(TestRegistries.uniqueRepository("tls"))/app:1"
        let untrusted = try op.run(["image", "push", "sample/app-1:1.0", target])
        #expect(untrusted.status == 4)
        #expect(untrusted.stderr.contains("--ca-file"))
        let login = try op.run(["login", "-u", registries.tlsUser, "--password-stdin", "--ca-file", registries.tlsCA, registries.tls], stdin: registries.tlsPassword)
        #expect(login.status == 0, "\(login.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: op.dockerConfig + "/config.json")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let push = try op.run(["image", "push", "--ca-file", registries.tlsCA, "sample/app-1:1.0", target])
        #expect(push.status == 0, "\(push.stderr)")
        #expect(!push.stderr.contains(registries.tlsPassword))
        let skopeo = try op.skopeoDigest(target, extra: ["--cert-dir", registries.tlsCertDir,
                                                        "--creds", "\(registries.tlsUser):\(registries.tlsPassword)"])
        #expect(skopeo == (try op.storeDigest("sample/app-1:1.0")))
    }

    @Test func certsDirectoryLayoutIsHonoured() async throws {
        let op = Operator()
        let certs = op.dir.file("certs.d")
        try FileManager.default.createDirectory(atPath: "\(certs)/\(registries.tls)", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: registries.tlsCA, toPath: "\(certs)/\(registries.tls)/ca.crt")
        let credentials = CredentialStore(environment: ["DOCKER_CONFIG": op.dockerConfig, "HOME": op.dir.path])
        try credentials.save(Credential(username: registries.tlsUser, secret: registries.tlsPassword), for: registries.tls)
        let tags = try await RegistryClient.withClient(credentials: credentials, certificateDirectories: [certs]) { client in
            try await client.catalog(registry: registries.tls)
        }
        #expect(tags.count >= 0)
    }
}
