import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

/// `copy SRC DST` between the real registry, skopeo's layouts and archives, bundles and the store.
@Suite(.enabled(if: TestRegistries.available && toolAvailable("skopeo")), .serialized)
struct CopyTests {
    func skopeoDigest(_ f: BundleFixture, _ transport: String) throws -> String {
        let raw = try runProcess("skopeo", ["inspect", "--raw", "--tls-verify=false", transport], environment: ["REGISTRY_AUTH_FILE": "/nonexistent"])
        #expect(raw.status == 0, "\(raw.stderr)")
        return Digest.sha256(of: Data(raw.stdout.utf8)).description
    }

    @Test func registryToArchiveAndBackKeepsDigests() throws {
        let f = try BundleFixture()
        let ref = "\(f.source)/app-1:1.0"
        let archive = f.dir.file("app.tar")
        let out = try f.exporter(["copy", "docker://\(ref)", "oci-archive:\(archive)"])
        try f.expectOK(out)
        #expect(out.stdout.contains("Digest: \(try skopeoDigest(f, "docker://\(ref)"))"))
        // skopeo reads what copy wrote, and finds the registry's bytes.
        #expect(try skopeoDigest(f, "oci-archive:\(archive):\(ref)") == (try skopeoDigest(f, "docker://\(ref)")))
        let back = "\(f.registries.plain)/\(TestRegistries.uniqueRepository("copy"))/app:2"
        try f.expectOK(f.exporter(["copy", "oci-archive:\(archive)", "docker://\(back)"]))
        #expect(try skopeoDigest(f, "docker://\(back)") == (try skopeoDigest(f, "docker://\(ref)")))
        // Registry to registry: the blobs are mounted from the source repository, not sent again.
        let mirror = "\(f.registries.plain)/\(TestRegistries.uniqueRepository("copy"))/app:3"
        let mounted = try f.exporter(["copy", "docker://\(ref)", "docker://\(mirror)"])
        try f.expectOK(mounted)
        #expect(mounted.stderr.contains("mounted from \(f.repo)/app-1"), "\(mounted.stderr)")
        #expect(try skopeoDigest(f, "docker://\(mirror)") == (try skopeoDigest(f, "docker://\(ref)")))
    }

    @Test func severalImagesGoUnderAPrefix() throws {
        let f = try BundleFixture()
        let store = f.dir.file("s")
        for name in ["app-1", "app-2"] { try f.expectOK(f.exporter(["image", "pull", "\(f.source)/\(name):1.0"], store: store)) }
        let saved = f.dir.file("saved.tar")
        try f.expectOK(f.exporter(["image", "save", "-o", saved, "\(f.source)/app-1:1.0", "\(f.source)/app-2:1.0"], store: store))
        let prefix = TestRegistries.uniqueRepository("mirror")
        try f.expectOK(f.exporter(["copy", "docker-archive:\(saved)", "docker://\(f.registries.plain)/\(prefix)"]))
        for name in ["app-1", "app-2"] {
            #expect(try skopeoDigest(f, "docker://\(f.registries.plain)/\(prefix)/\(f.repo)/\(name):1.0") == (try skopeoDigest(f, "docker://\(f.source)/\(name):1.0")))
        }
        let tagged = try f.exporter(["copy", "docker-archive:\(saved)", "docker://\(f.registries.plain)/\(prefix)/x:1"])
        #expect(tagged.status == 1 && tagged.stderr.contains("holds 2 images"))
        // One image to a bare host lands under that host with its own path, never on Docker Hub.
        let one = f.dir.file("one.tar")
        try f.expectOK(f.exporter(["image", "save", "-o", one, "\(f.source)/app-1:1.0"], store: store))
        let host = try f.exporter(["copy", "-q", "docker-archive:\(one)", "docker://\(f.registries.plain)"])
        try f.expectOK(host)
        #expect(host.stdout == "\(f.source)/app-1:1.0\n", "\(host.stdout)")
        // skopeo's FILE:REF form, the path ending at the first ':'; a bare tag is not written into a layout.
        let pinned = try f.exporter(["copy", "docker-archive:\(one):\(f.source)/app-1:1.0", "oci:\(f.dir.file("l")):\(f.source)/x:1"])
        try f.expectOK(pinned)
        let bare = try f.exporter(["copy", "docker-archive:\(one)", "oci:\(f.dir.file("l2")):v1"])
        #expect(bare.status == 1 && bare.stderr.contains("bare tag"), "\(bare.stderr)")
    }

