import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapServe
import AirgapTransfer
import ArgumentParser
import Foundation

/// Where carried build contexts are read from: a verified bundle, or the store.
struct ContextInput: ParsableArguments {
    @Argument(help: "The bundle file, or its first volume FILE.001, or every volume; none: the store (--store).")
    var bundle: [String] = []
    @Option(help: "Public key (PEM) the bundle must be signed with (default: the trusted signers, see 'trust').") var key: String?
    @Flag(name: .customLong("allow-unsigned"), help: "Accept an unsigned bundle when no --key is given.") var allowUnsigned = false

    func open(_ globals: GlobalOptions, verb: String, action: String) async throws -> (any ContentSource, [(Reference, Descriptor)], String, [CarriedContext]) {
        let (source, names, what, _) = try await Serve.openContent(bundle: bundle, key: key, allowUnsigned: allowUnsigned, imageKeys: [],
                                                            storeRoot: globals.storeRoot, action: action, verb: verb)
        return (source, names, what, try await CarriedContext.all(in: source, names: names))
    }
}

struct ContextGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "context",
        abstract: "List and extract the build contexts a bundle (or the store) carries.",
        discussion: """
        Examples:
          airgap-import context ls bundle.tar
          airgap-import context extract web:1.0 bundle.tar -o ./web \\
              --registry registry:5000/mirror
        """,
        subcommands: [ContextList.self, ContextExtract.self])
}

struct ContextList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List the carried build contexts and the images each pulls.",
        discussion: """
        Examples:
          airgap-import context ls bundle.tar
          airgap-import context ls --json
        """)
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var input: ContextInput
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let (_, _, _, contexts) = try await input.open(globals, verb: "listing", action: "nothing is listed")
        if json { print(Format.json(contexts.map(\.artifact))); return }
        let rows = contexts.map { c -> [String] in
            let source = c.artifact.source + (c.artifact.commit.map { " @\($0.prefix(12))" } ?? "")
            let tag = (try? Reference(parsing: c.artifact.tag))?.familiarDescription ?? c.artifact.tag
            return [tag, source, c.artifact.dockerfile, Format.size(c.contextBlob.size),
                    c.artifact.bases.map { (try? Reference(parsing: $0.reference))?.familiarDescription ?? $0.reference }.joined(separator: ", ")]
        }
        print(Format.table(["CONTEXT", "SOURCE", "DOCKERFILE", "SIZE", "PULLS"], rows), terminator: "")
    }
}

struct ContextExtract: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Write a carried build context to a directory, its Dockerfile pointed at the internal registry.",
        discussion: """
        NAME is the context's tag (the name the built image gets). With --registry, every image the \
        Dockerfile pulls is rewritten to HOST/PREFIX/PATH@DIGEST, the digest the bundle carries (as \
        'push --to HOST/PREFIX' names it); without it, the Dockerfile is left as written. A Dockerfile \
        that lives outside its context is written next to the directory, as DIR.Dockerfile.

        Examples:
          airgap-import context extract app:1.0 images.tar -o ./app \\
              --registry registry:5000/mirror
          docker build -t app:1.0 ./app
        """)
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The context's tag.") var name: String
    @OptionGroup var input: ContextInput
    @Option(name: .shortAndLong, help: ArgumentHelp("A new (or empty) directory to write the context to.", valueName: "DIR")) var output: String
    @Option(help: ArgumentHelp("Point the Dockerfile's images at this registry, pinned by digest.", valueName: "HOST[:PORT][/PREFIX]"))
    var registry: String?

    func validate() throws {
        if let registry, CarriedContext.Registry(parsing: registry) == nil { throw ValidationError("--registry \(registry) is not HOST[:PORT][/PREFIX]") }
    }

    func run() async throws {
        let (source, _, what, contexts) = try await input.open(globals, verb: "extracting from", action: "nothing was extracted")
        let context = try CarriedContext.named(name, in: contexts, what: what)
        let extracted = try await context.extract(from: source, into: output, registry: registry.flatMap(CarriedContext.Registry.init(parsing:)))
        print("Extracted \(context.artifact.tag) to \(output): \(extracted.files) files (\(Format.size(extracted.bytes))), Dockerfile \(extracted.dockerfile)"
              + (registry.map { ", \(extracted.rewritten) image reference\(extracted.rewritten == 1 ? "" : "s") pointed at \($0)" } ?? ""))
    }
}

