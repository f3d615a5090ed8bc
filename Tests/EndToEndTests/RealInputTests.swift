import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

/// Inputs other tools wrote, through the built binaries and the real registry: zero-layer images
/// with `"layers": null`, archives skopeo wrote without a name or with a bare tag, a tarred dir:
/// layout, containers/image's own docker-archive fixture, and what OCI readers make of the store.
@Suite(.enabled(if: TestRegistries.available && toolAvailable("skopeo")), .serialized)
struct RealInputTests {
    func skopeo(_ args: [String]) throws -> ProcessResult {
        try runProcess("skopeo", args, environment: ["REGISTRY_AUTH_FILE": "/nonexistent/auth.json"])
    }

    @Test func aZeroLayerImageWithNullLayersTravelsByteForByte() throws {
        let f = try BundleFixture()
        // What buildkit writes for a zero-layer image: "layers": null, inside the digest.
        let layout = f.dir.file("null-layout")
        try FileManager.default.createDirectory(atPath: layout, withIntermediateDirectories: true)
        let config = Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#.utf8)
        let configDigest = Digest.sha256(of: config)
        try config.write(to: URL(fileURLWithPath: "\(layout)/\(configDigest.encoded)"))
        let manifest = Data(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(configDigest)","size":\#(config.count)},"layers":null}"#.utf8)
        try manifest.write(to: URL(fileURLWithPath: "\(layout)/manifest.json"))
        try Data("Directory Transport Version: 1.1\n".utf8).write(to: URL(fileURLWithPath: "\(layout)/version"))
        let ref = "\(f.source)/zero:1"
        let pushed = try skopeo(["copy", "--preserve-digests", "--dest-tls-verify=false", "dir:\(layout)", "docker://\(ref)"])
        try #require(pushed.status == 0, "\(pushed.stderr)")

        try Data("\(ref)\n".utf8).write(to: URL(fileURLWithPath: f.manifest))
        try f.expectOK(f.makeBundle())
        let inside = f.dir.file("inside")
        try f.expectOK(f.importer(["load", f.bundle, "--key", f.pub], store: inside))
        let listed = try f.importer(["image", "inspect", ref], store: inside)
        try f.expectOK(listed)
        // The manifest kept its bytes (null included): the store's entry has the registry's digest.
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: inside + "/index.json"))) as! [String: Any]
        let entry = (index["manifests"] as! [[String: Any]]).first { ($0["annotations"] as? [String: String])?["org.opencontainers.image.ref.name"] == ref }
        #expect(entry?["digest"] as? String == Digest.sha256(of: manifest).description)
        let copied = try skopeo(["copy", "oci:\(inside):\(ref)", "dir:\(f.dir.file("back"))"])
        #expect(copied.status == 0, "skopeo reads it back: \(copied.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: f.dir.file("back") + "/manifest.json")) == manifest)
    }

    @Test func loadedImagesAreNamedAsDockerNamesThemAndNoNameIsDroppedSilently() throws {
        let f = try BundleFixture()
        let ref = "\(f.source)/app-1:1.0"
        let raw = try skopeo(["inspect", "--raw", "--tls-verify=false", "docker://\(ref)"])
        let config = try ImageManifest.decode(Data(raw.stdout.utf8)).config.digest

        // No name in the archive: docker prints the config digest as the image ID.
        let unnamed = f.dir.file("unnamed.tar")
        try #require(try skopeo(["copy", "--src-tls-verify=false", "docker://\(ref)", "oci-archive:\(unnamed)"]).status == 0)
        let loaded = try f.importer(["image", "load", "-i", unnamed], store: f.dir.file("s1"))
        try f.expectOK(loaded)
        #expect(loaded.stdout == "Loaded image ID: \(config)\n")

        // A bare tag is not a reference: loaded without a name, and said so.
        let bare = f.dir.file("bare.tar")
        try #require(try skopeo(["copy", "--src-tls-verify=false", "docker://\(ref)", "oci-archive:\(bare):latest"]).status == 0)
        let warned = try f.importer(["image", "load", "-i", bare], store: f.dir.file("s2"))
        try f.expectOK(warned)
        #expect(warned.stderr.contains("named 'latest', which is not a full image reference"))
        #expect(warned.stdout == "Loaded image ID: \(config)\n")

        // skopeo's dir: transport, tarred, is not an archive: its own sentence, exit 1, nothing stored.
        let dir = f.dir.file("dir-layout")
        try #require(try skopeo(["copy", "--src-tls-verify=false", "docker://\(ref)", "dir:\(dir)"]).status == 0)
        let tarred = f.dir.file("dir.tar")
        #expect(try runProcess("tar", ["-cf", tarred, "-C", dir, "."]).status == 0)
        let store = f.dir.file("s3")
        let refused = try f.importer(["image", "load", "-i", tarred], store: store)
        #expect(refused.status == 1 && refused.stderr.contains("tarred dir: layout"), "\(refused.status) \(refused.stderr)")
        #expect(try f.importer(["image", "ls", "-q"], store: store).stdout.isEmpty)
    }

    @Test func containersImagesDockerArchiveFixtureLoads() throws {
        let fixture = "/usr/share/gocode/src/github.com/containers/image/docker/archive/fixtures/almostempty.tar"
        guard FileManager.default.fileExists(atPath: fixture) else {
            if TestRegistries.required { Issue.record("\(fixture) is missing; run scripts/install-deps.sh") }
            return
        }
        let f = try BundleFixture()
        let loaded = try f.importer(["image", "load", "-i", fixture], store: f.dir.file("s"))
        try f.expectOK(loaded)
        #expect(loaded.stdout == "Loaded image: emptyimage:latest\n")
    }

    @Test func aSinglePlatformPullIsALayoutOCIReadersValidate() throws {
        guard toolAvailable("oci-image-tool") else {
            if TestRegistries.required { Issue.record("oci-image-tool is missing; run scripts/install-deps.sh") }
            return
        }
        let f = try BundleFixture()
        let store = f.dir.file("arm")
        try f.expectOK(f.exporter(["image", "pull", "--platform", "linux/arm64", "\(f.source)/app-multi:1.0"], store: store))
        try f.expectOK(f.exporter(["image", "pull", "\(f.source)/app-1:1.0"], store: store))
        let validated = try runProcess("oci-image-tool", ["validate", "--type", "image", store])
        #expect(validated.status == 0, "\(validated.stdout)\(validated.stderr)")
        let all = try skopeo(["copy", "--all", "oci:\(store):\(f.source)/app-multi:1.0", "dir:\(f.dir.file("multi"))"])
        #expect(all.status == 0, "\(all.stderr)")
    }

    @Test func anExportThatFailedLeavesNothingTheNextOneTripsOver() throws {
        let f = try BundleFixture()
        let store = f.dir.file("cache")
        // The last image needs credentials this machine does not have: the export fails (exit 4) …
        try Data("""
        \(f.source)/app-1:1.0
        \(f.source)/app-multi:1.0
        \(f.registries.token)/private/app:1
        """.utf8).write(to: URL(fileURLWithPath: f.manifest))
        let failed = try f.exporter(["bundle", "-f", f.manifest, "-o", f.dir.file("first.tar"), "--key", f.key, "--cache"], store: store)
        #expect(failed.status == 4, "\(failed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.dir.file("first.tar")))
        // … and the next export, of the multi-arch image alone through the same cache, succeeds.
        try Data("""
        apiVersion: airgap/v1
        kind: ImageSet
        images:
          - ref: \(f.source)/app-multi:1.0
            platforms: all
        """.utf8).write(to: URL(fileURLWithPath: f.manifest))
        let second = try f.exporter(["bundle", "-f", f.manifest, "-o", f.bundle, "--key", f.key, "--cache"], store: store)
        try f.expectOK(second)
        try f.expectOK(f.importer(["verify", f.bundle, "--key", f.pub], store: f.dir.file("inside")))
        // --cache kept every blob the bundle carries.
        let metadata = try JSONSerialization.jsonObject(with: Data(try runProcess("tar", ["-xOf", f.bundle, "airgap/bundle.json"]).stdout.utf8)) as! [String: Any]
        for blob in metadata["blobs"] as! [[String: Any]] {
            let digest = try Digest(parsing: blob["digest"] as! String)
            #expect(FileManager.default.fileExists(atPath: "\(store)/blobs/sha256/\(digest.encoded)"), "\(digest) not cached")
        }
    }
}
