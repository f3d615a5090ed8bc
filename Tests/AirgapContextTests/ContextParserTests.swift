import AirgapTar
import AirgapTestSupport
import AirgapContext
import Foundation
import Testing

/// Docker's documented .dockerignore examples (docs/build/concepts/context.md), as tables.
@Suite struct DockerIgnoreTests {
    @Test(arguments: [
        // */temp*: names starting with temp one level down
        ("*/temp*", "somedir/temporary.txt", true), ("*/temp*", "somedir/temp", true), ("*/temp*", "temporary.txt", false),
        ("*/temp*", "somedir/temp/inner.txt", true), ("*/temp*", "a/b/temp", false),
        // */*/temp*: two levels down
        ("*/*/temp*", "somedir/subdir/temporary.txt", true), ("*/*/temp*", "somedir/temporary.txt", false),
        // temp?: one character more, at the root
        ("temp?", "tempa", true), ("temp?", "tempb", true), ("temp?", "temp", false), ("temp?", "tempab", false), ("temp?", "dir/tempa", false),
        // **: any number of directories, none included
        ("**/*.go", "main.go", true), ("**/*.go", "a/b/c/x.go", true), ("**/*.go", "a/b/c/x.gox", false),
        ("a/**/b", "a/b", true), ("a/**/b", "a/x/y/b", true), ("a/**", "a/anything/below", true),
        // cleaned like paths, a leading slash dropped, escapes and dots literal
        ("/secret.txt", "secret.txt", true), ("./x/../secret.txt", "secret.txt", true), ("*.txt", "notes.txt", true), ("*.txt", "notesXtxt", false),
        ("\\*.txt", "*.txt", true), ("\\*.txt", "a.txt", false),
        // a directory excludes what is below it
        ("node_modules", "node_modules/left-pad/index.js", true), ("build/", "build/out.o", true),
    ] as [(String, String, Bool)])
    func patterns(pattern: String, path: String, excluded: Bool) throws {
        #expect(try DockerIgnore(pattern).excludes(path) == excluded, "\(pattern) on \(path)")
    }

    @Test func exceptionsAndTheLastMatchWins() throws {
        let readmeOnly = try DockerIgnore("*.md\n!README.md\n")
        #expect(readmeOnly.excludes("CHANGELOG.md") && !readmeOnly.excludes("README.md"))
        // "No markdown files are included in the context except README files other than README-secret.md."
        let secretLast = try DockerIgnore("*.md\n!README*.md\nREADME-secret.md\n")
        #expect(secretLast.excludes("README-secret.md") && !secretLast.excludes("README-public.md") && secretLast.excludes("other.md"))
        // "All of the README files are included. The middle line has no effect."
        let exceptionLast = try DockerIgnore("*.md\nREADME-secret.md\n!README*.md\n")
        #expect(!exceptionLast.excludes("README-secret.md") && exceptionLast.excludes("other.md"))
        // Comments, blank lines and surrounding blanks.
        let commented = try DockerIgnore("# a comment\n\n   secret.env   \n")
        #expect(commented.excludes("secret.env") && !commented.excludes("# a comment"))
        #expect(throws: ContextError.self) { try DockerIgnore("!\n") }
    }
}

