import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

/// The built binaries, driven as a user would, against real peers (skopeo, podman).
struct CLI {
    let dir = TempDirectory("e2e")
    var store: String { dir.file("store") }

    @discardableResult
    func export(_ args: String...) throws -> ProcessResult {
        try runProcess(builtBinary("airgap-export"), args, environment: ["AIRGAP_STORE": store])
    }

    @discardableResult
    func `import`(_ args: String...) throws -> ProcessResult {
        try runProcess(builtBinary("airgap-import"), args, environment: ["AIRGAP_STORE": store])
    }

    /// Generates sample images into an archive and loads them into the store.
    func withSamples(count: Int = 2) throws -> String {
        let archive = dir.file("samples.tar")
        let made = try export("sample-images", "-o", archive, "--count", "\(count)")
        #expect(made.status == 0, "\(made.stderr)")
        let loaded = try export("image", "load", "-i", archive)
        #expect(loaded.status == 0, "\(loaded.stderr)")
        return archive
    }

    func imageID(_ ref: String) throws -> String {
        let out = try export("image", "inspect", ref)
        let json = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as! [[String: Any]]
        return json[0]["Id"] as! String
    }
}

func podman(_ root: String, _ args: [String]) throws -> ProcessResult {
    try runProcess("podman", ["--root", root + "/storage", "--runroot", root + "/run", "--storage-driver", "vfs",
                              "--events-backend", "none", "--cgroup-manager", "cgroupfs"] + args)
}

@Suite struct CommandTests {
    @Test func listTagHistoryInspectAndDf() throws {
        let cli = CLI()
        _ = try cli.withSamples()
        let list = try cli.export("image", "ls")
        #expect(list.stdout.hasPrefix("REPOSITORY"))
        #expect(list.stdout.contains("sample/app-1") && list.stdout.contains("sample/app-2"))
        #expect(try cli.export("image", "tag", "sample/app-1:1.0", "localhost:5000/team/app:2").status == 0)
        #expect(try cli.imageID("localhost:5000/team/app:2") == (try cli.imageID("sample/app-1:1.0")))
        let history = try cli.export("image", "history", "sample/app-1:1.0")
        #expect(history.stdout.contains("ENV PATH=/usr/bin:/bin") && history.stdout.contains("0B"))
        let df = try cli.export("system", "df")
        // Docker's TOTAL counts images, not names: two samples, one of them tagged twice.
        #expect(df.stdout.contains("Images") && df.stdout.contains("Images    2 "), "\(df.stdout)")
        let json = try cli.export("image", "list", "--format", "json")
        let rows = json.stdout.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(rows.count == 3 && rows.allSatisfy { $0?["ID"] != nil })
    }

    @Test func rmAndPruneReportSpace() throws {
        let cli = CLI()
        _ = try cli.withSamples()
        let rm = try cli.export("image", "rm", "sample/app-1:1.0")
        #expect(rm.status == 0)
        #expect(rm.stdout.contains("Untagged: sample/app-1:1.0") && rm.stdout.contains("Deleted: sha256:"))
        let refused = try cli.export("image", "prune", "-a")
        #expect(refused.status == 1, "no answer on stdin means no")
        #expect(try cli.export("image", "ls", "-q").stdout.split(separator: "\n").count == 1)
        let prune = try cli.export("image", "prune", "-a", "--force")
        #expect(prune.stdout.contains("Total reclaimed space:"))
        #expect(try cli.export("image", "ls", "-q").stdout.isEmpty)
    }

