import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapSignatures
import AirgapStore
import AirgapTar
import AirgapTransfer
import ArgumentParser
import Foundation

struct BundlePush: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push", abstract: "Verify a bundle, then push its images to the internal registry.",
        discussion: """
        Examples:
          airgap-import push bundle.tar --key airgap.pub --to registry:5000/mirror
          airgap-import push bundle.tar.001 --to 127.0.0.1:5000 --ca-file ca.pem \\
              --format json
          airgap-import push app:1.0
            (no --to: Docker's push of a store image, as image push)
        """)
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var input: BundleInput
    @OptionGroup var registry: RegistryFlags
    @Option(help: "HOST[:PORT][/PREFIX]: docker.io/library/httpd:2.4 lands as HOST[:PORT]/PREFIX/library/httpd:2.4.") var to: String
    @Flag(name: .shortAndLong, help: "Only the pushed references.") var quiet = false
    @Option(help: "text or json (a summary object for scripts).") var format = "text"
    @Option(name: .customLong("registries.d"), help: ArgumentHelp("Where containers' registries.d names the lookaside store the bundle's simple-signing (GPG) signatures go to, under the new names (default: ~/.config/containers/registries.d, else /etc/containers/registries.d).", valueName: "DIR"))
    var registriesD: String?

    func run() async throws {
        let started = Date()
        let target = try PushTarget(parsing: to)
        let history = TagHistory(storeRoot: globals.storeRoot)
        let destination = "registry \(target)"
        let progress = input.display.renderer(verb: "Push", passVerb: "Verifying", quiet: quiet || format == "json")
        let result = try await input.reader(storeRoot: globals.storeRoot, progress: progress).read(verifiedMetadata: { metadata, signature in
            let tags = metadata.images.compactMap { image in
                (try? Reference(parsing: image.reference)).map { (target.rewrite($0).description, image.digest) }
            }
            try input.checkRollback(metadata, signature, history: history, destination: destination, tags: tags)
        })
        try reportFindings(result, quiet: quiet, nothing: "nothing was pushed")
        try input.checkImageSignatures(result, quiet: quiet || format == "json", action: "nothing was pushed")
        let outcome = try await registry.withClient { client in
            try await BundlePusher(client: client, events: progress.handle).push(result, to: target)
        }
        progress.finish()
        if let metadata = result.metadata, metadata.images.contains(where: { !($0.lookasideSignatures ?? []).isEmpty }) {
            let written = try LookasideCopy.write(result, registriesD: try RegistriesD.load(directory: registriesD), rename: target.rewrite)
            if !quiet && format != "json" {
                printErr("Simple-signing signatures: \(written.written) written to the lookaside store, \(written.alreadyThere) already there")
            }
            for skipped in written.skipped { printErr("warning: the signatures of \(skipped) were not written; name a file:// lookaside-staging for it in registries.d") }
        }
        try input.recordTags(result, history: history, destination: destination, tags: outcome.pushed.map { ($0.0.description, $0.1) })
        if format == "json" {
            struct Pushed: Encodable { var reference: String; var digest: String }
            struct Summary: Encodable { var pushed: [Pushed]; var transferredBytes: Int64; var skippedBlobs: Int; var seconds: Double }
            let s = progress.summary
            print(Format.json(Summary(pushed: outcome.pushed.map { Pushed(reference: $0.0.description, digest: $0.1.description) },
                                      transferredBytes: s.transferred, skippedBlobs: s.skippedBlobs, seconds: Date().timeIntervalSince(started))))
            return
        }
        for (reference, digest) in outcome.pushed { print(quiet ? reference.description : "Pushed \(reference.familiarDescription) \(digest)") }
    }
}

