import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapStore
import AirgapTestSupport
import AirgapTransfer
import Foundation
import Testing

/// The real registry behind scripts/fault-proxy.py: cuts, error statuses, stalls, truncation.
@Suite(.enabled(if: TestRegistries.available), .serialized)
struct RegistryFaultTests {
    let registries = TestRegistries.current!

    /// Pushes the sample images to the plain registry and returns their repository.
    func seed(_ op: Operator) throws -> String {
        try op.loadSamples()
        let repo = TestRegistries.uniqueRepository("fault")
        #expect(try op.run(["image", "push", "sample/app-1:1.0", "\(registries.plain)/\(repo)/app:1"]).status == 0)
        return repo
    }

    func quickRetries(timeout: Int64 = 60) -> RegistryClient.RetryPolicy {
        var policy = RegistryClient.RetryPolicy()
        policy.baseDelay = 0.05
        policy.requestTimeoutSeconds = timeout
        return policy
    }

    func pull(_ reference: String, into store: LocalStore, policy: RegistryClient.RetryPolicy,
              warn: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        _ = try await RegistryClient.withClient(retryPolicy: policy, warn: warn) { client in
            try await ImagePuller(client: client, store: store).pull([CopyRequest(reference: try Reference(parsing: reference))])
        }
    }

    @Test func aCutBlobDownloadResumesWithRange() async throws {
        let op = Operator()
        let repo = try seed(op)
        let base = try LocalStore(path: op.store).findOne("sample/app-1:1.0").manifest.layers[0].digest
        let proxy = try FaultProxy(upstream: registries.plain)
        try proxy.setRules([["method": "GET", "path_contains": "/blobs/\(base)", "cut_after": 100_000, "times": 1]])
        let store = try LocalStore(path: op.dir.file("resumed"))
        final class Notes: @unchecked Sendable { let lock = NSLock(); var all: [String] = [] }
        let notes = Notes()
        try await pull("\(proxy.address)/\(repo)/app:1", into: store, policy: quickRetries(), warn: { text in notes.lock.withLock { notes.all.append(text) } })
        // The resume is said, with where it starts.
        #expect(notes.all.contains { $0.contains("resuming from byte") && $0.contains("attempt 2 of") }, "\(notes.all)")
        let image = try store.findOne("\(proxy.address)/\(repo)/app:1")
        #expect(try store.readBlob(image.manifest.layers[0].digest, limit: 1 << 22).count == Int(image.manifest.layers[0].size))
        let ranges = try proxy.log().compactMap { $0["range"] as? String }
        // Resumed from the bytes already written (those that reached the file before the cut).
        let offsets = ranges.compactMap { Int($0.dropFirst("bytes=".count).dropLast()) }
        #expect(offsets.contains { $0 > 0 && $0 <= 100_000 }, "no resume with Range: \(ranges)")
    }

    @Test func rateLimitWithRetryAfterIsHonoured() async throws {
        let op = Operator()
        let repo = try seed(op)
        let proxy = try FaultProxy(upstream: registries.plain)
        try proxy.setRules([["method": "GET", "path_contains": "/manifests/", "status": 429, "retry_after": "1", "times": 1]])
        let started = Date()
        try await pull("\(proxy.address)/\(repo)/app:1", into: try LocalStore(path: op.dir.file("s")), policy: quickRetries())
        #expect(Date().timeIntervalSince(started) >= 1.0, "waited for Retry-After")
        let statuses = try proxy.log().filter { ($0["path"] as? String ?? "").contains("/manifests/") }.compactMap { $0["status"] as? Int }
        #expect(statuses.prefix(2) == [429, 200])
    }

    @Test func serverErrorsAreRetriedThenSucceed() async throws {
        let op = Operator()
        let repo = try seed(op)
        let proxy = try FaultProxy(upstream: registries.plain)
        try proxy.setRules([["path_contains": "/blobs/", "status": 503, "times": 2], ["path_contains": "/manifests/", "status": 502, "times": 1]])
        try await pull("\(proxy.address)/\(repo)/app:1", into: try LocalStore(path: op.dir.file("s")), policy: quickRetries())
        #expect(try proxy.log().contains { $0["status"] as? Int == 503 })
    }

    @Test func persistentServerErrorFailsClearlyWithExitCode4() throws {
        let op = Operator()
        let repo = try seed(op)
        let proxy = try FaultProxy(upstream: registries.plain)
        try proxy.setRules([["path_contains": "/manifests/", "status": 500, "times": 100]])
        let result = try op.run(["image", "pull", "\(proxy.address)/\(repo)/app:1"], store: op.dir.file("s"))
        #expect(result.status == 4)
        #expect(result.stderr.contains("HTTP 500") && result.stderr.contains("try again later"), "\(result.stderr)")
        // The waits between attempts are said, so they do not read as a stall.
        #expect(result.stderr.contains("answered HTTP 500 to GET") && result.stderr.contains("retrying in") && result.stderr.contains("(attempt 2 of"), "\(result.stderr)")
    }

