import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

/// Connected side → bundle → restricted side, with the built binaries, real registries and real peers.
final class BundleFixture: @unchecked Sendable {
    let dir = TempDirectory("bundle")
    let registries = TestRegistries.current!
    let repo = TestRegistries.uniqueRepository("src")
    var source: String { "\(registries.plain)/\(repo)" }
    var manifest: String { dir.file("images.yaml") }
    var bundle: String { dir.file("bundle.tar") }
    var key: String { dir.file("signer.key") }
    var pub: String { dir.file("signer.pub") }

    init(baseBytes: Int = 256 << 10, uncompressed: Bool = false) throws {
        let samples = dir.file("samples.tar")
        try expectOK(exporter(["sample-images", "-o", samples, "--multi-arch", "--base-bytes", "\(baseBytes)"] + (uncompressed ? ["--uncompressed"] : [])))
        let staging = dir.file("staging")
        try expectOK(exporter(["image", "load", "-i", samples], store: staging))
        for name in ["app-1", "app-2", "app-multi"] {
            try expectOK(exporter(["image", "push", "sample/\(name):1.0", "\(source)/\(name):1.0"], store: staging))
        }
        try Data("""
        apiVersion: airgap/v1
        kind: ImageSet
        platforms: [linux/amd64]
        images:
          - \(source)/app-1:1.0
          - ref: \(source)/app-2:1.0
          - ref: \(source)/app-multi:1.0
            platforms: all
        """.utf8).write(to: URL(fileURLWithPath: manifest))
        try expectOK(exporter(["keygen", "--output-prefix", dir.file("signer")]))
    }

    var outsideStore: String { dir.file("outside") }

    @discardableResult
    func exporter(_ args: [String], store: String? = nil, environment: [String: String] = [:]) throws -> ProcessResult {
        try runProcess(builtBinary("airgap-export"), args, environment: ["AIRGAP_STORE": store ?? outsideStore, "DOCKER_CONFIG": dir.file("docker-config")]
                       .merging(environment) { _, b in b })
    }

    @discardableResult
    func importer(_ args: [String], store: String, stdin: String? = nil) throws -> ProcessResult {
        try runProcess(builtBinary("airgap-import"), args, environment: ["AIRGAP_STORE": store, "DOCKER_CONFIG": dir.file("docker-config")], stdin: stdin)
    }

    /// `created` sets SOURCE_DATE_EPOCH, the bundle's signed creation time.
    func makeBundle(_ extra: [String] = [], output: String? = nil, created: Int? = nil) throws -> ProcessResult {
        try exporter(["bundle", "-f", manifest, "-o", output ?? bundle, "--key", key] + extra,
                     environment: created.map { ["SOURCE_DATE_EPOCH": "\($0)"] } ?? [:])
    }

