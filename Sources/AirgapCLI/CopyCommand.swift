import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapStore
import AirgapTransfer
import ArgumentParser
import Foundation

/// `copy SRC DST`: skopeo's transports (and the store and bundles), one plan over the copy engine.
struct CopyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy images between registries, OCI layouts, archives, bundles and the store.",
        discussion: """
        Transports: \(Transport.names).
        A source without a reference (an archive, a layout, a bundle) gives every named image it holds;
        a registry destination for several images is docker://HOST[:PORT][/PREFIX].

        Examples:
          copy docker://registry.example/team/app:1 oci-archive:app.tar
          copy docker-archive:saved.tar docker://127.0.0.1:5000/mirror
          copy bundle:site.tar --key site.pub oci:/srv/layout
          copy store:httpd:2.4 docker://registry.internal/library/httpd:2.4
        """)
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var registry: RegistryFlags
    @Option(name: .customLong("platform"), help: ArgumentHelp("OS/ARCH[/VARIANT] to copy from a multi-platform image (repeatable; default: this machine's from a registry, everything from a local source).", valueName: "PLATFORM"))
    var platforms: [String] = []
    @Flag(name: [.customLong("all"), .customLong("all-platforms")], help: "Every platform of a multi-platform image.") var all = false
    @Option(help: "Public key (PEM) a bundle: source must be signed with (default: the trusted signers).") var key: String?
    @Flag(name: .customLong("allow-unsigned"), help: "Accept an unsigned bundle: source.") var allowUnsigned = false
    @Flag(name: .customLong("allow-rollback"), help: "Let a bundle: source older than the one that set a tag move that tag back.") var allowRollback = false
    @Flag(name: .shortAndLong, help: "Print only the copied references.") var quiet = false
    @OptionGroup var display: ProgressOptions
    @Argument(help: "Where the images are.") var source: String
    @Argument(help: "Where they go.") var destination: String

    func validate() throws {
        if all && !platforms.isEmpty { throw ValidationError("--platform and --all exclude each other") }
    }

    func run() async throws {
        let from = try Transport(parsing: source), to = try Transport(parsing: destination)
        // An archive to write: its directory is checked before anything is read.
        switch to {
        case .ociArchive(let file, _), .dockerArchive(let file, _): try OutputPath.check(file, option: "the destination")
        default: break
        }
        var options = Copier.Options(storePath: globals.storeRoot)
        options.platforms = try platforms.map { try Platform(parsing: $0) }
        options.allPlatforms = all
        if case .bundle = from {
            options.trust = try BundleInput.trust(key: key, allowUnsigned: allowUnsigned, storeRoot: globals.storeRoot)
            // The same rollback rule and tag history as load and push.
            let history = TagHistory(storeRoot: globals.storeRoot)
            let allowRollback = self.allowRollback
            options.admitBundle = { result, destination, tags in
                guard let metadata = result.metadata else { return }
                try BundleInput.checkRollback(metadata, result.signature, history: history, destination: destination, tags: tags, allowRollback: allowRollback)
            }
            options.recordBundle = { result, destination, tags in
                try BundleInput.recordTags(result, history: history, destination: destination, tags: tags)
            }
        }
        let progress = display.renderer(verb: "Copy", quiet: quiet)
        let copied = try await registry.withClient { client in
            try await Copier(client: client, options: options, events: progress.handle).copy(from: from, to: to)
        }
        progress.finish()
        for image in copied {
            if !quiet { print("Digest: \(image.top.digest)") }
            print(image.named ? image.name.description : image.top.digest.description)
        }
    }
}