@Suite struct DockerfileParserTests {
    @Test func multiStageWithArgumentsStagesAndMounts() throws {
        let text = """
        # syntax=docker/dockerfile:1
        ARG BASE=debian:bookworm-slim
        ARG TOOL
        FROM --platform=$BUILDPLATFORM ${BASE} AS build
        RUN --mount=type=cache,target=/root/.cache,from=registry.example/cache/tools:1 \\
            # a comment inside the continuation
            make all
        RUN <<EOF
        FROM fake/inside-a-heredoc:1
        EOF
        COPY --from=build /out /out
        FROM alpine:3.20
        COPY --from=build /out /usr/local/bin/
        COPY --from=nginx:1.27 /etc/nginx/nginx.conf /etc/
        COPY --from=0 /out /again
        FROM scratch AS final
        COPY --from=${TOOL:-busybox:1.36} /bin/busybox /busybox
        """
        let parsed = try Dockerfile.parse(text)
        #expect(parsed.stages.map(\.base) == ["debian:bookworm-slim", "alpine:3.20", "scratch"])
        #expect(parsed.stages.map(\.name) == ["build", nil, "final"])
        #expect(parsed.stages[0].platform == "$BUILDPLATFORM", "the builder's own platform argument stays as written")
        #expect(parsed.externalImages == ["docker/dockerfile:1", "debian:bookworm-slim", "registry.example/cache/tools:1", "alpine:3.20", "nginx:1.27", "busybox:1.36"],
                "the frontend the syntax directive names is pulled too: \(parsed.externalImages)")
        #expect(!parsed.externalImages.contains("fake/inside-a-heredoc:1") && !parsed.externalImages.contains("build"))
        let overridden = try Dockerfile.parse(text, buildArgs: ["BASE": "ubuntu:24.04", "TOOL": "registry.example/busybox:2"])
        #expect(overridden.stages[0].base == "ubuntu:24.04" && overridden.externalImages.contains("registry.example/busybox:2"))
    }

    @Test func argumentsWithoutDefaultsAndOtherMistakesAreNamed() throws {
        #expect(throws: ContextError.self) { try Dockerfile.parse("ARG BASE\nFROM $BASE\n") }
        #expect(try Dockerfile.parse("ARG BASE\nFROM $BASE\n", buildArgs: ["BASE": "alpine:3"]).externalImages == ["alpine:3"])
        #expect(throws: ContextError.self) { try Dockerfile.parse("RUN true\nFROM alpine\n") }
        #expect(throws: ContextError.self) { try Dockerfile.parse("# just a comment\n") }
        // An undeclared variable expands to nothing, as Docker does: FROM then names nothing.
        #expect(throws: ContextError.self) { try Dockerfile.parse("FROM $NOPE\n") }
    }

    @Test func theRewriteChangesOnlyTheImagesAndKeepsEveryOtherByte() throws {
        let text = """
        # syntax = docker/dockerfile:1
        ARG BASE=alpine:3.20
        FROM --platform=$BUILDPLATFORM $BASE AS build
        RUN --mount=type=bind,from=tools:1,target=/t \\
            --mount=type=cache,target=/c,from=tools:1 make
        FROM \\
          alpine:3.20
        COPY --from=build /out /out
        COPY --from=nginx:1.27 /etc/nginx /etc/nginx
        RUN echo alpine:3.20 $BASE

        """
        let pinned = ["docker/dockerfile:1": "r:5000/docker/dockerfile@sha256:1", "alpine:3.20": "r:5000/library/alpine@sha256:a",
                      "tools:1": "r:5000/library/tools@sha256:t", "nginx:1.27": "r:5000/library/nginx@sha256:n"]
        let rewritten = try Dockerfile.rewrite(text) { pinned[$0] }
        #expect(rewritten == """
        # syntax = r:5000/docker/dockerfile@sha256:1
        ARG BASE=alpine:3.20
        FROM --platform=$BUILDPLATFORM r:5000/library/alpine@sha256:a AS build
        RUN --mount=type=bind,from=r:5000/library/tools@sha256:t,target=/t \\
            --mount=type=cache,target=/c,from=r:5000/library/tools@sha256:t make
        FROM \\
          r:5000/library/alpine@sha256:a
        COPY --from=build /out /out
        COPY --from=r:5000/library/nginx@sha256:n /etc/nginx /etc/nginx
        RUN echo alpine:3.20 $BASE

        """, "\(rewritten)")
        let again = try Dockerfile.parse(rewritten)
        #expect(Set(again.externalImages) == Set(pinned.values), "every image now names the registry: \(again.externalImages)")
        #expect(try Dockerfile.rewrite(text) { _ in nil } == text, "nothing to point elsewhere: the bytes as written")
    }

    @Test func theEscapeDirectiveAndCaseInsensitiveKeywords() throws {
        let text = "# escape=`\nfrom mcr.microsoft.com/windows/servercore:ltsc2022 as base\nrun echo `\n  done\ncopy --FROM=base C:\\\\x C:\\\\y\n"
        let parsed = try Dockerfile.parse(text)
        #expect(parsed.externalImages == ["mcr.microsoft.com/windows/servercore:ltsc2022"])
        #expect(parsed.stages.first?.name == "base")
    }
}

@Suite struct ContextPackerTests {
    func pack(_ root: String) throws -> (Data, ContextPacker.Summary) {
        var bytes = Data()
        let writer = try TarWriter { bytes.append(contentsOf: $0) }
        let summary = try ContextPacker(root: root).pack(into: writer)
        try writer.close()
        return (bytes, summary)
    }

    @Test func theContextIsWhatDockerWouldSendAndTheSameBytesEveryTime() throws {
        let dir = TempDirectory("context")
        let root = dir.file("ctx")
        for sub in ["app", "build", "logs"] { try FileManager.default.createDirectory(atPath: root + "/" + sub, withIntermediateDirectories: true) }
        let files = ["Dockerfile": "FROM alpine\nCOPY . /src\n", ".dockerignore": "secret.env\n**/*.log\n!logs/keep.log\nbuild\nDockerfile\n",
                     "app/main.sh": "#!/bin/sh\necho hi\n", "secret.env": "TOKEN=hunter2\n", "logs/debug.log": "x", "logs/keep.log": "y", "build/out.o": "z"]
        for (name, text) in files { try text.write(toFile: root + "/" + name, atomically: true, encoding: .utf8) }
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: root + "/app/main.sh")
        try FileManager.default.createSymbolicLink(atPath: root + "/app/run", withDestinationPath: "main.sh")
        _ = try runProcess("mkfifo", [root + "/app/pipe"])

        let (first, summary) = try pack(root)
        let (second, _) = try pack(root)
        #expect(first == second, "two packs of the same tree differ")
        try first.write(to: URL(fileURLWithPath: dir.file("ctx.tar")))
        let listing = try runProcess("tar", ["-tvf", dir.file("ctx.tar")]).stdout
        let names = try runProcess("tar", ["-tf", dir.file("ctx.tar")]).stdout.split(separator: "\n").map(String.init)
        #expect(names == [".dockerignore", "Dockerfile", "app/", "app/main.sh", "app/run", "logs/", "logs/keep.log"], "\(names)")
        #expect(!listing.contains("hunter2") && !names.contains("secret.env"))
        #expect(listing.contains("-rwxr-xr-x 0/0") && listing.contains("app/run -> main.sh"), "\(listing)")
        #expect(summary.excluded.sorted() == ["build/", "logs/debug.log", "secret.env"], "\(summary.excluded)")
        #expect(summary.skippedSpecial == ["app/pipe"])
    }
}

/// The forms `docker build` takes for its context argument.
@Suite struct ContextLocationTests {
    @Test(arguments: [
        ("./app", ContextLocation.directory("/m/app")), ("/opt/my-custom-app", .directory("/opt/my-custom-app")),
        ("https://github.com/docker/rootfs.git", .git(url: "https://github.com/docker/rootfs.git", ref: nil, folder: nil)),
        ("https://github.com/docker/rootfs.git#container:docker", .git(url: "https://github.com/docker/rootfs.git", ref: "container", folder: "docker")),
        ("https://example.com/r.git#v1.0", .git(url: "https://example.com/r.git", ref: "v1.0", folder: nil)),
        ("https://example.com/r.git#:sub/dir", .git(url: "https://example.com/r.git", ref: nil, folder: "sub/dir")),
        ("git@github.com:org/repo.git#main", .git(url: "git@github.com:org/repo.git", ref: "main", folder: nil)),
        ("git://127.0.0.1:9418/repo#refs/tags/v1:app", .git(url: "git://127.0.0.1:9418/repo", ref: "refs/tags/v1", folder: "app")),
        ("ssh://git@host/repo.git", .git(url: "ssh://git@host/repo.git", ref: nil, folder: nil)),
        ("file:///srv/repo#:./app/", .git(url: "file:///srv/repo", ref: nil, folder: "app")),
    ] as [(String, ContextLocation)])
    func forms(text: String, expected: ContextLocation) throws {
        #expect(try ContextLocation(parsing: text, relativeTo: "/m") == expected)
    }

    @Test func badFormsAreRefusedAndCredentialsNeverShown() throws {
        for bad in ["https://example.com/context.tar.gz", "file:///r#v1:../../etc", "file:///r#--upload-pack=x", "file:///r#a..b", "   "] {
            #expect(throws: ContextError.self, "\(bad)") { try ContextLocation(parsing: bad, relativeTo: "/m") }
        }
        let location = try ContextLocation(parsing: "https://user:s3cret@git.example/r.git#main", relativeTo: "")
        #expect(!location.description.contains("s3cret") && location.description == "https://git.example/r.git#main")
        #expect(ContextLocation.redacted("https://tok@h/x.git") == "https://h/x.git" && ContextLocation.redacted("git@h:x.git") == "git@h:x.git")
    }
}

/// A hostile context tar cannot write outside the directory it is extracted to.
@Suite struct ContextExtractorTests {
    func extract(_ entries: [CraftedEntry]) throws -> (TempDirectory, Result<ContextExtractor.Summary, any Error>) {
        let dir = TempDirectory("extract")
        let tar = try craftTar(entries)
        let result = Result { try ContextExtractor.extract(try TarReader(source: DataSource(tar)), into: dir.file("out")) }
        return (dir, result)
    }

    @Test func filesDirectoriesAndLinksComeOutAsPacked() throws {
        let (dir, result) = try extract([.directory("src"), .file("src/a.txt", Data("a".utf8)), .symlink("link", target: "src/a.txt"), .file("b", Data("bb".utf8))])
        let summary = try result.get()
        #expect(summary.files == 3 && summary.bytes == 3)
        #expect(try String(contentsOfFile: dir.file("out/link"), encoding: .utf8) == "a")
    }

    @Test(arguments: [
        [CraftedEntry.symlink("evil", target: "/tmp"), .file("evil/planted", Data("x".utf8))],
        [.file("../escape", Data("x".utf8))],
        [.file("/abs", Data("x".utf8))],
        [.file("a", Data("1".utf8)), .file("a", Data("2".utf8))],
        [.symlink("a", target: "/etc/passwd"), .file("a", Data("x".utf8))],
        [.file("x", Data()), .hardlink("y", target: "/etc/shadow")],
        [.device("dev")],
    ])
    func hostileEntriesAreRefused(entries: [CraftedEntry]) throws {
        let (dir, result) = try extract(entries)
        #expect(throws: ContextError.self) { try result.get() }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/planted") && !FileManager.default.fileExists(atPath: dir.path + "/escape"))
    }

    @Test func aDirectoryThatHoldsSomethingIsNotWrittenInto() throws {
        let dir = TempDirectory("extract")
        try FileManager.default.createDirectory(atPath: dir.file("out"), withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: dir.file("out/keep")))
        #expect(throws: ContextError.self) { try ContextExtractor.extract(try TarReader(source: DataSource(try craftTar([.file("keep", Data("x".utf8))]))), into: dir.file("out")) }
        #expect(try String(contentsOfFile: dir.file("out/keep"), encoding: .utf8) == "mine")
    }
}

/// The system git fetching the commit each of Docker's ref forms names, from a real repository.
@Suite(.enabled(if: toolAvailable("git"))) struct GitCheckoutTests {
    @Test func everyRefFormNamesItsCommit() throws {
        let dir = TempDirectory("git")
        func git(_ args: [String]) throws -> String {
            let r = try runProcess("git", ["-C", dir.file("repo"), "-c", "user.email=t@t", "-c", "user.name=t"] + args)
            guard r.status == 0 else { throw TestFailure("git \(args): \(r.stderr)") }
            return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        try FileManager.default.createDirectory(atPath: dir.file("repo"), withIntermediateDirectories: true)
        _ = try git(["init", "-q", "-b", "main"])
        try Data("one\n".utf8).write(to: URL(fileURLWithPath: dir.file("repo/f")))
        _ = try git(["add", "f"]); _ = try git(["commit", "-qm", "one"]); _ = try git(["tag", "-a", "v1", "-m", "v1"])
        let first = try git(["rev-parse", "HEAD"])
        _ = try git(["checkout", "-qb", "feature"])
        try Data("feature\n".utf8).write(to: URL(fileURLWithPath: dir.file("repo/f")))
        _ = try git(["commit", "-qam", "feature"])
        let feature = try git(["rev-parse", "HEAD"])
        _ = try git(["checkout", "-q", "main"])
        try Data("two\n".utf8).write(to: URL(fileURLWithPath: dir.file("repo/f")))
        _ = try git(["commit", "-qam", "two"])
        let main = try git(["rev-parse", "HEAD"])
        let url = "file://\(dir.file("repo"))"
        for (i, (ref, commit, content)) in [(nil, main, "two\n"), ("v1", first, "one\n"), ("feature", feature, "feature\n"),
                                            ("refs/heads/main", main, "two\n"), (first, first, "one\n")].enumerated() {
            let checkout = try GitCheckout.fetch(url: url, ref: ref, into: dir.file("c\(i)"))
            #expect(checkout.commit == commit, "\(ref ?? "HEAD")")
            #expect(try String(contentsOfFile: dir.file("c\(i)/f"), encoding: .utf8) == content, "\(ref ?? "HEAD")")
        }
        #expect(throws: ContextError.self) { try GitCheckout.fetch(url: url, ref: "no-such-ref", into: dir.file("bad")) }
        // A hostile repository whose submodule names a repository of this machine by file://: not fetched.
        try FileManager.default.createDirectory(atPath: dir.file("secret"), withIntermediateDirectories: true)
        _ = try runProcess("git", ["-C", dir.file("secret"), "init", "-q", "-b", "main"])
        try Data("private\n".utf8).write(to: URL(fileURLWithPath: dir.file("secret/key.txt")))
        _ = try runProcess("git", ["-C", dir.file("secret"), "add", "key.txt"])
        _ = try runProcess("git", ["-C", dir.file("secret"), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "secret"])
        _ = try git(["-c", "protocol.file.allow=always", "submodule", "add", "-q", "file://\(dir.file("secret"))", "sub"])
        _ = try git(["commit", "-qm", "with a submodule"])
        #expect(throws: ContextError.self) { try GitCheckout.fetch(url: url, ref: nil, into: dir.file("hostile")) }
        #expect(!FileManager.default.fileExists(atPath: dir.file("hostile/sub/key.txt")), "a local repository was carried through a submodule")
        do { _ = try GitCheckout.fetch(url: "https://user:s3cret@127.0.0.1:1/r.git", ref: nil, into: dir.file("cred")) } catch {
            #expect(!"\(error)".contains("s3cret"), "\(error)")
        }
    }
}
