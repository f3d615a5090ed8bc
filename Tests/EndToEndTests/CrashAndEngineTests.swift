import AirgapOCI
import AirgapStore
import AirgapTestSupport
import Foundation
import Testing

/// Starts a command, kills it with SIGKILL after `delay` seconds (if it is still running).
func killMidway(_ executable: String, _ args: [String], environment: [String: String], after delay: Double) throws -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = args
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    Thread.sleep(forTimeInterval: delay)
    let wasRunning = process.isRunning
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    return wasRunning
}

/// Every blob visible in the store hashes to its name: no partial blob was left visible.
func expectStoreConsistent(_ path: String) throws {
    let store = try LocalStore(path: path)
    for (digest, size) in try store.allBlobs() {
        var hasher = DigestHasher()
        let data = try Data(contentsOf: URL(fileURLWithPath: store.blobPath(digest)))
        hasher.update(data)
        #expect(hasher.finalize() == digest && Int64(data.count) == size, "blob \(digest) is not what its name says")
    }
}

@Suite(.enabled(if: TestRegistries.available && toolAvailable("skopeo")), .serialized)
struct CrashTests {
    @Test func killDuringLoadThenRerunCompletes() throws {
        let f = try BundleFixture(baseBytes: 400 << 20, uncompressed: true)
        try f.expectOK(try f.makeBundle())
        let store = f.dir.file("in")
        var interrupted = 0
        for delay in [0.15, 0.4, 0.8] {
            let running = try killMidway(builtBinary("airgap-import"), ["load", f.bundle, "--key", f.pub], environment: ["AIRGAP_STORE": store], after: delay)
            if running { interrupted += 1 }
            // Killed before the end: no tag, and every visible blob is whole and correct.
            if running { #expect(try f.importer(["image", "ls", "-q"], store: store).stdout.isEmpty, "a killed load tagged an image") }
            try expectStoreConsistent(store)
        }
        #expect(interrupted > 0, "the load finished before it could be interrupted; make the bundle bigger")
        let rerun = try f.importer(["load", f.bundle, "--key", f.pub], store: store)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(rerun.stdout.contains("already present"))
        let audit = try f.importer(["audit", f.bundle, "--key", f.pub, "--in-store", "--format", "json"], store: store)
        #expect(audit.status == 0, "the store fails a full re-hash after the rerun: \(audit.stderr)")
    }

    @Test func killDuringPushThenRerunCompletes() throws {
        let f = try BundleFixture(baseBytes: 400 << 20, uncompressed: true)
        try f.expectOK(try f.makeBundle())
        let prefix = TestRegistries.uniqueRepository("crash")
        var interrupted = 0
        // Several points: verification pass, mid-upload, and later (each kill resumes the last one's work).
        for delay in [0.2, 0.6, 1.2] {
            let running = try killMidway(builtBinary("airgap-import"), ["push", f.bundle, "--key", f.pub, "--to", "\(f.registries.plain)/\(prefix)"],
                                         environment: ["AIRGAP_STORE": f.dir.file("in")], after: delay)
            guard running else { continue }
            interrupted += 1
            let tags = try runProcess("skopeo", ["list-tags", "--tls-verify=false", "docker://\(f.registries.plain)/\(prefix)/\(f.repo)/app-1"])
            #expect(!tags.stdout.contains("1.0"), "a killed push left a tag on an incomplete image")
        }
        #expect(interrupted > 0, "the push finished before it could be interrupted; make the bundle bigger")
        let rerun = try f.importer(["push", f.bundle, "--key", f.pub, "--to", "\(f.registries.plain)/\(prefix)"], store: f.dir.file("in"))
        #expect(rerun.status == 0, "\(rerun.stderr)")
        for name in ["app-1", "app-multi"] {
            let a = try runProcess("skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://\(f.source)/\(name):1.0"]).stdout
            let b = try runProcess("skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://\(f.registries.plain)/\(prefix)/\(f.repo)/\(name):1.0"]).stdout
            #expect(!a.isEmpty && a == b)
        }
        // A complete image: skopeo can copy it out of the registry.
        let copy = try runProcess("skopeo", ["copy", "--src-tls-verify=false", "docker://\(f.registries.plain)/\(prefix)/\(f.repo)/app-1:1.0", "oci:\(f.dir.file("check")):x"])
        #expect(copy.status == 0, "\(copy.stderr)")
    }

    @Test func killDuringPullThenRerunResumes() throws {
        let f = try BundleFixture(baseBytes: 400 << 20, uncompressed: true)
        let store = f.dir.file("pulled")
        let reference = "\(f.source)/app-1:1.0"
        var interrupted = 0
        for delay in [0.2, 0.4, 0.7] {
            let running = try killMidway(builtBinary("airgap-export"), ["image", "pull", reference], environment: ["AIRGAP_STORE": store], after: delay)
            guard running else { continue }
            interrupted += 1
            #expect(try f.exporter(["image", "ls", "-q"], store: store).stdout.isEmpty, "a killed pull tagged an image")
            try expectStoreConsistent(store)
        }
        #expect(interrupted > 0, "the pull finished before it could be interrupted; make the image bigger")
        let rerun = try f.exporter(["image", "pull", reference], store: store)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        try expectStoreConsistent(store)
        #expect(try f.exporter(["image", "inspect", reference], store: store).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store + "/.airgap/ingest").filter { $0.hasSuffix(".partial") }.isEmpty,
                "the partial download was not finished and cleaned up")
    }

    @Test func readOnlyBundleDirectoryWorks() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let ro = f.dir.file("usb")
        try FileManager.default.createDirectory(atPath: ro, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: f.bundle, toPath: ro + "/bundle.tar")
        // A read-only bind mount, as a USB stick mounted ro; root ignores chmod, so mount it.
        let mounted = try runProcess("mount", ["--bind", "-o", "ro", ro, ro]).status == 0
            && (try runProcess("mount", ["-o", "remount,bind,ro", ro]).status == 0)
        defer { if mounted { _ = try? runProcess("umount", [ro]) } }
        if mounted {
            #expect(!FileManager.default.createFile(atPath: ro + "/probe", contents: Data()), "the mount is not read-only")
        } else {
            chmod(ro, 0o555)
            chmod(ro + "/bundle.tar", 0o444)
        }
        try f.expectOK(try f.importer(["verify", ro + "/bundle.tar", "--key", f.pub], store: f.dir.file("in")))
        try f.expectOK(try f.importer(["load", ro + "/bundle.tar", "--key", f.pub], store: f.dir.file("in")))
        try f.expectOK(try f.importer(["audit", ro + "/bundle.tar", "--key", f.pub], store: f.dir.file("in")))
    }
}