/// `airgap-import build`: a carried context built with an engine's builder found on PATH, its
/// bases pulled from the internal registry or from a loopback serve of the bundle.
struct Build: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build a carried build context with buildah, podman or docker, with no network beyond loopback.",
        discussion: """
        The context is extracted (checked against its digest) into a scratch directory, its Dockerfile \
        pointed at the bases the bundle carries, pinned by digest. Without --registry those are served \
        from the bundle (or the store) on 127.0.0.1 for the build's duration; with it, they are pulled \
        from the internal registry the bundle was pushed to. The image lands in the builder's store.

        Examples:
          airgap-import build app:1.0 images.tar
          airgap-import build app:1.0 images.tar --builder docker -t app:dev
          airgap-import build app:1.0 --registry registry:5000/mirror \\
              --push -t registry:5000/app:1.0
        """)
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The context's tag.") var name: String
    @OptionGroup var input: ContextInput
    @Option(name: .shortAndLong, help: "The built image's name (default: the context's tag).") var tag: String?
    @Option(help: ArgumentHelp("The builder to run (default: the first of buildah, podman, docker on PATH).", valueName: "buildah|podman|docker"))
    var builder: String?
    @Option(help: ArgumentHelp("Pull the bases from this registry (where the bundle was pushed) instead of serving them.", valueName: "HOST[:PORT][/PREFIX]"))
    var registry: String?
    @Flag(help: "Push the built image to where its name (-t) points.") var push = false
    @Option(name: .customLong("serve-log"), help: ArgumentHelp("The loopback server's access log (default: none).", valueName: "FILE"))
    var serveLog: String?
    @Option(name: .customLong("builder-arg"), help: ArgumentHelp("An extra argument for the builder's build command (repeatable).", valueName: "ARG"))
    var builderArguments: [String] = []

    static let builders = ["buildah", "podman", "docker"]

    func validate() throws {
        if let builder, !Self.builders.contains(builder) { throw ValidationError("--builder must be buildah, podman or docker, not \(builder)") }
        if let registry, CarriedContext.Registry(parsing: registry) == nil { throw ValidationError("--registry \(registry) is not HOST[:PORT][/PREFIX]") }
    }

    func run() async throws {
        let builderPath = try findBuilder()
        let (source, names, what, contexts) = try await input.open(globals, verb: "building from", action: "nothing was built")
        let context = try CarriedContext.named(name, in: contexts, what: what)
        let scratch = NSTemporaryDirectory() + "airgap-build-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])

        var server: Task<Void, any Error>?
        defer { server?.cancel() }
        let pullFrom: CarriedContext.Registry
        if let registry {
            pullFrom = CarriedContext.Registry(parsing: registry)!
        } else {
            let (task, port) = try await Self.serveOnLoopback(source: source, names: names, log: serveLog)
            server = task
            pullFrom = CarriedContext.Registry(host: "127.0.0.1:\(port)", prefix: "")
            printErr("Serving the bases from \(what) on 127.0.0.1:\(port) for the build")
        }
        let extracted = try await context.extract(from: source, into: scratch + "/context", registry: pullFrom)
        let builtName = tag ?? ((try? Reference(parsing: context.artifact.tag))?.familiarDescription ?? context.artifact.tag)
        let kind = (builderPath as NSString).lastPathComponent
        var arguments = ["build", "-f", extracted.dockerfile, "-t", builtName]
        // The loopback server speaks plain HTTP, as loopback registries may (Docker allows it there too).
        if kind != "docker" && Reference.isLoopback(registry: pullFrom.host) { arguments.append("--tls-verify=false") }
        for (key, value) in context.artifact.buildArgs.sorted(by: { $0.key < $1.key }) { arguments += ["--build-arg", "\(key)=\(value)"] }
        if let target = context.artifact.target { arguments += ["--target", target] }
        if kind != "docker", !context.artifact.platforms.isEmpty { arguments += ["--platform", context.artifact.platforms.joined(separator: ",")] }
        arguments += builderArguments + [extracted.directory]
        printErr("Building \(builtName) from \(context.artifact.source)\(context.artifact.commit.map { " @\($0.prefix(12))" } ?? "") with \(kind) (\(extracted.rewritten) base reference\(extracted.rewritten == 1 ? "" : "s") pinned to \(pullFrom.host))")
        let status = try await Self.runBuilder(builderPath, arguments)
        guard status == 0 else {
            throw CommandError(.failure, "\(kind) build of \(builtName) failed (exit \(status)); its output is above")
        }
        if push {
            var pushArguments = ["push"]
            if kind != "docker", let name = try? Reference(parsing: builtName), Reference.isLoopback(registry: name.registry) { pushArguments.append("--tls-verify=false") }
            let pushed = try await Self.runBuilder(builderPath, pushArguments + [builtName])
            guard pushed == 0 else { throw CommandError(.failure, "\(kind) push of \(builtName) failed (exit \(pushed)); the image is built and stays in \(kind)'s store") }
        }
        print("Built \(builtName) with \(kind)\(push ? " and pushed it" : "")")
    }

    func findBuilder() throws -> String {
        for name in builder.map({ [$0] }) ?? Self.builders {
            if let path = executableOnPath(name) { return path }
        }
        throw CommandError(.usage, builder.map { "\($0) is not on PATH; install it or choose another with --builder" }
                                   ?? "no builder on PATH (buildah, podman or docker); install one, or extract the context with 'context extract' and build it elsewhere")
    }

    /// A read-only registry of `names` on 127.0.0.1 (any free port), until the task is cancelled.
    static func serveOnLoopback(source: any ContentSource, names: [(Reference, Descriptor)], log: String?) async throws -> (Task<Void, any Error>, Int) {
        let content = try await ServedContent.build(source: source, names: names, prefix: "", host: "127.0.0.1:0", signatures: [],
                                                    warn: { printErr("warning: \($0)") })
        let server = try RegistryServer(api: RegistryAPI(content: content, alarm: { printErr("serve: \($0)") }), log: try AccessLog(path: log ?? "/dev/null"))
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let task = Task {
            defer { continuation.finish() }
            try await server.run(host: "127.0.0.1", port: 0) { continuation.yield($0) }
        }
        for await port in ports { return (task, port) }
        do { try await task.value } catch { throw CommandError(.failure, "cannot serve the bases on 127.0.0.1: \(error)") }
        throw CommandError(.failure, "cannot serve the bases on 127.0.0.1")
    }

    /// Runs the builder with this process's terminal; its exit status.
    static func runBuilder(_ path: String, _ arguments: [String]) async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        // The builder runs for minutes while the loopback server answers it: wait without holding a thread.
        let exited = ExitWaiter(process)
        do { try process.run() } catch { throw CommandError(.failure, "cannot run \(path): \(error.localizedDescription)") }
        return await exited.status()
    }
}