    func expectOK(_ result: ProcessResult, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(result.status == 0, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
    }

    func tarEntries(_ path: String) throws -> [String] {
        try runProcess("tar", ["tf", path]).stdout.split(separator: "\n").map(String.init)
    }
}

@Suite(.enabled(if: TestRegistries.available && toolAvailable("skopeo")), .serialized)
struct ExportTests {
    @Test func bundleIsDeduplicatedSignedAndReadableByPeers() throws {
        let f = try BundleFixture()
        let made = try f.makeBundle()
        try f.expectOK(made)
        #expect(made.stderr.contains("resolved to sha256:"))
        let entries = try f.tarEntries(f.bundle)
        #expect(Array(entries.prefix(6)) == ["airgap/bundle.json", "airgap/SHA256SUMS", "airgap/SHA256SUMS.sig", "oci-layout", "index.json", "manifest.json"])
        let blobs = entries.filter { $0.hasPrefix("blobs/") }
        #expect(Set(blobs).count == blobs.count, "each blob once")
        #expect(blobs == blobs.sorted(), "blobs sorted by digest")
        // The export streams registry → bundle: the store is a cache it does not write without --cache.
        #expect(!FileManager.default.fileExists(atPath: f.outsideStore + "/index.json"))

        // sha256sum -c and openssl verify, after plain extraction.
        let x = f.dir.file("extracted")
        try FileManager.default.createDirectory(atPath: x, withIntermediateDirectories: true)
        #expect(try runProcess("tar", ["xf", f.bundle, "-C", x]).status == 0)
        // The shared base layer is there once although three images use it.
        let docker = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: x + "/manifest.json"))) as! [[String: Any]]
        let layerLists = docker.map { $0["Layers"] as! [String] }
        #expect(layerLists.count == 3 && layerLists.allSatisfy { $0.count == 2 })
        #expect(Set(layerLists.map { $0[0] }).count == 1, "one base layer shared by all")
        #expect(blobs.filter { $0 == layerLists[0][0] }.count == 1)
        let sums = try runProcess("/bin/sh", ["-c", "cd '\(x)' && sha256sum -c airgap/SHA256SUMS"])
        #expect(sums.status == 0, "\(sums.stdout)\(sums.stderr)")
        let openssl = try runProcess("openssl", ["pkeyutl", "-verify", "-pubin", "-inkey", f.pub, "-rawin", "-in", x + "/airgap/SHA256SUMS", "-sigfile", x + "/airgap/SHA256SUMS.sig"])
        #expect(openssl.status == 0 && openssl.stdout.contains("Signature Verified Successfully"), "\(openssl.stdout)\(openssl.stderr)")
        #expect(try runProcess("openssl", ["pkey", "-in", f.key, "-noout"]).status == 0)

        // skopeo reads it as an OCI archive; podman loads it.
        let copy = try runProcess("skopeo", ["copy", "oci-archive:\(f.bundle):\(f.source)/app-2:1.0", "oci:\(f.dir.file("sk")):x"])
        #expect(copy.status == 0, "\(copy.stderr)")
        if toolAvailable("podman") {
            let load = try podman(f.dir.file("podman"), ["load", "-i", f.bundle])
            #expect(load.status == 0, "\(load.stderr)")
            #expect(load.stdout.contains("app-1") && load.stdout.contains("app-multi"))
        }
    }

    @Test func sameInputsGiveAByteIdenticalBundle() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle(created: 1_700_000_000))
        sleep(1) // a second later: the clock must not leak into the bundle
        try f.expectOK(try f.makeBundle(output: f.dir.file("again.tar"), created: 1_700_000_000))
        // A fresh store: nothing reused from the first run.
        try f.expectOK(try runProcess(builtBinary("airgap-export"), ["bundle", "-f", f.manifest, "-o", f.dir.file("fresh.tar"), "--key", f.key, "--store", f.dir.file("fresh-store")],
                                      environment: ["SOURCE_DATE_EPOCH": "1700000000", "DOCKER_CONFIG": f.dir.file("docker-config")]))
        let digests = try [f.bundle, f.dir.file("again.tar"), f.dir.file("fresh.tar")].map { Digest.sha256(of: try Data(contentsOf: URL(fileURLWithPath: $0))) }
        #expect(Set(digests).count == 1)
        // The signed creation time is SOURCE_DATE_EPOCH's.
        let metadata = try JSONSerialization.jsonObject(with: Data(runProcess("tar", ["xOf", f.bundle, "airgap/bundle.json"]).stdout.utf8)) as! [String: Any]
        #expect(metadata["created"] as? String == "2023-11-14T22:13:20Z")
        #expect(metadata["formatVersion"] as? Int == 2)
    }

    @Test func splitVolumesConcatenateToTheSingleFile() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle(created: 1_700_000_000))
        try f.expectOK(try f.makeBundle(["--split-size", "100K"], output: f.dir.file("split.tar"), created: 1_700_000_000))
        let volumes = try FileManager.default.contentsOfDirectory(atPath: f.dir.path).filter { $0.hasPrefix("split.tar.0") }.sorted()
        #expect(volumes.count >= 4)
        var joined = Data()
        for v in volumes { joined.append(try Data(contentsOf: URL(fileURLWithPath: f.dir.file(v)))) }
        #expect(joined == (try Data(contentsOf: URL(fileURLWithPath: f.bundle))))
        #expect(FileManager.default.fileExists(atPath: f.dir.file("split.tar.volumes.json.sig")))
        let verify = try f.importer(["verify", f.dir.file("split.tar.001"), "--key", f.pub], store: f.dir.file("in"))
        #expect(verify.status == 0, "\(verify.stderr)")
    }

    @Test func sinceLeavesOutExactlyTheReceiptsBlobs() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let inside = f.dir.file("inside")
        try f.expectOK(try f.importer(["load", f.bundle, "--key", f.pub], store: inside))
        // The inside now holds app-1 only: write a receipt from a store with just that image.
        let partial = f.dir.file("partial")
        try f.expectOK(try f.exporter(["image", "pull", "\(f.source)/app-1:1.0"], store: partial))
        let receipt = f.dir.file("receipt.json")
        try f.expectOK(try f.importer(["receipt", "-o", receipt], store: partial))
        let held = Set(((try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: receipt))) as! [String: Any])["blobs"] as! [String]))
        let incremental = f.dir.file("incremental.tar")
        try f.expectOK(try f.makeBundle(["--since", receipt], output: incremental))
        let full = Set(try f.tarEntries(f.bundle).filter { $0.hasPrefix("blobs/") })
        let carried = Set(try f.tarEntries(incremental).filter { $0.hasPrefix("blobs/") })
        let left = full.subtracting(carried).map { "sha256:" + $0.dropFirst("blobs/sha256/".count) }
        // Layers and configs in the receipt are left out; manifests always travel.
        let json = try runProcess("tar", ["xOf", incremental, "airgap/bundle.json"]).stdout
        let required = ((try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any])["requiredOnInside"] as! [[String: Any]]).map { $0["digest"] as! String }
        #expect(Set(left) == Set(required))
        #expect(Set(required).isSubset(of: held))
        #expect(!required.isEmpty)
        // Loading it into the store that has app-1 works; into an empty store it names what is missing.
        try f.expectOK(try f.importer(["load", incremental, "--key", f.pub], store: partial))
        let empty = try f.importer(["load", incremental, "--key", f.pub], store: f.dir.file("empty"))
        #expect(empty.status == 3)
        #expect(empty.stderr.contains("required on the inside"))
        #expect(try f.importer(["image", "ls", "-q"], store: f.dir.file("empty")).stdout.isEmpty)
    }

    @Test func pushOfASinceBundleMountsLeftOutBlobsFromTheReceiptsPrefix() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let host = f.registries.plain
        let first = "\(host)/\(f.repo)-first", second = "\(host)/\(f.repo)-second"
        try f.expectOK(try f.importer(["push", f.bundle, "--key", f.pub, "--to", first], store: f.dir.file("in")))
        let receipt = f.dir.file("receipt.json")
        try f.expectOK(try f.importer(["receipt", "--registry", first, "-o", receipt], store: f.dir.file("in")))
        let delta = f.dir.file("delta.tar")
        try f.expectOK(try f.makeBundle(["--since", receipt], output: delta))
        let json = try runProcess("tar", ["xOf", delta, "airgap/bundle.json"]).stdout
        let metadata = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        #expect(metadata["sinceRegistry"] as? String == first)
        #expect(!(metadata["requiredOnInside"] as! [Any]).isEmpty)
        // To a new prefix of the same registry: every left-out blob is mounted from the first one.
        let pushed = try f.importer(["push", delta, "--key", f.pub, "--to", second], store: f.dir.file("in"))
        try f.expectOK(pushed)
        #expect(pushed.stderr.contains("mounted from \(f.repo)-first/"), "\(pushed.stderr)")
        // What landed there is whole: a pull re-hashes every blob.
        try f.expectOK(try f.exporter(["image", "pull", "--all-platforms", "\(second)/\(f.repo)/app-multi:1.0"], store: f.dir.file("check")))
        try f.expectOK(try f.exporter(["image", "pull", "\(second)/\(f.repo)/app-1:1.0"], store: f.dir.file("check")))
        // A delta whose receipt named no registry has nothing to mount from: refused, no tag made.
        let partial = f.dir.file("partial")
        try f.expectOK(try f.exporter(["image", "pull", "\(f.source)/app-1:1.0"], store: partial))
        try f.expectOK(try f.importer(["receipt", "-o", receipt], store: partial))
        try f.expectOK(try f.makeBundle(["--since", receipt], output: delta))
        let third = "\(host)/\(f.repo)-third"
        let refused = try f.importer(["push", delta, "--key", f.pub, "--to", third], store: f.dir.file("in"))
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("left out (--since)") && refused.stderr.contains("push the earlier bundle first"), "\(refused.stderr)")
        #expect(try f.exporter(["image", "pull", "\(third)/\(f.repo)/app-2:1.0"], store: f.dir.file("check")).status != 0)
    }

    @Test func badManifestsNameLineAndProblem() throws {
        let f = try BundleFixture()
        let cases: [(String, String)] = [
            ("apiVersion: airgap/v1\nkind: ImageSet\nimages:\n  - httpd\n  - Bad/Name\n", ":5: bad image reference"),
            ("apiVersion: airgap/v1\nkind: ImageSet\nimagez:\n  - httpd\n", ":3: unknown key 'imagez'"),
            ("apiVersion: airgap/v1\nkind: ImageSet\nimages:\n  - ref: httpd\n    platforms: [linux]\n", ":5: bad platform 'linux'"),
            ("apiVersion: airgap/v1\nkind: ImageSet\nimages:\n  - httpd\n  - docker.io/library/httpd:latest\n", ":5: duplicate image httpd:latest (first listed on line 4)"),
            ("httpd\n# comment\nnot a reference\n", ":3: expected one image reference"),
            ("apiVersion: airgap/v1\nkind: ImageSet\nimages:\n  - ref: httpd\n    colour: blue\n", ":5: unknown key 'colour'"),
            ("apiVersion: airgap/v1\nkind: ImageSet\nimages:\n  - ref: httpd\n    referrers: maybe\n", ":5: referrers must be true or false, not 'maybe'"),
            ("apiVersion: airgap/v1\nkind: ImageSet\nreferrers: no\nimages:\n  - httpd\n", ":3: referrers must be true or false, not 'no'"),
        ]
        for (text, expected) in cases {
            let path = f.dir.file("bad.yaml")
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            let result = try f.exporter(["bundle", "-f", path, "-o", f.dir.file("never.tar"), "--key", f.key])
            #expect(result.status == 2, "\(text)")
            #expect(result.stderr.contains("bad.yaml" + expected), "got: \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: f.dir.file("never.tar")))
        }
        // A manifest or key that is not there at all: exit 1 like any missing input, naming the path.
        let noManifest = try f.exporter(["bundle", "-f", f.dir.file("nowhere.yaml"), "-o", f.dir.file("never.tar"), "--key", f.key])
        #expect(noManifest.status == 1 && noManifest.stderr.contains("nowhere.yaml: cannot read the manifest"), "\(noManifest.stderr)")
        let noKey = try f.exporter(["bundle", "-f", f.manifest, "-o", f.dir.file("never.tar"), "--key", f.dir.file("nowhere.key")])
        #expect(noKey.status == 1 && noKey.stderr.contains("nowhere.key"), "\(noKey.stderr)")
        // Well-formed, but the registry has no such tag: the error still names the line.
        let path = f.dir.file("missing.txt")
        try Data("\(f.source)/app-1:1.0\n\(f.source)/app-1:no-such-tag\n".utf8).write(to: URL(fileURLWithPath: path))
        let missing = try f.exporter(["bundle", "-f", path, "-o", f.dir.file("never.tar"), "--key", f.key])
        #expect(missing.status == 4, "\(missing.stderr)")
        #expect(missing.stderr.contains("missing.txt:2: the tag 'no-such-tag' does not exist"), "got: \(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.dir.file("never.tar")))
    }
}