/// A real dockerd (vfs storage, no iptables, its own socket and roots), started and stopped here.
final class DockerEngine: @unchecked Sendable {
    let dir = TempDirectory("dockerd")
    let process = Process()
    var socket: String { dir.file("docker.sock") }

    /// `extra`: more dockerd flags (`--config-file`, `--insecure-registry`).
    init?(_ extra: [String] = []) {
        guard toolAvailable("dockerd") else { return nil }
        process.executableURL = URL(fileURLWithPath: try! which("dockerd"))
        process.arguments = ["--data-root", dir.file("data"), "--exec-root", dir.file("exec"), "--host", "unix://\(socket)",
                             "--pidfile", dir.file("pid"), "--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none"] + extra
        let log = dir.file("log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: log)
        process.standardError = FileHandle(forWritingAtPath: log)
        guard (try? process.run()) != nil else { return nil }
        for _ in 0..<60 {
            if FileManager.default.fileExists(atPath: socket),
               (try? runProcess("docker", ["-H", "unix://\(socket)", "version"]))?.status == 0 { return }
            Thread.sleep(forTimeInterval: 0.5)
        }
        kill(process.processIdentifier, SIGKILL)
        return nil
    }

    deinit { stopEngine(process, mountsUnder: dir.path) }
}

@Suite(.enabled(if: TestRegistries.available && toolAvailable("skopeo")), .serialized)
struct EngineTests {
    /// A bundle, and beside it bad.tar: the same with a byte flipped late (in the last layer, so an
    /// engine is reading by the time the check fails).
    func bundleAndTamperedCopy() throws -> BundleFixture {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        var data = try Data(contentsOf: URL(fileURLWithPath: f.bundle))
        data[data.count - 20_000] ^= 0xff
        try data.write(to: URL(fileURLWithPath: f.dir.file("bad.tar")))
        return f
    }