    @Test func aTruncatedManifestIsRefusedAndNothingIsTagged() async throws {
        let op = Operator()
        let repo = try seed(op)
        let proxy = try FaultProxy(upstream: registries.plain)
        try proxy.setRules([["path_contains": "/manifests/", "truncate_body": 100, "times": 10]])
        let store = try LocalStore(path: op.dir.file("s"))
        do {
            try await pull("\(proxy.address)/\(repo)/app:1", into: store, policy: quickRetries())
            Issue.record("a truncated manifest was accepted")
        } catch let error as RegistryError {
            #expect(error.isVerificationFailure, "\(error)")
        }
        #expect(try store.entries().isEmpty)
        #expect(try store.allBlobs().isEmpty)
    }

    @Test func aStalledRegistryTimesOutWithoutAVisiblePartialBlob() async throws {
        let op = Operator()
        let repo = try seed(op)
        let proxy = try FaultProxy(upstream: registries.plain)
        try proxy.setRules([["method": "GET", "path_contains": "/blobs/sha256:", "stall_seconds": 3, "times": 100]])
        let store = try LocalStore(path: op.dir.file("s"))
        var policy = quickRetries(timeout: 1)
        policy.attempts = 2
        do {
            try await pull("\(proxy.address)/\(repo)/app:1", into: store, policy: policy)
            Issue.record("a stalled registry did not time out")
        } catch let error as RegistryError {
            #expect(error.kind == .network, "\(error)")
        }
        #expect(try store.entries().isEmpty)
        // Manifests were verified and kept as cache; no layer is visible.
        let manifestOnly = try store.allBlobs()
        #expect(manifestOnly.count <= 1)
    }

    // MARK: export and push through the proxy, with the built binaries

    func importer(_ op: Operator, _ args: [String]) throws -> ProcessResult {
        try runProcess(builtBinary("airgap-import"), args, environment: ["AIRGAP_STORE": op.dir.file("inside"), "DOCKER_CONFIG": op.dockerConfig])
    }

    /// Seeds two images, writes an export manifest naming them through `host`, and a signing key.
    func exportSetup(_ op: Operator, host: String) throws -> (repo: String, manifest: String) {
        try op.loadSamples()
        let repo = TestRegistries.uniqueRepository("faultx")
        for name in ["app-1", "app-2"] {
            #expect(try op.run(["image", "push", "sample/\(name):1.0", "\(registries.plain)/\(repo)/\(name):1"]).status == 0)
        }
        let manifest = op.dir.file("images.txt")
        try Data("\(host)/\(repo)/app-1:1\n\(host)/\(repo)/app-2:1\n".utf8).write(to: URL(fileURLWithPath: manifest))
        #expect(try op.run(["keygen", "--output-prefix", op.dir.file("k")]).status == 0)
        return (repo, manifest)
    }