    @Test func exitCodesAndMessages() throws {
        let cli = CLI()
        let badRef = try cli.export("image", "tag", "a", "UPPER/case")
        #expect(badRef.status == 2)
        #expect(badRef.stderr.contains("must be lower-case"))
        let missing = try cli.export("image", "inspect", "nothing:here")
        #expect(missing.status == 1 && missing.stderr.contains("no such image"))
        let usage = try cli.export("image", "ls", "--format", "yaml")
        #expect(usage.status == 2)
        let noFile = try cli.import("image", "load", "-i", cli.dir.file("absent.tar"))
        #expect(noFile.status == 1 && noFile.stderr.contains("does not exist"))
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: cli.dir.file("bad.tar")))
        let bad = try cli.import("image", "load", "-i", cli.dir.file("bad.tar"))
        #expect(bad.status == 3)
        #expect(bad.stderr.split(separator: "\n").count == 1, "one error sentence: \(bad.stderr)")
    }

    /// The first thing an air-gap user meets: a registry that is not there. Each is said in words,
    /// in seconds, with no Swift type names.
    @Test func unreachableRegistriesAreReportedInSecondsAndInWords() throws {
        let cli = CLI()
        func pull(_ reference: String, prefix: [String] = []) throws -> (ProcessResult, Double) {
            let started = Date()
            let tool = prefix.isEmpty ? builtBinary("airgap-export") : prefix[0]
            let result = try runProcess(tool, Array(prefix.dropFirst()) + (prefix.isEmpty ? [] : [builtBinary("airgap-export")])
                                        + ["--store", cli.dir.file("s"), "image", "pull", reference])
            return (result, Date().timeIntervalSince(started))
        }
        let port = try freePort()
        let (dead, deadSeconds) = try pull("127.0.0.1:\(port)/foo/bar:1")
        #expect(dead.status == 4 && dead.stderr.contains("cannot connect to 127.0.0.1:\(port): nothing is listening there"), "\(dead.stderr)")
        #expect(deadSeconds < 15, "\(deadSeconds) s")
        // No resolver at all: a network namespace with only a loopback that is down.
        if toolAvailable("unshare"), try runProcess("unshare", ["-n", "true"]).status == 0 {
            let (hub, hubSeconds) = try pull("httpd", prefix: [try which("unshare"), "-n"])
            #expect(hub.status == 4 && hub.stderr.contains("cannot resolve registry-1.docker.io: this machine has no route to Docker Hub; on an air-gapped machine, load a bundle instead"), "\(hub.stderr)")
            #expect(hubSeconds < 15, "\(hubSeconds) s")
            let (named, _) = try pull("registry.invalid/team/app:1", prefix: [try which("unshare"), "-n"])
            #expect(named.status == 4 && named.stderr.contains("cannot resolve registry.invalid"), "\(named.stderr)")
            for result in [dead, hub, named] {
                #expect(!result.stderr.contains("Error.") && !result.stderr.contains("NIO"), "no Swift type names: \(result.stderr)")
            }
        }
        let left = try cli.export("--store", cli.dir.file("s"), "image", "ls", "-q")
        #expect(left.stdout.isEmpty, "nothing was pulled: \(left.stdout)")
    }

    /// A mistyped --store is said so, and nothing is created; the default store not made yet reads as empty.
    @Test func readOnlyCommandsNeverCreateAStore() throws {
        let cli = CLI()
        let typo = cli.dir.file("typo/store")
        for args in [["image", "ls"], ["image", "inspect", "x"], ["image", "history", "x"], ["system", "df"]] {
            let result = try runProcess(builtBinary("airgap-export"), ["--store", typo] + args)
            #expect(result.status == 1 && result.stderr.contains("there is no store at \(typo)"), "\(args): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: cli.dir.file("typo")))
        let home = cli.dir.file("home")
        let fresh = try runProcess(builtBinary("airgap-export"), ["image", "ls"], environment: ["HOME": home, "XDG_DATA_HOME": "", "AIRGAP_STORE": ""])
        #expect(fresh.status == 0 && fresh.stdout.hasPrefix("REPOSITORY"), "\(fresh.stderr)")
        #expect(!FileManager.default.fileExists(atPath: home))
    }

    @Test func globalStoreOptionBeforeTheSubcommand() throws {
        let cli = CLI()
        let archive = try cli.withSamples(count: 1)
        let other = cli.dir.file("other-store")
        #expect(try runProcess(builtBinary("airgap-import"), ["--store", other, "image", "load", "-i", archive]).status == 0)
        #expect(try runProcess(builtBinary("airgap-import"), ["image", "ls", "-q", "--store", other]).stdout.split(separator: "\n").count == 1)
    }

    @Test func saveThenLoadIntoASecondStore() throws {
        let cli = CLI()
        _ = try cli.withSamples()
        let out = cli.dir.file("saved.tar")
        #expect(try cli.export("image", "save", "sample/app-1:1.0", "sample/app-2:1.0", "-o", out).status == 0)
        let second = cli.dir.file("second")
        let load = try runProcess(builtBinary("airgap-import"), ["image", "load", "-i", out, "--store", second])
        #expect(load.stdout == "Loaded image: sample/app-1:1.0\nLoaded image: sample/app-2:1.0\n")
    }
}

