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

    func pull(_ reference: String, into store: LocalStore, policy: RegistryClient.RetryPolicy) async throws {
        _ = try await RegistryClient.withClient(retryPolicy: policy) { client in
            try await ImagePuller(client: client, store: store).pull([PullRequest(reference: try Reference(parsing: reference))])
        }
    }

    @Test func aCutBlobDownloadResumesWithRange() async throws {
        let op = Operator()
        let repo = try seed(op)
        let base = try LocalStore(path: op.store).findOne("sample/app-1:1.0").manifest.layers[0].digest
        let proxy = try FaultProxy(upstream: registries.plain)
        try proxy.setRules([["method": "GET", "path_contains": "/blobs/\(base)", "cut_after": 100_000, "times": 1]])
        let store = try LocalStore(path: op.dir.file("resumed"))
        try await pull("\(proxy.address)/\(repo)/app:1", into: store, policy: quickRetries())
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
}