    /// Archives skopeo wrote (Go's archive/tar) are read in place: no temporary copy of them is
    /// made (TMPDIR is a read-only file system here), and the image arrives as skopeo wrote it.
    @Test func skopeoArchivesAreCopiedInPlace() throws {
        let f = try BundleFixture()
        let readOnly = f.dir.file("read-only-tmp")
        try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: true)
        guard try runProcess("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", readOnly]).status == 0 else {
            print("skipped: cannot mount a tmpfs here; in-place archive copies untested")
            return
        }
        defer { _ = try? runProcess("umount", [readOnly]) }
        let noTemporary = ["TMPDIR": readOnly]
        let ref = "\(f.source)/app-1:1.0"
        for (transport, file) in [("docker-archive", f.dir.file("d.tar")), ("oci-archive", f.dir.file("o.tar"))] {
            let name = "skopeo/\(transport):1"
            let made = try runProcess("skopeo", ["copy", "--src-tls-verify=false", "docker://\(ref)", "\(transport):\(file):\(name)"],
                                      environment: ["REGISTRY_AUTH_FILE": "/nonexistent"])
            #expect(made.status == 0, "\(made.stderr)")
            let layout = f.dir.file("layout-\(transport)")
            try f.expectOK(f.exporter(["copy", "\(transport):\(file)", "oci:\(layout)"], environment: noTemporary))
            let full = "docker.io/skopeo/\(transport):1"
            for what in [["--config", "--raw"], ["--format", "{{.Layers}}"]] {
                let ours = try runProcess("skopeo", ["inspect"] + what + ["oci:\(layout):\(full)"])
                let theirs = try runProcess("skopeo", ["inspect"] + what + ["\(transport):\(file)"])
                #expect(ours.status == 0 && !ours.stdout.isEmpty && ours.stdout == theirs.stdout, "\(transport) \(what): \(ours.stdout) \(ours.stderr) vs \(theirs.stdout)")
            }
            // And on to a registry, byte for byte what the layout holds.
            let target = "\(f.registries.plain)/\(TestRegistries.uniqueRepository("in-place"))/app:1"
            try f.expectOK(f.exporter(["copy", "\(transport):\(file)", "docker://\(target)"]))
            #expect(try skopeoDigest(f, "docker://\(target)") == (try skopeoDigest(f, "oci:\(layout):\(full)")))
        }
        // A compressed archive still goes through a temporary layout: here there is none to write.
        #expect(try runProcess("gzip", ["-k", f.dir.file("d.tar")]).status == 0)
        let gz = try f.exporter(["copy", "docker-archive:\(f.dir.file("d.tar.gz"))", "oci:\(f.dir.file("gz-layout"))"], environment: noTemporary)
        #expect(gz.status != 0, "\(gz.stdout)")
    }

    /// Archives other tools write without a full name, and inputs that are not archives, each get
    /// the sentence for what they are.
    @Test func awkwardArchivesGetTheirOwnSentences() throws {
        let f = try BundleFixture()
        let bare = f.dir.file("bare.tar")
        let made = try runProcess("skopeo", ["copy", "--src-tls-verify=false", "docker://\(f.source)/app-1:1.0", "oci-archive:\(bare):latest"],
                                  environment: ["REGISTRY_AUTH_FILE": "/nonexistent"])
        #expect(made.status == 0, "\(made.stderr)")
        // One image, no full name: the destination names it…
        try f.expectOK(f.exporter(["copy", "oci-archive:\(bare)", "oci:\(f.dir.file("named")):docker.io/sample/named:1"]))
        #expect(try skopeoDigest(f, "oci:\(f.dir.file("named")):docker.io/sample/named:1") == (try skopeoDigest(f, "docker://\(f.source)/app-1:1.0")))
        // …or is asked to.
        let unnamed = try f.exporter(["copy", "oci-archive:\(bare)", "oci:\(f.dir.file("unnamed"))"])
        #expect(unnamed.status == 1 && unnamed.stderr.contains("no full name"), "\(unnamed.stderr)")
        // A compressed archive (read through a temporary layout) names what it holds, not a store.
        #expect(try runProcess("gzip", ["-k", bare]).status == 0)
        let gz = try f.exporter(["copy", "oci-archive:\(bare).gz:sample/other:1", "oci:\(f.dir.file("gz"))"])
        #expect(gz.status == 1 && gz.stderr.contains("holds no image named sample/other:1") && !gz.stderr.contains("image list"), "\(gz.stderr)")
        // A layout given as an archive.
        let layout = f.dir.file("named")
        let dir = try f.exporter(["copy", "oci-archive:\(layout)", "oci:\(f.dir.file("x"))"])
        #expect(dir.status == 1 && dir.stderr.contains("give it as oci:\(layout)"), "\(dir.stderr)")
        // An archive to write in a directory that is not there: said before anything is read.
        let nowhere = try f.exporter(["copy", "oci-archive:\(bare):latest", "oci-archive:\(f.dir.file("no/such/dir"))/x.tar:docker.io/sample/x:1"])
        #expect(nowhere.status == 1 && nowhere.stderr.contains("does not exist") && !nowhere.stderr.contains(".partial"), "\(nowhere.stderr)")
    }

    @Test func aVerifiedBundleCopiesIntoALayoutAndATamperedOneChangesNothing() throws {
        let f = try BundleFixture()
        try f.expectOK(f.makeBundle())
        let layout = f.dir.file("layout")
        let copied = try f.importer(["copy", "bundle:\(f.bundle)", "--key", f.pub, "oci:\(layout)"], store: f.dir.file("unused"))
        try f.expectOK(copied)
        let multi = "\(f.source)/app-multi:1.0"
        #expect(try skopeoDigest(f, "oci:\(layout):\(multi)") == (try skopeoDigest(f, "docker://\(multi)")), "every platform: the index byte for byte")
        let tampered = try tamperedCopy(f, "manifest.json", label: "copy") { $0[$0.startIndex + 3] ^= 0x20 }
        let target = f.dir.file("layout2")
        let refused = try f.importer(["copy", "bundle:\(tampered)", "--key", f.pub, "oci:\(target)"], store: f.dir.file("unused"))
        #expect(refused.status == 3 && refused.stderr.contains("failed verification"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    @Test func aSkopeoLayoutNamedByABareTagIsASource() throws {
        let f = try BundleFixture()
        let layout = f.dir.file("skopeo-layout")
        let made = try runProcess("skopeo", ["copy", "--src-tls-verify=false", "docker://\(f.source)/app-2:1.0", "oci:\(layout):v2"],
                                  environment: ["REGISTRY_AUTH_FILE": "/nonexistent"])
        try #require(made.status == 0, "\(made.stderr)")
        let store = f.dir.file("store")
        try f.expectOK(f.exporter(["copy", "oci:\(layout):v2", "store:team/app:2"], store: store))
        let listed = try f.exporter(["image", "ls"], store: store)
        #expect(listed.stdout.contains("team/app") && listed.stdout.contains(" 2 "), "\(listed.stdout)")
        let bad = try f.exporter(["copy", "ftp://x", "store:"], store: store)
        #expect(bad.status == 2 && bad.stderr.contains("docker://REF"))
        let missing = try f.exporter(["copy", "oci-archive:\(f.dir.file("nope.tar"))", "store:"], store: store)
        #expect(missing.status == 1 && missing.stderr.contains("does not exist; check the path"), "\(missing.status) \(missing.stderr)")
    }
}