/// `load --into docker|podman|containerd`: the bundle read once, front to back, into the engine
/// through the copy engine's streamed copy, as `load` into the store: every blob hashed on its way
/// into the archive the engine reads, the names (planned from the verified bundle) written only
/// after every check passed, the image signatures included. A bundle that fails a check leaves the
/// engine with a cut-off archive that names no image, so it loads nothing.
enum EngineLoader {
    static func load(input: BundleInput, storeRoot: String, quiet: Bool, json: Bool = false, engine: any ImageEngine) async throws {
        let started = Date()
        // Used by the one thread that reads the bundle, and only after this function hands it over.
        let progress = input.display.renderer(verb: "Load", passVerb: "Loading into \(engine.name) from", quiet: quiet || json)
        nonisolated(unsafe) let reader = try input.reader(storeRoot: storeRoot, progress: progress)
        let history = TagHistory(storeRoot: storeRoot)
        let sink = EngineSink(engineName: engine.name, load: { try await engine.load($0) })
        let copy = StreamedCopy(sink: sink)
        // On a thread of its own: handing bytes to the engine blocks until it takes them, and that
        // must not hold one of the few threads every task shares.
        let read: Result<BundleReadResult, any Error> = await withTaskExecutorPreference(BlockingThread()) {
            do {
                return .success(try await reader.read(into: copy, admit: { metadata, signature in
                    if !metadata.requiredOnInside.isEmpty {
                        throw CommandError(.failure, "this bundle was made with --since and leaves out \(metadata.requiredOnInside.count) blobs; \(engine.name) needs whole images, so load it into the store or push it instead")
                    }
                    try input.checkRollback(metadata, signature, history: history, destination: engine.destination, tags: metadata.tags)
                }))
            } catch {
                return .failure(error)
            }
        }
        progress.finish()
        let result: BundleReadResult
        switch read {
        case .success(let value) where value.ok:
            result = value
        case .success(let value):
            // The engine failed first (it stopped reading): its error, not the cut-off it caused.
            if let error = await sink.engineError() { await copy.abort(); throw error }
            await copy.abort()
            try reportFindings(value, quiet: quiet, nothing: "nothing was loaded into \(engine.name)")
            return
        case .failure(let error):
            let engineError = await sink.engineError()
            await copy.abort()
            throw engineError ?? error
        }
        do {
            try input.checkImageSignatures(result, quiet: quiet, action: "nothing was loaded into \(engine.name)")
            guard let bundle = VerifiedBundle(result) else { throw CommandError(.verificationFailed, "the bundle did not verify") }
            let named = try await bundle.plan()
            // The names go into the engine's pipe, which blocks while it is full.
            try await withTaskExecutorPreference(BlockingThread()) { try await copy.commit(named) }
        } catch {
            await copy.abort()
            throw error
        }
        // What the engine printed is not repeated (ctr prints nothing, podman and docker their own
        // lines): the names are said once checked against what the engine lists.
        let listed = try await engine.listedNames()
        var missing: [String] = [], loaded: [String] = []
        // Attachments and artifacts are no images an engine loads: the Docker view leaves them out.
        for image in result.metadata?.engineImages ?? [] {
            guard let reference = try? Reference(parsing: image.reference), reference.tag != nil else { continue }
            let familiar = reference.withDigest(nil).familiarDescription
            if !listed.contains(familiar) && !listed.contains(reference.withDigest(nil).description) { missing.append(familiar) }
            else { loaded.append(familiar) }
        }
        if !missing.isEmpty {
            throw CommandError(.failure, "\(engine.name) does not list \(missing.joined(separator: ", ")) after the load")
        }
        if let metadata = result.metadata {
            try input.recordTags(result, history: history, destination: engine.destination, tags: metadata.tags)
        }
        if json {
            struct Summary: Encodable { var loaded: [String]; var engine: String; var seconds: Double; var signature: String }
            print(Format.json(Summary(loaded: loaded, engine: engine.destination, seconds: Date().timeIntervalSince(started), signature: result.signature.description)))
            return
        }
        for name in loaded { print(quiet ? name : "Loaded image: \(EscapedText.escape(name))") }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Write a checksum audit report of a bundle (or of the store it was loaded into).",
        discussion: """
        Examples:
          airgap-import audit bundle.tar --key airgap.pub
          airgap-import audit bundle.tar --format html -o report.html
          airgap-import audit bundle.tar --in-store --registry registry:5000/mirror \\
              --format csv
        """)
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var input: BundleInput
    @Option(help: "text, json, csv or html.") var format = "text"
    @Option(name: .shortAndLong, help: "Write the report to FILE.") var output: String?
    @Flag(name: .customLong("in-store"), help: "Also check every blob in the store (present and re-hashed).") var inStore = false
    @Option(name: .customLong("registry"), help: "Also check what was pushed to HOST[:PORT][/PREFIX] (every blob fetched and re-hashed).")
    var registryTarget: String?
    @OptionGroup var registry: RegistryFlags

    func validate() throws {
        guard ["text", "json", "csv", "html"].contains(format) else { throw ValidationError("--format must be text, json, csv or html") }
    }

    func run() async throws {
        if let output { try OutputPath.check(output, option: "-o") }
        let progress = input.display.renderer(verb: "Audit", passVerb: "Hashing", quiet: false)
        let read = try await input.reader(storeRoot: globals.storeRoot, hashFiles: true, progress: progress).read()
        let keys = try input.imageKeys.map { try ImageKey.load(path: $0) }
        var report = AuditReport.make(read, store: inStore ? try globals.openStore() : nil, imageKeys: keys, events: progress.handle)
        progress.finish()
        if let registryTarget {
            let target = try PushTarget(parsing: registryTarget)
            try await registry.withClient { client in try await report.checkRegistry(read, client: client, target: target) }
        }
        let data: Data
        switch format {
        case "json": data = try report.json()
        case "csv": data = Data(report.csv().utf8)
        case "html": data = Data(report.html().utf8)
        default: data = Data(report.text().utf8)
        }
        if let output { try FileIO.writeAtomically(data, to: output) } else { writeOut(1, data) }
        if !report.passed {
            let broken = report.brokenImages
            throw CommandError(.verificationFailed, "the audit FAILED with \(report.findings.count) finding\(report.findings.count == 1 ? "" : "s")"
                               + (broken.isEmpty ? "" : " (\(broken.count) of \(report.images.count) images broken)") + (output.map { "; see \($0)" } ?? ""))
        }
        // With the report in a file, the verdict still goes to the terminal.
        if let output { print("Audit PASS: \(report.images.count) image\(report.images.count == 1 ? "" : "s"), \(report.blobs.count) blobs checked; the report is in \(output)") }
    }
}
