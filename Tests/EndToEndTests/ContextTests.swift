import AirgapTestSupport
import Foundation
import Testing

/// Build contexts across the gap, against the real things: a git repository served by `git daemon`
/// and read through file://, a registry of the test's own that is stopped before the build, and
/// buildah (vfs storage, chroot isolation) building inside from a loopback serve of the bundle.
final class ContextFixture: @unchecked Sendable {
    let dir = TempDirectory("ctx")
    let registry: ThrowawayRegistry
    var environment: [String: String]
    var key: String { dir.file("site.key") }
    var pub: String { dir.file("site.pub") }
    var manifest: String { dir.file("images.yaml") }
    private var daemon: Process?
    private(set) var gitAddress = ""

    init() throws {
        for tool in ["docker-registry", "buildah", "git", "curl"] { _ = try which(tool) }
        guard FileManager.default.isExecutableFile(atPath: "/bin/busybox") else { throw TestFailure("/bin/busybox is missing; run scripts/install-deps.sh (busybox-static)") }
        registry = try ThrowawayRegistry()
        let conf = "[storage]\ndriver = \"vfs\"\ngraphroot = \"\(dir.file("b/storage"))\"\nrunroot = \"\(dir.file("b/run"))\"\n"
        try Data(conf.utf8).write(to: URL(fileURLWithPath: dir.file("storage.conf")))
        try Data("[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n".utf8).write(to: URL(fileURLWithPath: dir.file("containers.conf")))
        environment = ["CONTAINERS_STORAGE_CONF": dir.file("storage.conf"), "CONTAINERS_CONF": dir.file("containers.conf"), "BUILDAH_ISOLATION": "chroot",
                       "AIRGAP_STORE": dir.file("store"), "DOCKER_CONFIG": dir.file("docker-config"), "SOURCE_DATE_EPOCH": "1700000000"]
        try FileManager.default.createDirectory(atPath: dir.file("docker-config"), withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: dir.file("docker-config/config.json")))
        // Two small base images with a shell (busybox), pushed with buildah.
        try shell("""
        mkdir -p rootfs/bin rootfs2/etc
        cp /bin/busybox rootfs/bin/busybox
        for l in sh cat mkdir echo; do ln -s busybox rootfs/bin/$l; done
        cp -a rootfs/bin rootfs2/ && echo runtime > rootfs2/etc/runtime-marker
        c=$(buildah from scratch) && buildah add $c rootfs / >/dev/null && buildah commit -q --rm $c ctx-busybox >/dev/null
        buildah push -q --tls-verify=false ctx-busybox docker://\(registry.address)/ctx/busybox:1
        c=$(buildah from scratch) && buildah add $c rootfs2 / >/dev/null && buildah commit -q --rm $c ctx-runtime >/dev/null
        buildah push -q --tls-verify=false ctx-runtime docker://\(registry.address)/ctx/runtime:1
        buildah rmi -a -f >/dev/null
        """)
        // The repository: a multi-stage Dockerfile in app/, a secret .dockerignore leaves out, tag
        // v1, and a later commit on main that v1 must not see.
        try shell("""
        mkdir -p repo/app/src && cd repo && git init -q -b main
        cat > app/Dockerfile <<'EOF'
        ARG BASE=\(registry.address)/ctx/busybox:1
        FROM $BASE AS build
        COPY src/ /src/
        RUN mkdir -p /out && cat /src/hello.txt > /out/built.txt && \\
            echo built-in-stage >> /out/built.txt
        FROM \(registry.address)/ctx/runtime:1
        COPY --from=build /out/built.txt /built.txt
        COPY config.txt /config.txt
        EOF
        printf 'secret.txt\\n*.key\\n' > app/.dockerignore
        echo hello > app/src/hello.txt && echo cfg-v1 > app/config.txt && echo TOPSECRET > app/secret.txt && echo k > app/deploy.key
        git add -A && git -c user.email=t@t -c user.name=t commit -qm one && git tag v1
        echo cfg-v2 > app/config.txt && git -c user.email=t@t -c user.name=t commit -qam two
        """)
        // A plain directory with a -f Dockerfile.dev and its own Dockerfile.dev.dockerignore.
        try shell("""
        mkdir -p plain && cd plain
        printf 'FROM \(registry.address)/ctx/busybox:1\\nCOPY . /srv/\\n' > Dockerfile.dev
        echo notes.md > Dockerfile.dev.dockerignore
        echo tool > tool.txt && echo private > notes.md
        """)
        try startGitDaemon()
        _ = try run("airgap-export", ["keygen", "--output-prefix", dir.file("site")])
    }

    func startGitDaemon() throws {
        let port = try freePort()
        let process = Process()
        // git-daemon itself, not the `git daemon` wrapper that forks it (one process to stop).
        let execPath = try runProcess("git", ["--exec-path"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        process.executableURL = URL(fileURLWithPath: execPath + "/git-daemon")
        process.arguments = ["--export-all", "--reuseaddr", "--listen=127.0.0.1", "--port=\(port)", "--base-path=\(dir.path)", dir.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        daemon = process
        gitAddress = "127.0.0.1:\(port)"
        for _ in 0..<100 {
            if try runProcess("git", ["ls-remote", "git://\(gitAddress)/repo"]).status == 0 { return }
            usleep(100_000)
        }
        throw TestFailure("git daemon did not start on \(gitAddress)")
    }

    @discardableResult
    func shell(_ script: String) throws -> String {
        // In the fixture's directory.
        let result = try runProcess("/bin/sh", ["-ec", "cd '\(dir.path)'\n" + script], environment: environment)
        guard result.status == 0 else { throw TestFailure("setup failed: \(result.stderr)") }
        return result.stdout
    }

    func run(_ binary: String, _ arguments: [String]) throws -> ProcessResult {
        try runProcess(builtBinary(binary), arguments, environment: environment)
    }

    func writeManifest(gitSource: String) throws {
        let yaml = """
        apiVersion: airgap/v1
        kind: ImageSet
        platforms: [linux/amd64]
        contexts:
          - source: \(gitSource)
            tag: app:1.0
          - source: ./plain
            dockerfile: Dockerfile.dev
            tag: tools:dev

        """
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: manifest))
    }

    /// The manifest with the repository by file://, exported to `bundle`; then the registry the
    /// bases came from is stopped.
    func exportFromFileURL(to bundle: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        try writeManifest(gitSource: "file://\(dir.file("repo"))#v1:app")
        let export = try run("airgap-export", ["bundle", "-f", manifest, "-o", bundle, "--key", key])
        #expect(export.status == 0, "\(export.stderr)", sourceLocation: sourceLocation)
        registry.stop()
    }

    deinit {
        if let daemon, daemon.isRunning {
            kill(daemon.processIdentifier, SIGKILL)
            for _ in 0..<50 where daemon.isRunning { usleep(20_000) }
        }
        _ = try? runProcess("buildah", ["rmi", "-a", "-f"], environment: environment)
    }
}