    /// Names in a directory that look like a bundle or a piece of one.
    func bundleLeftovers(_ op: Operator) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: op.dir.path).filter { $0.hasPrefix("out.tar") }
    }

    @Test func exportSurvivesCutsAndServerErrorsAndTheBundleVerifies() throws {
        let op = Operator()
        let proxy = try FaultProxy(upstream: registries.plain)
        let (_, manifest) = try exportSetup(op, host: proxy.address)
        try proxy.setRules([
            ["method": "GET", "path_contains": "/blobs/sha256:", "cut_after": 40_000, "times": 1],
            ["method": "GET", "path_contains": "/blobs/sha256:", "status": 503, "times": 2],
            ["method": "GET", "path_contains": "/manifests/", "status": 502, "times": 1],
        ])
        let out = op.dir.file("out.tar")
        let export = try op.run(["bundle", "-f", manifest, "-o", out, "--key", op.dir.file("k.key")], store: op.dir.file("fresh"))
        #expect(export.status == 0, "\(export.stderr)")
        let faults = try proxy.log().compactMap { $0["fault"] as? String }
        #expect(faults.count == 4, "every fault was met: \(faults)")
        // Each wait between attempts was said.
        #expect(export.stderr.contains("answered HTTP 503") && export.stderr.contains("retrying in"), "\(export.stderr)")
        let verify = try importer(op, ["verify", out, "--key", op.dir.file("k.pub")])
        #expect(verify.status == 0, "\(verify.stderr)")
    }

    @Test func exportAgainstAFailingRegistryFailsClearlyAndLeavesNoBundle() throws {
        let op = Operator()
        let proxy = try FaultProxy(upstream: registries.plain)
        let (_, manifest) = try exportSetup(op, host: proxy.address)
        try proxy.setRules([["method": "GET", "path_contains": "/blobs/sha256:", "status": 500, "times": 1000]])
        let export = try op.run(["bundle", "-f", manifest, "-o", op.dir.file("out.tar"), "--key", op.dir.file("k.key")], store: op.dir.file("fresh"))
        #expect(export.status == 4, "\(export.stderr)")
        #expect(export.stderr.contains("HTTP 500") && export.stderr.contains("try again later"), "\(export.stderr)")
        let leftovers = try bundleLeftovers(op)
        #expect(leftovers.isEmpty, "a failed export left \(leftovers)")
        // Nothing unverified became visible in the store either.
        #expect(try LocalStore(path: op.dir.file("fresh")).entries().isEmpty)
    }

    /// A signed bundle of the two seeded images, exported straight from the registry.
    func exportedBundle(_ op: Operator) throws -> (repo: String, bundle: String) {
        let (repo, manifest) = try exportSetup(op, host: registries.plain)
        let out = op.dir.file("out.tar")
        #expect(try op.run(["bundle", "-f", manifest, "-o", out, "--key", op.dir.file("k.key")]).status == 0)
        return (repo, out)
    }

    /// The pushed images are complete and byte-identical to the source ones (skopeo reads both).
    func expectMirrored(_ op: Operator, repo: String, prefix: String) throws {
        for name in ["app-1", "app-2"] {
            #expect(try op.skopeoDigest("\(registries.plain)/\(prefix)/\(repo)/\(name):1") == op.skopeoDigest("\(registries.plain)/\(repo)/\(name):1"))
        }
    }

    @Test func pushSurvivesServerErrorsOnUploadsAndManifests() throws {
        let op = Operator()
        let (repo, out) = try exportedBundle(op)
        let proxy = try FaultProxy(upstream: registries.plain)
        try proxy.setRules([
            ["method": "POST", "path_contains": "/blobs/uploads/", "status": 503, "times": 1],
            ["method": "PUT", "path_contains": "/blobs/uploads/", "status": 502, "times": 2],
            // The connection dropped 100 kB into an upload body: a new session, not a failed push.
            ["method": "PUT", "path_contains": "/blobs/uploads/", "cut_request_after": 100_000, "times": 1],
            ["method": "PUT", "path_contains": "/manifests/", "status": 500, "times": 1],
        ])
        let prefix = TestRegistries.uniqueRepository("faultpush")
        let push = try importer(op, ["push", out, "--key", op.dir.file("k.pub"), "--to", "\(proxy.address)/\(prefix)"])
        #expect(push.status == 0, "\(push.stderr)")
        let faults = try proxy.log().compactMap { $0["fault"] as? String }
        #expect(faults.count == 5 && faults.contains("cut_request_after"), "\(faults)")
        try expectMirrored(op, repo: repo, prefix: prefix)
    }

    @Test func pushAgainstAFailingRegistryTagsNothingAndARerunCompletes() throws {
        let op = Operator()
        let (repo, out) = try exportedBundle(op)
        let proxy = try FaultProxy(upstream: registries.plain)
        try proxy.setRules([["method": "PUT", "path_contains": "/manifests/", "status": 500, "times": 1000]])
        let prefix = TestRegistries.uniqueRepository("faultpush")
        let push = try importer(op, ["push", out, "--key", op.dir.file("k.pub"), "--to", "\(proxy.address)/\(prefix)"])
        #expect(push.status == 4, "\(push.stderr)")
        #expect(push.stderr.contains("HTTP 500"), "\(push.stderr)")
        let tags = try runProcess("skopeo", ["list-tags", "--tls-verify=false", "docker://\(registries.plain)/\(prefix)/\(repo)/app-1"])
        #expect(!tags.stdout.contains("\"1\""), "a failed push left a tag: \(tags.stdout)")
        try proxy.setRules([])
        let rerun = try importer(op, ["push", out, "--key", op.dir.file("k.pub"), "--to", "\(proxy.address)/\(prefix)"])
        #expect(rerun.status == 0, "\(rerun.stderr)")
        try expectMirrored(op, repo: repo, prefix: prefix)
    }

    @Test func aHundredMegabyteManifestIsRefusedWithBoundedMemory() throws {
        let op = Operator()
        let repo = try seed(op)
        let proxy = try FaultProxy(upstream: registries.plain)
        try proxy.setRules([["method": "GET", "path_contains": "/manifests/", "pad_body": 100 << 20, "times": 100]])
        let store = op.dir.file("s")
        let (pull, peakKiB) = try runMeasuringMemory(builtBinary("airgap-export"), ["image", "pull", "\(proxy.address)/\(repo)/app:1"],
                                                     environment: ["AIRGAP_STORE": store, "DOCKER_CONFIG": op.dockerConfig])
        // A registry that serves such a thing is misbehaving: exit 4, like any registry error.
        #expect(pull.status == 4, "\(pull.stderr)")
        #expect(pull.stderr.contains("larger than 8388608 bytes; refusing it"), "\(pull.stderr)")
        #expect(peakKiB < 150 << 10, "peaked at \(peakKiB >> 10) MiB")
        #expect(try LocalStore(path: store).entries().isEmpty)
    }
}