    /// podman with vfs storage of the fixture's own.
    func podmanEnvironment(_ f: BundleFixture) throws -> [String: String] {
        let short = f.dir.file("pe")
        try Data("[storage]\ndriver = \"vfs\"\ngraphroot = \"\(short)/s\"\nrunroot = \"\(short)/r\"\n".utf8).write(to: URL(fileURLWithPath: f.dir.file("storage.conf")))
        try Data("[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n".utf8).write(to: URL(fileURLWithPath: f.dir.file("containers.conf")))
        return ["CONTAINERS_STORAGE_CONF": f.dir.file("storage.conf"), "CONTAINERS_CONF": f.dir.file("containers.conf")]
    }

    /// `--into podman` and `--into containerd:NS`: the engine's own command fed the verified bytes;
    /// what it lists afterwards is checked, and a tampered bundle reaches neither.
    @Test(.enabled(if: toolAvailable("podman") && toolAvailable("containerd") && toolAvailable("ctr")))
    func loadIntoPodmanAndContainerd() throws {
        let f = try bundleAndTamperedCopy()
        let podmanEnv = try podmanEnvironment(f)
        let podmanImages = { try runProcess("podman", ["images", "--format", "{{.Repository}}:{{.Tag}}"], environment: podmanEnv).stdout }
        let bad = try runProcess(builtBinary("airgap-import"), ["load", f.dir.file("bad.tar"), "--key", f.pub, "--into", "podman"], environment: podmanEnv)
        #expect(bad.status == 3, "\(bad.stderr)")
        #expect(try podmanImages().isEmpty, "a tampered bundle reached podman")
        let load = try runProcess(builtBinary("airgap-import"), ["load", f.bundle, "--key", f.pub, "--into", "podman"], environment: podmanEnv)
        #expect(load.status == 0, "\(load.stderr)")
        #expect(try podmanImages().contains("\(f.source)/app-1:1.0"))

        let containerd = try Containerd()
        let ctdEnv = ["CONTAINERD_ADDRESS": containerd.address]
        let badCtd = try runProcess(builtBinary("airgap-import"), ["load", f.dir.file("bad.tar"), "--key", f.pub, "--into", "containerd:airgap"], environment: ctdEnv)
        #expect(badCtd.status == 3, "\(badCtd.stderr)")
        #expect(badCtd.stderr.contains("no namespace 'airgap' yet"), "\(badCtd.stderr)") // said before anything is read
        #expect(try containerd.ctr(["-n", "airgap", "images", "ls", "-q"]).stdout.isEmpty, "a tampered bundle reached containerd")
        let ctd = try runProcess(builtBinary("airgap-import"), ["load", f.bundle, "--key", f.pub, "--into", "containerd:airgap"], environment: ctdEnv)
        #expect(ctd.status == 0, "\(ctd.stderr)")
        // ctr says nothing of what it loaded: the names are said here, checked against its listing.
        #expect(ctd.stdout.contains("Loaded image: \(f.source)/app-1:1.0"), "\(ctd.stdout)")
        let listed = try containerd.ctr(["-n", "airgap", "images", "ls"]).stdout
        #expect(listed.contains("\(f.source)/app-1:1.0"), "\(listed)")
        #expect(try containerd.ctr(["-n", "default", "images", "ls", "-q"]).stdout.isEmpty, "only the namespace asked for")
    }

