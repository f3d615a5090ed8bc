import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

/// `airgap-import serve` running as its own process on 127.0.0.1, any free port.
final class ServeProcess: @unchecked Sendable {
    let dir = TempDirectory("serve")
    let process = Process()
    private(set) var address = ""
    var out: String { (try? String(contentsOfFile: dir.file("out"), encoding: .utf8)) ?? "" }
    var err: String { (try? String(contentsOfFile: dir.file("err"), encoding: .utf8)) ?? "" }

    /// Starts it and waits for "Listening on"; nil (with the output kept) when it exits first.
    init(_ arguments: [String], store: String, environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: builtBinary("airgap-import"))
        process.arguments = ["--store", store, "serve", "--listen", "127.0.0.1:0"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, b in b }
        _ = FileManager.default.createFile(atPath: dir.file("out"), contents: nil)
        _ = FileManager.default.createFile(atPath: dir.file("err"), contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: dir.file("out"))
        process.standardError = FileHandle(forWritingAtPath: dir.file("err"))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<600 {
            if let line = out.split(separator: "\n").first(where: { $0.hasPrefix("Listening on ") }) {
                address = String(line.split(separator: "/").last ?? "")
                return
            }
            if !process.isRunning { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    var listening: Bool { !address.isEmpty }

    /// SIGTERM, then the exit status.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        for _ in 0..<100 where process.isRunning { Thread.sleep(forTimeInterval: 0.1) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { stop() }
}

/// A server's access log (`--log FILE`): what it answered since a mark.
struct AccessLogFile {
    let path: String
    var mark: Int { (try? String(contentsOfFile: path, encoding: .utf8).count) ?? 0 }
    /// A 200 for a request whose path contains `path` (GET or HEAD: containerd resolves with HEAD,
    /// and may add `?ns=`), logged after `since`.
    func answered(_ path: String, since: Int) throws -> Bool {
        try String(contentsOfFile: self.path, encoding: .utf8).dropFirst(since).split(separator: "\n").contains {
            $0.contains(" \(path)") && $0.contains(" 200 ")
        }
    }
}

/// The biggest entry of a tar (GNU tar's listing): its name and size.
func largestEntry(in tar: String) throws -> (name: String, size: Int) {
    let line = try runProcess("/bin/sh", ["-c", "tar tvf '\(tar)' | sort -k3 -n | tail -1"]).stdout
    let fields = line.split(separator: " ", omittingEmptySubsequences: true)
    return (String(fields.last!.trimmingCharacters(in: .whitespacesAndNewlines)), Int(fields[2])!)
}

func curl(_ args: [String]) throws -> ProcessResult { try runProcess("curl", ["-sS", "--max-time", "30"] + args) }

func rawDigest(_ reference: String) throws -> String {
    let raw = try runProcess("/bin/sh", ["-c", "skopeo inspect --raw --tls-verify=false 'docker://\(reference)' | sha256sum"])
    return String(raw.stdout.prefix(64))
}

@Suite(.enabled(if: TestRegistries.available && toolAvailable("skopeo")), .serialized)
struct ServeTests {
    /// skopeo, podman, buildah and containerd pull from a served bundle, by the served name and,
    /// through the written mirror configuration, by the original name.
    @Test func realClientsPullFromAServedBundle() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let mirror = f.dir.file("mirror")
        let serve = try ServeProcess([f.bundle, "--key", f.pub, "--mirror-config", mirror, "--log", f.dir.file("access.log")], store: f.dir.file("in"))
        #expect(serve.listening, "\(serve.out)\(serve.err)")
        guard serve.listening else { return }
        let served = "\(serve.address)/\(f.repo)"

        // skopeo copy --all: the same digests as the source registry, every platform.
        for name in ["app-1", "app-multi"] {
            let copy = try runProcess("skopeo", ["copy", "--all", "--src-tls-verify=false", "docker://\(served)/\(name):1.0", "oci:\(f.dir.file("sk-\(name)")):x"])
            #expect(copy.status == 0, "\(copy.stderr)")
            #expect(try rawDigest("\(served)/\(name):1.0") == rawDigest("\(f.source)/\(name):1.0"))
        }
        // The whole HTTP path: Range over the socket, pagination with Link, writes refused.
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: f.dir.file("sk-app-1/index.json")))) as! [String: Any]
        let top = (index["manifests"] as! [[String: Any]])[0]["digest"] as! String
        let ranged = try curl(["-i", "-H", "Range: bytes=5-14", "http://\(serve.address)/v2/\(f.repo)/app-1/blobs/\(top)"])
        #expect(ranged.stdout.hasPrefix("HTTP/1.1 206") && ranged.stdout.contains("Content-Range: bytes 5-14/"), "\(ranged.stdout)")
        let page = try curl(["-i", "http://\(serve.address)/v2/_catalog?n=2"])
        #expect(page.stdout.contains("Link: </v2/_catalog?n=2&last="), "\(page.stdout)")
        let put = try curl(["-i", "-X", "PUT", "--data", "x", "http://\(serve.address)/v2/\(f.repo)/app-1/manifests/evil"])
        #expect(put.stdout.hasPrefix("HTTP/1.1 405") && put.stdout.contains("UNSUPPORTED"))

        if toolAvailable("podman") {
            let pulled = try podman(f.dir.file("podman"), ["pull", "--tls-verify=false", "\(served)/app-multi:1.0"])
            #expect(pulled.status == 0, "\(pulled.stderr)")
            // By the original name, through the written registries.conf.
            let before = try String(contentsOfFile: f.dir.file("access.log"), encoding: .utf8).count
            let original = try runProcess("podman", ["--root", f.dir.file("podman2/storage"), "--runroot", f.dir.file("podman2/run"), "--storage-driver", "vfs",
                                                      "--events-backend", "none", "--cgroup-manager", "cgroupfs", "pull", "\(f.source)/app-2:1.0"],
                                          environment: ["CONTAINERS_REGISTRIES_CONF": mirror + "/containers/registries.conf"])
            #expect(original.status == 0, "\(original.stderr)")
            let log = try String(contentsOfFile: f.dir.file("access.log"), encoding: .utf8).dropFirst(before)
            #expect(log.contains("GET /v2/\(f.repo)/app-2/manifests/1.0 200"), "the pull did not come from the mirror: \(log)")
        }
        if toolAvailable("buildah") {
            let root = f.dir.file("buildah")
            let from = try runProcess("buildah", ["--root", root + "/storage", "--runroot", root + "/run", "--storage-driver", "vfs",
                                                  "from", "--tls-verify=false", "docker://\(served)/app-1:1.0"])
            #expect(from.status == 0, "\(from.stderr)")
        }
        if toolAvailable("containerd") && toolAvailable("ctr") {
            let containerd = try Containerd()
            let plain = try containerd.ctr(["images", "pull", "--plain-http", "\(served)/app-multi:1.0"])
            #expect(plain.status == 0, "\(plain.stdout)\(plain.stderr)")
            let before = try String(contentsOfFile: f.dir.file("access.log"), encoding: .utf8).count
            let mirrored = try containerd.ctr(["images", "pull", "--hosts-dir", mirror + "/containerd/certs.d", "\(f.source)/app-1:1.0"])
            #expect(mirrored.status == 0, "\(mirrored.stdout)\(mirrored.stderr)")
            let log = try String(contentsOfFile: f.dir.file("access.log"), encoding: .utf8).dropFirst(before)
            #expect(log.contains("/v2/\(f.repo)/app-1/manifests/1.0"), "the pull did not come from the mirror: \(log)")
            let listed = try containerd.ctr(["images", "ls", "-q"])
            #expect(listed.stdout.contains("\(f.source)/app-1:1.0"))
        }
        #expect(serve.stop() == 0, "\(serve.err)")
        #expect(serve.err.contains("Stopped serving"))
    }

    /// HTTPS with a self-signed certificate and a --prefix: skopeo, podman and containerd pull by the
    /// original names through the written configuration, trusting the certificate it put beside it.
    @Test func tlsAndPrefixThroughTheMirrorConfig() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let cert = f.dir.file("cert.pem"), key = f.dir.file("key.pem")
        let made = try runProcess("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                              "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        try #require(made.status == 0, "\(made.stderr)")
        let mirror = f.dir.file("mirror"), log = f.dir.file("access.log")
        let serve = try ServeProcess([f.bundle, "--key", f.pub, "--tls-cert", cert, "--tls-key", key, "--prefix", "site/mirror",
                                      "--mirror-config", mirror, "--log", log], store: f.dir.file("in"))
        #expect(serve.listening && serve.out.contains("Listening on https://"), "\(serve.out)\(serve.err)")
        guard serve.listening else { return }
        let served = "\(serve.address)/site/mirror/\(f.repo)"
        // Untrusted without the certificate; trusted with it; names only under the prefix.
        #expect(try curl(["-o", "/dev/null", "https://\(serve.address)/v2/"]).status != 0)
        let trusted = try curl(["--cacert", cert, "-o", "/dev/null", "-w", "%{http_code}", "https://\(serve.address)/v2/\(f.repo)/app-1/manifests/1.0"])
        #expect(trusted.stdout == "404", "\(trusted.stdout)\(trusted.stderr)")
        let certDir = "\(mirror)/containers/certs.d/\(serve.address)"
        #expect(FileManager.default.fileExists(atPath: certDir + "/ca.crt"))
        let access = AccessLogFile(path: log)
        func fromMirror(_ manifest: String, since before: Int) throws -> Bool {
            try access.answered("/v2/site/mirror/\(f.repo)/\(manifest)", since: before)
        }
        var before = 0
        let copy = try runProcess("skopeo", ["--registries-conf", mirror + "/containers/registries.conf", "copy", "--src-cert-dir", certDir,
                                             "--src-tls-verify=false", "docker://\(f.source)/app-multi:1.0", "oci:\(f.dir.file("sk")):x"])
        #expect(copy.status == 0, "\(copy.stderr)")
        #expect(try fromMirror("app-multi/manifests/1.0", since: before), "skopeo did not pull from the mirror")
        #expect(try rawDigest("\(f.source)/app-multi:1.0") == String(runProcess("/bin/sh", ["-c",
            "skopeo inspect --raw --cert-dir '\(certDir)' 'docker://\(served)/app-multi:1.0' | sha256sum"]).stdout.prefix(64)))
        if toolAvailable("podman") {
            before = access.mark
            let pulled = try runProcess("podman", ["--root", f.dir.file("podman/storage"), "--runroot", f.dir.file("podman/run"), "--storage-driver", "vfs",
                                                   "--events-backend", "none", "--cgroup-manager", "cgroupfs", "pull", "--cert-dir", certDir, "\(f.source)/app-2:1.0"],
                                        environment: ["CONTAINERS_REGISTRIES_CONF": mirror + "/containers/registries.conf"])
            #expect(pulled.status == 0, "\(pulled.stderr)")
            #expect(try fromMirror("app-2/manifests/1.0", since: before), "podman did not pull from the mirror")
        }
        if toolAvailable("containerd") && toolAvailable("ctr") {
            let containerd = try Containerd()
            before = access.mark
            let pulled = try containerd.ctr(["images", "pull", "--hosts-dir", mirror + "/containerd/certs.d", "\(f.source)/app-1:1.0"])
            #expect(pulled.status == 0, "\(pulled.stdout)\(pulled.stderr)")
            #expect(try fromMirror("app-1/manifests/1.0", since: before), "containerd did not pull from the mirror")
        }
        #expect(serve.stop() == 0, "\(serve.err)")
    }

    /// dockerd 20.10 pulls from `serve --store` both as an insecure registry and as its Docker Hub
    /// mirror, configured by the daemon.json serve wrote.
    @Test(.enabled(if: toolAvailable("dockerd"))) func dockerPullsFromTheServedStore() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let store = f.dir.file("in")
        try f.expectOK(try f.importer(["load", f.bundle, "--key", f.pub], store: store))
        // A Docker Hub name for the image: what a mirror serves.
        let hubName = "docker.io/\(f.repo)/app-1:1.0"
        try f.expectOK(try f.importer(["image", "tag", "\(f.source)/app-1:1.0", hubName], store: store))
        let mirror = f.dir.file("mirror")
        let serve = try ServeProcess(["--mirror-config", mirror], store: store)
        #expect(serve.listening, "\(serve.out)\(serve.err)")
        guard serve.listening else { return }
        let daemonJSON = mirror + "/docker/daemon.json"
        #expect(FileManager.default.fileExists(atPath: daemonJSON))
        guard let engine = DockerEngine(["--config-file", daemonJSON]) else {
            print("skipped: dockerd cannot start on this machine; serve is untested with docker here")
            return
        }
        let docker = { (args: [String]) in try runProcess("docker", ["-H", "unix://\(engine.socket)"] + args) }
        let insecure = try docker(["pull", "\(serve.address)/\(f.repo)/app-1:1.0"])
        #expect(insecure.status == 0, "\(insecure.stderr)")
        let viaMirror = try docker(["pull", "\(f.repo)/app-1:1.0"])
        #expect(viaMirror.status == 0, "\(viaMirror.stderr)")
        let images = try docker(["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        #expect(images.stdout.contains("\(f.repo)/app-1:1.0"), "\(images.stdout)")
        #expect(serve.stop() == 0)
    }

    /// Split volumes on a read-only mount: served in place; a tampered bundle never opens a port.
    @Test func splitVolumesOnReadOnlyMediaAndATamperedBundle() throws {
        let f = try BundleFixture()
        try FileManager.default.createDirectory(atPath: f.dir.file("media"), withIntermediateDirectories: true)
        try f.expectOK(try f.makeBundle(["--split-size", "100K"], output: f.dir.file("media/split.tar")))
        let readOnly = f.dir.file("usb")
        try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: true)
        let mounted = try runProcess("/bin/sh", ["-c", "mount --bind '\(f.dir.file("media"))' '\(readOnly)' && mount -o remount,ro,bind '\(readOnly)'"]).status == 0
        defer { if mounted { _ = try? runProcess("umount", [readOnly]) } }
        let media = mounted ? readOnly : f.dir.file("media")
        let volumes = try FileManager.default.contentsOfDirectory(atPath: media).filter { $0.hasPrefix("split.tar.0") }
        #expect(volumes.count > 1)
        let mirror = f.dir.file("mirror"), log = f.dir.file("access.log")
        let serve = try ServeProcess([media + "/split.tar.001", "--key", f.pub, "--mirror-config", mirror, "--log", log], store: f.dir.file("in"))
        #expect(serve.listening, "\(serve.out)\(serve.err)")
        if serve.listening {
            let copy = try runProcess("skopeo", ["copy", "--all", "--src-tls-verify=false", "docker://\(serve.address)/\(f.repo)/app-multi:1.0", "oci:\(f.dir.file("sk")):x"])
            #expect(copy.status == 0, "\(copy.stderr)")
            #expect(try rawDigest("\(serve.address)/\(f.repo)/app-multi:1.0") == rawDigest("\(f.source)/app-multi:1.0"))
            // By the original names through the written configuration, from the read-only volumes.
            let access = AccessLogFile(path: log)
            func fromMirror(_ path: String, since before: Int) throws -> Bool { try access.answered(path, since: before) }
            if toolAvailable("podman") {
                let before = access.mark
                let pulled = try runProcess("podman", ["--root", f.dir.file("podman/storage"), "--runroot", f.dir.file("podman/run"), "--storage-driver", "vfs",
                                                       "--events-backend", "none", "--cgroup-manager", "cgroupfs", "pull", "\(f.source)/app-2:1.0"],
                                            environment: ["CONTAINERS_REGISTRIES_CONF": mirror + "/containers/registries.conf"])
                #expect(pulled.status == 0, "\(pulled.stderr)")
                #expect(try fromMirror("/v2/\(f.repo)/app-2/manifests/1.0", since: before), "podman did not pull from the mirror")
            }
            if toolAvailable("containerd") && toolAvailable("ctr") {
                let containerd = try Containerd()
                let before = access.mark
                let pulled = try containerd.ctr(["images", "pull", "--hosts-dir", mirror + "/containerd/certs.d", "\(f.source)/app-multi:1.0"])
                #expect(pulled.status == 0, "\(pulled.stdout)\(pulled.stderr)")
                #expect(try fromMirror("/v2/\(f.repo)/app-multi/manifests/1.0", since: before), "containerd did not pull from the mirror")
            }
            if toolAvailable("buildah") {
                let root = f.dir.file("buildah")
                let from = try runProcess("buildah", ["--root", root + "/storage", "--runroot", root + "/run", "--storage-driver", "vfs",
                                                      "from", "\(f.source)/app-1:1.0"],
                                          environment: ["CONTAINERS_REGISTRIES_CONF": mirror + "/containers/registries.conf"])
                #expect(from.status == 0, "\(from.stderr)")
            }
            // dockerd mirrors only Docker Hub names: it pulls these by the served name (loopback is insecure-by-default).
            if toolAvailable("dockerd"), let engine = DockerEngine() {
                let pulled = try runProcess("docker", ["-H", "unix://\(engine.socket)", "pull", "\(serve.address)/\(f.repo)/app-1:1.0"])
                #expect(pulled.status == 0, "\(pulled.stderr)")
            }
            #expect(serve.stop() == 0)
        }

        try f.expectOK(try f.makeBundle())
        var data = try Data(contentsOf: URL(fileURLWithPath: f.bundle))
        data[data.count - 20_000] ^= 0x01
        try data.write(to: URL(fileURLWithPath: f.dir.file("tampered.tar")))
        let refused = try ServeProcess([f.dir.file("tampered.tar"), "--key", f.pub], store: f.dir.file("in"))
        #expect(!refused.listening)
        #expect(refused.stop() == 3, "\(refused.err)")
        #expect(refused.err.contains("nothing is served"), "\(refused.err)")
        // Unsigned, or signed by another key: refused too.
        try f.expectOK(try f.exporter(["keygen", "--output-prefix", f.dir.file("other")]))
        let otherKey = try ServeProcess([f.bundle, "--key", f.dir.file("other.pub")], store: f.dir.file("in"))
        #expect(!otherKey.listening && otherKey.stop() == 3)
    }

    /// The media change under a running server: the affected response is cut short and logged, a
    /// client never completes a download of the changed blob, and the rest keeps being served.
    @Test func mediaChangedWhileServing() throws {
        let f = try BundleFixture(baseBytes: 4 << 20, uncompressed: true)
        try f.expectOK(try f.makeBundle())
        let serve = try ServeProcess([f.bundle, "--key", f.pub], store: f.dir.file("in"))
        #expect(serve.listening, "\(serve.out)\(serve.err)")
        guard serve.listening else { return }
        // The biggest blob (the shared base layer) and where it lies in the bundle.
        let (name, size) = try largestEntry(in: f.bundle)
        let digest = "sha256:" + name.split(separator: "/").last!
        let url = "http://\(serve.address)/v2/\(f.repo)/app-1/blobs/\(digest)"
        let good = try runProcess("/bin/sh", ["-c", "curl -sS --fail '\(url)' | sha256sum"])
        #expect(good.stdout.hasPrefix(digest.dropFirst(7)), "\(good.stderr)")

        // One byte of that layer changes in place on the media.
        let offset = try bundleOffset(of: name, in: f.bundle) + 3_000_000
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: f.bundle))
        try handle.seek(toOffset: UInt64(offset))
        let byte = try handle.read(upToCount: 1)!
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: Data([byte[0] ^ 0xff]))
        try handle.close()
        let cut = try runProcess("/bin/sh", ["-c", "curl -sS --fail -o '\(f.dir.file("got"))' '\(url)'; echo \"curl=$?\""])
        #expect(!cut.stdout.contains("curl=0"), "a changed blob was delivered whole")
        let got = (try? Data(contentsOf: URL(fileURLWithPath: f.dir.file("got")))) ?? Data()
        #expect(got.count < size)
        // A range near the start is not delivered either: the server hashes the rest first.
        let ranged = try runProcess("/bin/sh", ["-c", "curl -sS --fail -H 'Range: bytes=0-99' -o '\(f.dir.file("range"))' '\(url)'; echo \"curl=$?\""])
        #expect(!ranged.stdout.contains("curl=0"))
        let skopeo = try runProcess("skopeo", ["copy", "--src-tls-verify=false", "docker://\(serve.address)/\(f.repo)/app-1:1.0", "oci:\(f.dir.file("sk")):x"])
        #expect(skopeo.status != 0)
        #expect(serve.err.contains("ALARM") && serve.err.contains(digest), "\(serve.err)")
        // The manifests still come (verified in memory), and the server is still up.
        #expect(try curl(["--fail", "-o", "/dev/null", "http://\(serve.address)/v2/\(f.repo)/app-1/manifests/1.0"]).status == 0)
        #expect(serve.stop() == 0)
    }

    /// A slow reader asking for `Connection: close` (skopeo does, for every blob) gets the whole
    /// body: the server closes only after the socket took every byte, not when it wrote the last.
    @Test func aSlowReaderClosingAfterTheBodyGetsAllOfIt() throws {
        let f = try BundleFixture(baseBytes: 24 << 20, uncompressed: true)
        try f.expectOK(try f.makeBundle())
        let serve = try ServeProcess([f.bundle, "--key", f.pub], store: f.dir.file("in"))
        #expect(serve.listening, "\(serve.out)\(serve.err)")
        guard serve.listening else { return }
        let hex = String(try largestEntry(in: f.bundle).name.split(separator: "/").last!)
        let url = "http://\(serve.address)/v2/\(f.repo)/app-1/blobs/sha256:\(hex)"
        for _ in 0..<2 {
            let slow = try runProcess("/bin/sh", ["-c", "curl -sS --fail -H 'Connection: close' --limit-rate 40M '\(url)' | sha256sum"])
            #expect(slow.stdout.hasPrefix(hex), "the tail of a Connection: close response was lost: \(slow.stderr)")
        }
        #expect(serve.stop() == 0)
    }

    /// Slowloris: clients holding half-sent requests fill the connection cap, and are closed once
    /// they have made no progress for the idle timeout; then the server answers again.
    @Test func halfSentRequestsAreClosedAndTheCapHolds() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let serve = try ServeProcess([f.bundle, "--key", f.pub, "--idle-timeout", "2", "--max-connections", "4"], store: f.dir.file("in"))
        #expect(serve.listening, "\(serve.err)")
        guard serve.listening else { return }
        let port = serve.address.split(separator: ":").last!
        let script = """
        import socket, sys, time
        held = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", \(port)))
            s.sendall(b"GET /v2/ HTTP/1.1\\r\\nHost: x\\r\\n")   # never finished
            held.append(s)
        time.sleep(0.5)
        def ping():
            c = socket.create_connection(("127.0.0.1", \(port)), timeout=3)
            c.sendall(b"GET /v2/ HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
            try:
                return c.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                return False
        print("while-held", ping())
        time.sleep(4)
        closed = sum(1 for s in held if s.recv(1) == b"")
        print("closed", closed)
        print("after", ping())
        """
        let run = try runProcess("/usr/bin/python3", ["-c", script])
        #expect(run.stdout.contains("while-held False"), "a fifth connection was served past the cap: \(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("closed 4"), "half-sent requests were not closed: \(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("after True"), "the server did not recover: \(run.stdout)\(run.stderr)\(serve.err)")
        #expect(serve.err.contains("connections are open already"))
        #expect(serve.stop() == 0)
    }

    /// Where an entry's bytes start in a tar (GNU tar's block numbers, 512 bytes each).
    func bundleOffset(of entry: String, in tar: String) throws -> Int {
        let listing = try runProcess("tar", ["-R", "-tvf", tar]).stdout
        let line = listing.split(separator: "\n").first { $0.hasSuffix(entry) }!
        let block = Int(line.split(separator: " ")[1].dropLast())!
        // The listing's block is the entry's header; a pax header before it would be listed apart.
        return (block + 1) * 512
    }
}
