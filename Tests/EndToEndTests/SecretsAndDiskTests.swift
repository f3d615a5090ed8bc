import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

@Suite(.enabled(if: TestRegistries.available && toolAvailable("skopeo")), .serialized)
struct SecretsTests {
    /// Credentials in use for login, pull, bundle, push and audit: no password (nor its base64, nor a
    /// bearer token) appears in any output, report, bundle or store file.
    @Test func noSecretInAnyOutputReportBundleOrStore() throws {
        let f = try BundleFixture()
        let r = f.registries
        var outputs: [String] = []
        func run(_ result: ProcessResult) { outputs.append(result.stdout); outputs.append(result.stderr) }
        run(try f.exporter(["login", "-u", r.tokenUser, "--password-stdin", r.token]).self)
        run(try runProcess(builtBinary("airgap-export"), ["login", "-u", r.tokenUser, "--password-stdin", r.token],
                           environment: ["DOCKER_CONFIG": f.dir.file("docker-config")], stdin: r.tokenPassword))
        let repo = TestRegistries.uniqueRepository("secret")
        run(try f.exporter(["image", "push", "sample/app-1:1.0", "\(r.token)/\(repo)/app:1"], store: f.dir.file("staging")))
        try Data("\(r.token)/\(repo)/app:1\n".utf8).write(to: URL(fileURLWithPath: f.dir.file("list.txt")))
        let bundle = try f.exporter(["bundle", "-f", f.dir.file("list.txt"), "-o", f.bundle, "--key", f.key])
        #expect(bundle.status == 0, "\(bundle.stderr)")
        run(bundle)
        run(try f.importer(["push", f.bundle, "--key", f.pub, "--to", "\(r.token)/inside"], store: f.dir.file("in")))
        run(try f.importer(["audit", f.bundle, "--key", f.pub, "--format", "html", "-o", f.dir.file("audit.html")], store: f.dir.file("in")))
        run(try f.importer(["receipt", "--registry", "\(r.token)/inside", "-o", f.dir.file("receipt.json")], store: f.dir.file("in")))
        // Wrong password: the rejected secret is not echoed either.
        run(try runProcess(builtBinary("airgap-import"), ["login", "-u", r.tokenUser, "--password-stdin", r.token],
                           environment: ["DOCKER_CONFIG": f.dir.file("other-config")], stdin: "Wr0ng-Secret-Value"))
        let secrets = [r.tokenPassword, Data("\(r.tokenUser):\(r.tokenPassword)".utf8).base64EncodedString(), "Wr0ng-Secret-Value"]
        for (i, text) in outputs.enumerated() {
            for secret in secrets { #expect(!text.contains(secret), "output \(i) holds a secret") }
            #expect(!text.contains("eyJ"), "output \(i) holds what looks like a bearer token")
        }
        // Every file written (bundle, reports, receipt, stores), except the Docker config itself.
        let files = FileManager.default.enumerator(atPath: f.dir.path)!.compactMap { $0 as? String }
            .filter { !$0.hasPrefix("docker-config") && !$0.hasPrefix("other-config") }
        for name in files {
            guard let data = FileManager.default.contents(atPath: f.dir.file(name)) else { continue }
            for secret in secrets { #expect(data.range(of: Data(secret.utf8)) == nil, "\(name) holds a secret") }
        }
    }
}

@Suite(.serialized) struct DiskFullTests {
    /// A store on a small tmpfs: the load fails with a clear error and leaves no tag and no partial blob.
    @Test func loadIntoAFullDiskFailsCleanly() throws {
        let dir = TempDirectory("diskfull")
        let store = dir.file("store")
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        guard try runProcess("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", store]).status == 0 else {
            print("skipped: cannot mount a tmpfs here (not root, or no mount rights); disk-full behaviour untested")
            return
        }
        defer { _ = try? runProcess("umount", [store]) }
        let archive = dir.file("big.tar")
        #expect(try runProcess(builtBinary("airgap-export"), ["sample-images", "-o", archive, "--count", "1", "--base-bytes", "\(4 << 20)", "--uncompressed"]).status == 0)
        // From a file: its size is known, so the load is refused before a byte is written.
        let early = try runProcess(builtBinary("airgap-import"), ["image", "load", "-i", archive, "--store", store])
        #expect(early.status == 1 && early.stderr.contains("not enough space") && early.stderr.contains(archive), "\(early.stderr)")
        #expect(early.stderr.split(separator: "\n").count == 1)
        // From a pipe (no size): the disk fills mid-write, and that is said in one sentence too.
        let load = try runProcess("/bin/sh", ["-c", "exec \"$0\" image load --store \"$1\" < \"$2\"", builtBinary("airgap-import"), store, archive])
        #expect(load.status == 1, "\(load.stderr)")
        #expect(load.stderr.contains("No space left on device"), "\(load.stderr)")
        #expect(load.stderr.split(separator: "\n").count == 1)
        #expect(try runProcess(builtBinary("airgap-import"), ["image", "ls", "-q", "--store", store]).stdout.isEmpty)
        try expectStoreConsistent(store)
        let ingest = try FileManager.default.contentsOfDirectory(atPath: store + "/.airgap/ingest")
        #expect(ingest.isEmpty, "temp files left behind: \(ingest)")
    }
}

/// Preflight on real small and read-only filesystems (tmpfs mounts; as root only): every command
/// that writes stops with exit 1 and the path the user gave, before the network where it can,
/// and leaves nothing behind.
@Suite(.enabled(if: TestRegistries.available), .serialized) struct DiskPreflightTests {
    let registries = TestRegistries.current!

    func mount(_ dir: String, _ options: String) throws -> Bool {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return try runProcess("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]).status == 0
    }

    func expectOneSentence(_ result: ProcessResult, naming path: String, _ words: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == 1, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(path) && result.stderr.contains(words), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains(".partial-") && !result.stderr.contains(".tmp-") && !result.stderr.contains("served"), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)", sourceLocation: sourceLocation)
    }

    @Test func aFiveMiBDiskAndAReadOnlyOneStopEveryWriterWithThePath() throws {
        let dir = TempDirectory("preflight")
        let small = dir.file("small"), readOnly = dir.file("ro")
        guard try mount(small, "size=5m") else {
            print("skipped: cannot mount a tmpfs here (not root, or no mount rights); preflight untested")
            return
        }
        defer { _ = try? runProcess("umount", [small]) }
        #expect(try mount(readOnly, "size=1m,ro"))
        defer { _ = try? runProcess("umount", [readOnly]) }
        let export = { (args: [String]) throws -> ProcessResult in
            try runProcess(builtBinary("airgap-export"), args, environment: ["AIRGAP_STORE": dir.file("outside"), "DOCKER_CONFIG": dir.file("dc")])
        }
        // An image of 8 MiB (random, so 8 MiB compressed too) in the registry.
        let archive = dir.file("samples.tar")
        #expect(try export(["sample-images", "-o", archive, "--count", "1", "--base-bytes", "\(8 << 20)"]).status == 0)
        #expect(try export(["image", "load", "-i", archive]).status == 0)
        let reference = "\(registries.plain)/\(TestRegistries.uniqueRepository("preflight"))/app:1"
        #expect(try export(["image", "push", "sample/app-1:1.0", reference]).status == 0)
        try Data("\(reference)\n".utf8).write(to: URL(fileURLWithPath: dir.file("list.txt")))
        #expect(try export(["keygen", "--output-prefix", dir.file("k")]).status == 0)

        // Pull into a store on the small disk: refused before the layer is fetched.
        let pulled = try export(["image", "pull", "--progress", "none", reference, "--store", small + "/store"])
        expectOneSentence(pulled, naming: small + "/store", "not enough space")
        #expect(try runProcess(builtBinary("airgap-export"), ["image", "ls", "-q", "--store", small + "/store"]).stdout.isEmpty)
        // image save and bundle to the small disk: refused, no file left.
        expectOneSentence(try export(["image", "save", "-o", small + "/app.tar", "sample/app-1:1.0"]), naming: small + "/app.tar", "not enough space")
        expectOneSentence(try export(["bundle", "-f", dir.file("list.txt"), "-o", small + "/b.tar", "--key", dir.file("k.key"), "--progress", "none"]), naming: small + "/b.tar", "not enough space")
        expectOneSentence(try export(["copy", "--progress", "none", "docker://\(reference)", "oci-archive:\(small)/copy.tar"]), naming: small + "/copy.tar", "not enough space")
        // Load of a good bundle into a store on the small disk: refused, the store stays empty.
        let bundle = dir.file("b.tar")
        #expect(try export(["bundle", "-f", dir.file("list.txt"), "-o", bundle, "--key", dir.file("k.key")]).status == 0)
        let loaded = try runProcess(builtBinary("airgap-import"), ["load", bundle, "--key", dir.file("k.pub"), "--store", small + "/in", "--progress", "none"])
        #expect(loaded.status == 1 && loaded.stderr.contains(small + "/in") && !loaded.stderr.contains(".tmp-"), "\(loaded.stderr)")
        #expect(try runProcess(builtBinary("airgap-import"), ["image", "ls", "-q", "--store", small + "/in"]).stdout.isEmpty)
        let left = try FileManager.default.contentsOfDirectory(atPath: small).filter { !["store", "in"].contains($0) }
        #expect(left.isEmpty, "left on the small disk: \(left)")

        // A read-only disk: the store and -o are refused, naming the path.
        expectOneSentence(try export(["image", "pull", "--progress", "none", reference, "--store", readOnly + "/store"]), naming: readOnly + "/store", "read-only")
        expectOneSentence(try export(["image", "save", "-o", readOnly + "/app.tar", "sample/app-1:1.0"]), naming: readOnly + "/app.tar", "read-only")
        // Output paths are checked before any network work: with a dead registry the -o error comes first.
        try Data("127.0.0.1:1/nowhere/app:1\n".utf8).write(to: URL(fileURLWithPath: dir.file("dead.txt")))
        let started = Date()
        expectOneSentence(try export(["bundle", "-f", dir.file("dead.txt"), "-o", readOnly + "/b.tar", "--key", dir.file("k.key")]), naming: readOnly + "/b.tar", "read-only")
        expectOneSentence(try export(["bundle", "-f", dir.file("dead.txt"), "-o", dir.file("missing/b.tar"), "--key", dir.file("k.key")]), naming: dir.file("missing"), "does not exist")
        #expect(Date().timeIntervalSince(started) < 5, "the network was tried first")
        // A read-only command never creates a store.
        let typo = dir.file("typo/store")
        #expect(try runProcess(builtBinary("airgap-import"), ["image", "ls", "--store", typo]).status == 1)
        #expect(!FileManager.default.fileExists(atPath: dir.file("typo")))
    }
}

/// `login` on a terminal asks like `docker login`: the user name, then the password with echo off.
@Suite(.enabled(if: TestRegistries.available)) struct LoginPromptTests {
    @Test func loginAsksOnATerminalAndNeverEchoesThePassword() throws {
        let r = TestRegistries.current!
        let dir = TempDirectory("login")
        // A pseudo-terminal: the answers are typed once each prompt has been shown.
        let script = """
        import os, pty, sys, time
        user, password = sys.argv[1].encode(), sys.argv[2].encode()
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(sys.argv[3], sys.argv[3:])
        out = b''
        def until(text, seconds=30):
            global out
            end = time.time() + seconds
            while text not in out and time.time() < end:
                try: out += os.read(fd, 4096)
                except OSError: break
        until(b'Username: '); os.write(fd, user + b'\\n')
        until(b'Password: '); time.sleep(0.2); os.write(fd, password + b'\\n')
        until(b'Login Succeeded')
        until(b'\\x00', 2)
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(out.decode(errors='replace'))
        sys.exit(os.waitstatus_to_exitcode(status))
        """
        let result = try runProcess("/usr/bin/python3", ["-c", script, r.tlsUser, r.tlsPassword, builtBinary("airgap-export"), "login", "--ca-file", r.tlsCA, r.tls],
                                    environment: ["DOCKER_CONFIG": dir.file("docker"), "REGISTRY_AUTH_FILE": dir.file("auth.json")])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("Username: \(r.tlsUser)") && result.stdout.contains("Password: "), "\(result.stdout)")
        #expect(result.stdout.contains("Login Succeeded"), "\(result.stdout)")
        #expect(!result.stdout.contains(r.tlsPassword), "the password was echoed: \(result.stdout)")
        // Not a terminal and nothing given: one sentence saying how, no prompt.
        let piped = try runProcess(builtBinary("airgap-export"), ["login", "-u", r.tlsUser, r.tls], environment: ["DOCKER_CONFIG": dir.file("docker2")])
        #expect(piped.status == 2 && piped.stderr.contains("pipe it into --password-stdin") && !piped.stdout.contains("Password:"), "\(piped.stderr)")
    }
}