    /// The engine command may be a wrapper that starts the real one (a script around podman): a
    /// bad bundle stops the whole process group, in seconds.
    @Test(.enabled(if: toolAvailable("podman")))
    func aWrappedEngineIsStoppedWholeByABadBundle() throws {
        let f = try bundleAndTamperedCopy()
        let bin = f.dir.file("wrapped-bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        // Not `exec`: podman runs as the wrapper's child.
        try Data("#!/bin/sh\n/usr/bin/podman \"$@\"\n".utf8).write(to: URL(fileURLWithPath: bin + "/podman"))
        chmod(bin + "/podman", 0o755)
        var env = try podmanEnvironment(f)
        env["PATH"] = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let bad = try runProcess("timeout", ["60", builtBinary("airgap-import"), "load", f.dir.file("bad.tar"), "--key", f.pub, "--into", "podman"], environment: env)
        #expect(bad.status == 3, "exit \(bad.status): \(bad.stderr)")
        // The finding once, then one sentence that says where it is and what did not happen.
        #expect(bad.stderr.components(separatedBy: "does not match SHA256SUMS").count == 2, "\(bad.stderr)")
        #expect(bad.stderr.contains("the bundle failed verification (1 finding, in blobs/sha256/") && bad.stderr.contains("nothing was loaded into podman"), "\(bad.stderr)")
        // Every process of this load still alive, found by the storage.conf only it was given (a
        // killed one is gone once reaped: a moment is allowed).
        var left = ""
        for _ in 0..<20 {
            left = try runProcess("/usr/bin/python3", ["-c", """
                import os, sys
                for p in os.listdir('/proc'):
                    try:
                        if sys.argv[1].encode() in open('/proc/%s/environ' % p, 'rb').read(): print(p, open('/proc/%s/cmdline' % p).read().replace('\\0', ' '))
                    except Exception: pass
                """, f.dir.file("storage.conf")]).stdout
            if left.isEmpty { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(left.isEmpty, "the engine outlived the load: \(left)")
        #expect(try runProcess("podman", ["images", "-q"], environment: env).stdout.isEmpty)
        // And through the same wrapper, the good bundle loads.
        let good = try runProcess("timeout", ["60", builtBinary("airgap-import"), "load", f.bundle, "--key", f.pub, "--into", "podman"], environment: env)
        #expect(good.status == 0, "\(good.stderr)")
    }

    @Test func loadIntoARealDockerEngine() throws {
        guard let engine = DockerEngine() else {
            print("skipped: dockerd is not installed or cannot start on this machine (vfs, no iptables); --into docker is untested here")
            return
        }
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let load = try runProcess(builtBinary("airgap-import"), ["load", f.bundle, "--key", f.pub, "--into", "docker"],
                                  environment: ["DOCKER_HOST": "unix://\(engine.socket)"])
        #expect(load.status == 0, "\(load.stderr)")
        let images = try runProcess("docker", ["-H", "unix://\(engine.socket)", "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        #expect(images.stdout.contains("\(f.source)/app-1:1.0"), "\(images.stdout)")
        // The store lists the same images the way Docker does: same template, same fields, same SIZE.
        let store = f.dir.file("store")
        #expect(try f.importer(["load", f.bundle, "--key", f.pub], store: store).status == 0)
        let template = "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"
        let dockerRows = Set(try runProcess("docker", ["-H", "unix://\(engine.socket)", "images", "--format", template]).stdout.split(separator: "\n"))
        let ourRows = Set(try f.importer(["images", "--format", template], store: store).stdout.split(separator: "\n"))
        #expect(!ourRows.isEmpty && ourRows == dockerRows, "docker: \(dockerRows), airgap: \(ourRows)")
        let filtered = try f.importer(["images", "-f", "reference=\(f.source)/app-1:*", "--format", "{{.Repository}}"], store: store).stdout
        #expect(filtered == "\(f.source)/app-1\n", "\(filtered)")
        // A tampered bundle reaches nothing.
        var data = try Data(contentsOf: URL(fileURLWithPath: f.bundle))
        data[data.count - 20_000] ^= 0xff
        try data.write(to: URL(fileURLWithPath: f.dir.file("bad.tar")))
        func listing() throws -> Set<String> {
            Set(try runProcess("docker", ["-H", "unix://\(engine.socket)", "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]).stdout.split(separator: "\n").map(String.init))
        }
        let before = try listing()
        let bad = try runProcess(builtBinary("airgap-import"), ["load", f.dir.file("bad.tar"), "--key", f.pub, "--into", "docker"],
                                 environment: ["DOCKER_HOST": "unix://\(engine.socket)"])
        #expect(bad.status == 3)
        let after = try listing()
        #expect(after == before, "the engine changed: \(after.symmetricDifference(before))")
        // The carrier that once made docker run the attacker's image under a trusted tag: a
        // directory whose pax size hides an archive from libarchive but not from Go.
        let parts = try HandBuiltBundle(f)
        var evil = HandTar()
        evil.add("manifest.json", content: Data(#"[{"Config":"blobs/sha256/\#(String(repeating: "0", count: 64))","RepoTags":["evil:latest"],"Layers":[]}]"#.utf8))
        let carrier = try parts.write("carrier") { tar, name, data in
            tar.add(name, content: data)
            if name == "manifest.json" { tar.add("z/", type: UInt8(ascii: "5"), content: evil.data, headerSize: 0, pax: [("size", "\(evil.data.count)")]) }
            return true
        }
        let smuggled = try runProcess(builtBinary("airgap-import"), ["load", carrier, "--key", f.pub, "--into", "docker"],
                                      environment: ["DOCKER_HOST": "unix://\(engine.socket)"])
        #expect(smuggled.status == 3, "\(smuggled.stderr)")
        #expect(try listing() == before, "the carrier reached the engine")
    }

    @Test(.enabled(if: toolAvailable("containerd") && toolAvailable("ctr")))
    func containerdImportsAPlatformSubset() throws {
        let f = try BundleFixture()
        // Two platforms of the index, chosen explicitly: written as a filtered index.
        try Data("""
        apiVersion: airgap/v1
        kind: ImageSet
        images:
          - ref: \(f.source)/app-multi:1.0
            platforms: [linux/amd64, linux/arm64]
          - ref: \(f.source)/app-multi:1.0@sha256:\(String(repeating: "0", count: 64))
            tag: never
        """.utf8).write(to: URL(fileURLWithPath: f.dir.file("bad-pin.yaml")))
        try Data("""
        apiVersion: airgap/v1
        kind: ImageSet
        images:
          - ref: \(f.source)/app-multi:1.0
            platforms: [linux/amd64, linux/arm64/v8]
        """.utf8).write(to: URL(fileURLWithPath: f.manifest))
        try f.expectOK(try f.makeBundle())
        let containerd = try Containerd()
        let address = containerd.address
        let imported = try runProcess("ctr", ["-a", address, "images", "import", "--all-platforms", f.bundle])
        #expect(imported.status == 0, "\(imported.stdout)\(imported.stderr)")
        let listed = try runProcess("ctr", ["-a", address, "images", "ls", "-q"])
        #expect(listed.stdout.contains("\(f.source)/app-multi:1.0"), "\(listed.stdout)")
        // And the filtered index pushes to distribution.
        let prefix = TestRegistries.uniqueRepository("subset")
        try f.expectOK(try f.importer(["push", f.bundle, "--key", f.pub, "--to", "\(f.registries.plain)/\(prefix)"], store: f.dir.file("in")))
    }
}

/// A real containerd with its own root, state and socket, started and stopped here.
final class Containerd: @unchecked Sendable {
    let dir = TempDirectory("containerd")
    let process = Process()
    var address: String { dir.file("containerd.sock") }

    init() throws {
        process.executableURL = URL(fileURLWithPath: try which("containerd"))
        try Data("version = 2\n".utf8).write(to: URL(fileURLWithPath: dir.file("config.toml")))
        process.arguments = ["--config", dir.file("config.toml"), "--root", dir.file("root"), "--state", dir.file("state"), "--address", address]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<40 where !FileManager.default.fileExists(atPath: address) { Thread.sleep(forTimeInterval: 0.25) }
    }

    func ctr(_ args: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        try runProcess("ctr", ["-a", address] + args, environment: environment)
    }

    deinit { stopEngine(process, mountsUnder: dir.path) }
}

/// SIGTERM, ten seconds' grace, SIGKILL; then what the engine left mounted under its directory.
func stopEngine(_ process: Process, mountsUnder path: String) {
    kill(process.processIdentifier, SIGTERM)
    for _ in 0..<40 where process.isRunning { Thread.sleep(forTimeInterval: 0.25) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    _ = try? runProcess("/bin/sh", ["-c", "umount -R '\(path)' 2>/dev/null; true"])
}