extension ContextFixture {
    /// A file of an image in buildah's store, read through a mounted working container.
    func file(_ path: String, inImage image: String) throws -> String? {
        let out = try shell("""
        c=$(buildah from -q \(image)); m=$(buildah mount $c)
        if [ -e "$m\(path)" ]; then cat "$m\(path)"; else echo '<absent>'; fi
        buildah umount $c >/dev/null; buildah rm $c >/dev/null
        """)
        return out == "<absent>\n" ? nil : out
    }
}

@Suite(.enabled(if: TestRegistries.available), .serialized)
struct ContextTests {
    @Test func aGitContextAndADirectoryCrossTheGapAndBuildInsideWithTheSourceRegistryStopped() throws {
        let f = try ContextFixture()
        try f.writeManifest(gitSource: "git://\(f.gitAddress)/repo#v1:app")
        let first = try f.run("airgap-export", ["--store", f.dir.file("out1"), "bundle", "-f", f.manifest, "-o", f.dir.file("b1.tar"), "--key", f.key])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("context app:1.0:") && first.stderr.contains("2 left out by .dockerignore"), "\(first.stderr)")
        let second = try f.run("airgap-export", ["--store", f.dir.file("out2"), "bundle", "-f", f.manifest, "-o", f.dir.file("b2.tar"), "--key", f.key])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: f.dir.file("b1.tar"))) == Data(contentsOf: URL(fileURLWithPath: f.dir.file("b2.tar"))),
                "two exports of the same commit are byte-identical")

        // What the bundle records: the commit v1 names, both bases pinned by the digest index.json holds.
        let v1 = try f.shell("git -C repo rev-parse v1^{commit}").trimmingCharacters(in: .whitespacesAndNewlines)
        let ls = try f.run("airgap-import", ["context", "ls", f.dir.file("b1.tar"), "--key", f.pub, "--json"])
        #expect(ls.status == 0, "\(ls.stderr)")
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(ls.stdout.utf8)) as? [[String: Any]])
        let app = try #require(listed.first { $0["tag"] as? String == "docker.io/library/app:1.0" })
        #expect(app["commit"] as? String == v1 && app["folder"] as? String == "app" && app["source"] as? String == "git://\(f.gitAddress)/repo#v1:app")
        let bases = try #require(app["bases"] as? [[String: String]])
        #expect(bases.map { $0["reference"] } == ["\(f.registry.address)/ctx/busybox:1", "\(f.registry.address)/ctx/runtime:1"])
        let indexJSON = try f.shell("tar -xOf b1.tar index.json")
        for base in bases { #expect(indexJSON.contains(base["digest"]!), "\(base) is carried under its name") }

        // The context as other tar readers see it: no secret, no key, the Dockerfile and the source.
        let contextDigest = try f.shell("""
        m=$(tar -xOf b1.tar airgap/bundle.json | /usr/bin/python3 -c 'import json,sys; print([i["digest"] for i in json.load(sys.stdin)["images"] if i.get("context", {}).get("tag") == "docker.io/library/app:1.0"][0].split(":")[1])')
        tar -xOf b1.tar blobs/sha256/$m | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"].split(":")[1])'
        """).trimmingCharacters(in: .whitespacesAndNewlines)
        let entries = try f.shell("tar -xOf b1.tar blobs/sha256/\(contextDigest) | tar -t").split(separator: "\n").map(String.init)
        #expect(entries.contains("src/hello.txt") && entries.contains("Dockerfile") && entries.contains(".dockerignore"), "\(entries)")
        #expect(!entries.contains("secret.txt") && !entries.contains("deploy.key"), "\(entries)")

        // Inside: the registry the bundle came from is gone.
        f.registry.stop()
        let log = f.dir.file("serve.log")
        let build = try f.run("airgap-import", ["build", "app:1.0", f.dir.file("b1.tar"), "--key", f.pub, "--serve-log", log])
        #expect(build.status == 0, "\(build.stdout)\n\(build.stderr)")
        #expect(build.stdout.contains("Built app:1.0 with buildah"), "\(build.stdout)")
        #expect(try f.file("/built.txt", inImage: "app:1.0") == "hello\nbuilt-in-stage\n", "the build stage's output")
        #expect(try f.file("/config.txt", inImage: "app:1.0") == "cfg-v1\n", "the context at v1, not main")
        #expect(try f.file("/etc/runtime-marker", inImage: "app:1.0") == "runtime\n", "the second base")
        let served = try String(contentsOfFile: log, encoding: .utf8)
        for base in bases { #expect(served.contains("manifests/\(base["digest"]!)"), "buildah pulled \(base["reference"]!) by digest from the loopback serve: \(served)") }

        // The plain directory, with -f Dockerfile.dev and its own ignore file, under another name.
        let plain = try f.run("airgap-import", ["build", "tools:dev", f.dir.file("b1.tar"), "--key", f.pub, "-t", "tools:test"])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(try f.file("/srv/tool.txt", inImage: "tools:test") == "tool\n")
        #expect(try f.file("/srv/notes.md", inImage: "tools:test") == nil, "Dockerfile.dev.dockerignore left it out")

        // extract: the files, and a Dockerfile pointed at the internal registry, pinned.
        let extract = try f.run("airgap-import", ["context", "extract", "app:1.0", f.dir.file("b1.tar"), "--key", f.pub, "-o", f.dir.file("ex"),
                                                  "--registry", "registry.internal:5000/mirror"])
        #expect(extract.status == 0, "\(extract.stderr)")
        let dockerfile = try String(contentsOfFile: f.dir.file("ex/Dockerfile"), encoding: .utf8)
        #expect(dockerfile.contains("FROM registry.internal:5000/mirror/ctx/busybox@\(bases[0]["digest"]!) AS build"), "\(dockerfile)")
        #expect(dockerfile.contains("FROM registry.internal:5000/mirror/ctx/runtime@\(bases[1]["digest"]!)\n"), "\(dockerfile)")
        #expect(!FileManager.default.fileExists(atPath: f.dir.file("ex/secret.txt")) && FileManager.default.fileExists(atPath: f.dir.file("ex/src/hello.txt")))
        let again = try f.run("airgap-import", ["context", "extract", "app:1.0", f.dir.file("b1.tar"), "--key", f.pub, "-o", f.dir.file("ex")])
        #expect(again.status != 0 && again.stderr.contains("is not an empty directory"), "\(again.stderr)")
        // A disk too small for it (a 4 MiB tmpfs, less than the context plus the margin): refused before a file is written.
        let tiny = f.dir.file("tiny")
        try FileManager.default.createDirectory(atPath: tiny, withIntermediateDirectories: true)
        if try runProcess("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", tiny]).status == 0 {
            defer { _ = try? runProcess("umount", [tiny]) }
            let full = try f.run("airgap-import", ["context", "extract", "app:1.0", f.dir.file("b1.tar"), "--key", f.pub, "-o", tiny + "/ex"])
            #expect(full.status == 1 && full.stderr.contains("not enough space on the disk holding \(tiny)/ex"), "\(full.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: tiny).isEmpty)
        }
    }

    @Test func aFileURLPinsTheSameCommitAndThePushedBundleBuildsFromTheInternalRegistry() throws {
        let f = try ContextFixture()
        try f.exportFromFileURL(to: f.dir.file("b.tar"))
        let inside = try ThrowawayRegistry()
        let push = try f.run("airgap-import", ["push", f.dir.file("b.tar"), "--key", f.pub, "--to", "\(inside.address)/mirror"])
        #expect(push.status == 0, "\(push.stderr)")
        // From the store too: load, then build with the bases from the internal registry.
        let load = try f.run("airgap-import", ["--store", f.dir.file("inside"), "load", f.dir.file("b.tar"), "--key", f.pub])
        #expect(load.status == 0, "\(load.stderr)")
        let build = try f.run("airgap-import", ["--store", f.dir.file("inside"), "build", "app:1.0", "--registry", "\(inside.address)/mirror",
                                                "-t", "app:from-registry", "--builder-arg=--layers"])
        #expect(build.status == 0, "\(build.stdout)\n\(build.stderr)")
        #expect(try f.file("/config.txt", inImage: "app:from-registry") == "cfg-v1\n")
    }

    /// The other two builders on the same carried context: podman, and a real dockerd.
    @Test func podmanAndDockerBuildTheCarriedContextToo() throws {
        let f = try ContextFixture()
        try f.exportFromFileURL(to: f.dir.file("b.tar"))
        let podman = try f.run("airgap-import", ["build", "tools:dev", f.dir.file("b.tar"), "--key", f.pub, "--builder", "podman", "-t", "tools:podman"])
        #expect(podman.status == 0 && podman.stdout.contains("Built tools:podman with podman"), "\(podman.stdout)\n\(podman.stderr)")
        #expect(try f.file("/srv/tool.txt", inImage: "tools:podman") == "tool\n")
        guard let engine = DockerEngine() else {
            print("skipped: dockerd cannot start on this machine; build --builder docker is untested here")
            return
        }
        f.environment["DOCKER_HOST"] = "unix://\(engine.socket)"
        let docker = try f.run("airgap-import", ["build", "tools:dev", f.dir.file("b.tar"), "--key", f.pub, "--builder", "docker", "-t", "tools:docker"])
        #expect(docker.status == 0, "\(docker.stdout)\n\(docker.stderr)")
        let content = try f.shell("""
        c=$(docker create tools:docker /bin/sh)
        docker export $c | tar -xO srv/tool.txt; docker rm $c >/dev/null
        """)
        #expect(content == "tool\n", "\(content)")
    }

    @Test func badContextsNameTheManifestLine() throws {
        let f = try ContextFixture()
        let cases: [(String, String)] = [
            ("contexts:\n  - source: ./plain\n", "images.yaml:4: a context needs 'tag:'"),
            ("contexts:\n  - source: ./plain\n    tag: t:1\n    colour: blue\n", "images.yaml:6: unknown key 'colour' in a context"),
            ("contexts:\n  - source: https://example.com/ctx.tar.gz\n    tag: t:1\n", "images.yaml:4: https://example.com/ctx.tar.gz is a URL but no git repository"),
            ("contexts:\n  - source: ./nowhere\n    tag: t:1\n", "images.yaml:4: the context"),
            ("contexts:\n  - source: ./plain\n    dockerfile: Dockerfile.missing\n    tag: t:1\n", "images.yaml:4: there is no Dockerfile at Dockerfile.missing"),
            ("contexts:\n  - source: ./plain\n    dockerfile: Dockerfile.dev\n    target: nope\n    tag: t:1\n", "images.yaml:4: target nope is no stage"),
            ("contexts:\n  - source: file://\(f.dir.file("repo"))#no-such-tag\n    tag: t:1\n", "images.yaml:4: git could not fetch"),
        ]
        for (body, expected) in cases {
            try Data("apiVersion: airgap/v1\nkind: ImageSet\n\(body)".utf8).write(to: URL(fileURLWithPath: f.manifest))
            let result = try f.run("airgap-export", ["bundle", "-f", f.manifest, "-o", f.dir.file("never.tar"), "--key", f.key])
            #expect(result.status != 0 && result.stderr.contains(expected), "\(body): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: f.dir.file("never.tar")))
        }
        // An ARG with no default in FROM, which buildArgs does not set.
        try Data("ARG BASE\nFROM $BASE\n".utf8).write(to: URL(fileURLWithPath: f.dir.file("plain/Dockerfile.arg")))
        try Data("apiVersion: airgap/v1\nkind: ImageSet\ncontexts:\n  - source: ./plain\n    dockerfile: Dockerfile.arg\n    tag: t:1\n".utf8)
            .write(to: URL(fileURLWithPath: f.manifest))
        let unset = try f.run("airgap-export", ["bundle", "-f", f.manifest, "-o", f.dir.file("never.tar"), "--key", f.key])
        #expect(unset.status != 0 && unset.stderr.contains("images.yaml:4: Dockerfile.arg:2: the ARG BASE has no default"), "\(unset.stderr)")
    }
}