@Suite(.serialized) struct InteropTests {
    @Test(.enabled(if: toolAvailable("skopeo"))) func skopeoReadsTheStore() throws {
        let cli = CLI()
        _ = try cli.withSamples()
        let id = try cli.imageID("sample/app-1:1.0")
        let inspect = try runProcess("skopeo", ["inspect", "--config", "oci:\(cli.store):docker.io/sample/app-1:1.0"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let raw = try runProcess("skopeo", ["inspect", "--raw", "--config", "oci:\(cli.store):docker.io/sample/app-1:1.0"])
        #expect(Digest.sha256(of: Data(raw.stdout.utf8)).description == id)
        let copy = try runProcess("skopeo", ["copy", "oci:\(cli.store):docker.io/sample/app-2:1.0", "oci:\(cli.dir.file("copy")):x"])
        #expect(copy.status == 0, "\(copy.stderr)")
    }

    @Test(.enabled(if: toolAvailable("skopeo"))) func loadsSkopeoArchives() throws {
        let cli = CLI()
        _ = try cli.withSamples(count: 1)
        let id = try cli.imageID("sample/app-1:1.0")
        let docker = cli.dir.file("docker-archive.tar"), oci = cli.dir.file("oci-archive.tar")
        #expect(try runProcess("skopeo", ["copy", "oci:\(cli.store):docker.io/sample/app-1:1.0", "docker-archive:\(docker):skopeo/d:1"]).status == 0)
        #expect(try runProcess("skopeo", ["copy", "oci:\(cli.store):docker.io/sample/app-1:1.0", "oci-archive:\(oci):skopeo/o:1"]).status == 0)
        let loadDocker = try cli.import("image", "load", "-i", docker)
        #expect(loadDocker.status == 0, "\(loadDocker.stderr)")
        #expect(try cli.imageID("skopeo/d:1") == id)
        let loadOCI = try cli.import("image", "load", "-i", oci)
        #expect(loadOCI.status == 0, "\(loadOCI.stderr)")
        // skopeo names the entry with the tag only; no full name, so the image loads unnamed.
        #expect(loadOCI.stdout.contains("Loaded image"))
    }

    @Test(.enabled(if: toolAvailable("podman"))) func podmanLoadsOurSaveAndWeLoadPodmanSave() throws {
        let cli = CLI()
        _ = try cli.withSamples(count: 1)
        let id = try cli.imageID("sample/app-1:1.0")
        let saved = cli.dir.file("ours.tar")
        #expect(try cli.export("image", "save", "sample/app-1:1.0", "-o", saved).status == 0)
        let root = cli.dir.file("podman")
        let load = try podman(root, ["load", "-i", saved])
        #expect(load.status == 0, "\(load.stderr)")
        let images = try podman(root, ["images", "--no-trunc", "--format", "{{.ID}}"])
        #expect(images.stdout.contains(id.replacingOccurrences(of: "sha256:", with: "")), "podman lists \(images.stdout)")
        for format in ["docker-archive", "oci-archive"] {
            let out = cli.dir.file("podman-\(format).tar")
            let save = try podman(root, ["save", "--format", format, "-o", out, "sample/app-1:1.0"])
            #expect(save.status == 0, "\(save.stderr)")
            let store = cli.dir.file("store-\(format)")
            let ours = try runProcess(builtBinary("airgap-import"), ["image", "load", "-i", out, "--store", store])
            #expect(ours.status == 0, "\(format): \(ours.stderr)")
            let ls = try runProcess(builtBinary("airgap-import"), ["image", "ls", "-q", "--no-trunc", "--store", store])
            #expect(ls.stdout.contains(id), "\(format): \(ls.stdout)")
        }
    }
}

/// Output to a reader that has gone (`… | head -1`): the command finishes its work and exits as
/// usual, with no crash and no message about the pipe.
@Suite struct ClosedPipeTests {
    /// Runs the command with standard output a pipe whose read end is already closed (every write: EPIPE).
    func runIntoClosedPipe(_ arguments: [String], store: String) throws -> ProcessResult {
        let script = """
        import os, subprocess, sys
        r, w = os.pipe(); os.close(r)
        p = subprocess.run(sys.argv[1:], stdout=w, stderr=subprocess.PIPE, env=dict(os.environ))
        sys.stderr.write(p.stderr.decode()); sys.exit(p.returncode if p.returncode >= 0 else 128 - p.returncode)
        """
        return try runProcess("/usr/bin/python3", ["-c", script] + arguments, environment: ["AIRGAP_STORE": store])
    }

    @Test func aClosedStdoutEndsNothingEarly() throws {
        let cli = CLI()
        let archive = cli.dir.file("samples.tar")
        #expect(try cli.export("sample-images", "-o", archive, "--count", "3").status == 0)
        // image load prints a line per image; every one of them fails with EPIPE.
        let load = try runIntoClosedPipe([builtBinary("airgap-import"), "image", "load", "-i", archive], store: cli.store)
        #expect(load.status == 0, "exit \(load.status): \(load.stderr)")
        #expect(load.stderr.isEmpty, "\(load.stderr)")
        // All three images were loaded although nobody read the output.
        let listed = try cli.import("image", "ls", "-q")
        #expect(listed.stdout.split(separator: "\n").count == 3, "\(listed.stdout)")
        let list = try runIntoClosedPipe([builtBinary("airgap-import"), "image", "ls", "--format", "json"], store: cli.store)
        #expect(list.status == 0 && list.stderr.isEmpty, "exit \(list.status): \(list.stderr)")
    }
}
