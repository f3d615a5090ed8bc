import AirgapBundle
import AirgapOCI
import AirgapStore
import AirgapTar
import AirgapTransfer
import ArgumentParser
import Foundation

/// `airgap-export`: the connected side.
public struct ExportRoot: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "airgap-export",
        abstract: "Gather container images into a signed, verifiable bundle for an air-gapped network.",
        discussion: """
        Docker's top-level forms work as well: images, pull, push, tag, rmi, save, load, history and \
        inspect are the image commands of the same name.

        Examples:
          airgap-export keygen
          airgap-export bundle -f images.yaml -o bundle.tar --key airgap.key
          airgap-export pull httpd:2.4 && airgap-export images

        Shell completions: airgap-export --generate-completion-script bash|zsh|fish \
        (scripts/install-docs.sh installs them with the man pages).
        """,
        version: AirgapVersion.current,
        subcommands: [BundleCommand.self, Keygen.self, CopyCommand.self, ImageGroup.self, SystemGroup.self, Login.self, Logout.self, Search.self, SampleData.self])
    public init() {}
}

/// `airgap-import`: the restricted side.
public struct ImportRoot: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "airgap-import",
        abstract: "Verify a bundle and load it into the local store, a Docker engine or the internal registry.",
        discussion: """
        Docker's top-level forms work as well: images, pull, tag, rmi, save, history and inspect are \
        the image commands of the same name; 'load -i FILE' (or 'load < FILE') is image load and \
        'push NAME' without --to is image push, while 'load BUNDLE' and 'push BUNDLE --to' are the \
        bundle commands.

        Examples:
          airgap-import verify bundle.tar --key airgap.pub
          airgap-import load bundle.tar --key airgap.pub
          airgap-import push bundle.tar --key airgap.pub --to registry:5000/mirror
          airgap-import serve bundle.tar --key airgap.pub --listen 127.0.0.1:5000

        Shell completions: airgap-import --generate-completion-script bash|zsh|fish \
        (scripts/install-docs.sh installs them with the man pages).
        """,
        version: AirgapVersion.current,
        subcommands: [Verify.self, Load.self, BundlePush.self, Serve.self, ContextGroup.self, Build.self, Audit.self, ReceiptCommand.self, TrustGroup.self,
                      CopyCommand.self, ImageGroup.self, SystemGroup.self, Login.self, Logout.self, Search.self])
    public init() {}
}

/// Writes generated sample images as an image archive: the fixtures of the demo, tests and benchmarks.
struct SampleData: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample-images",
        abstract: "Write generated sample images (sharing a base layer) to an image archive.",
        shouldDisplay: false)
    @Option(name: .shortAndLong, help: "Archive to write.") var output: String
    @Option(help: "How many application images.") var count = 3
    @Option(help: "Size of the shared base layer's payload (bytes, or K/M/G).") var baseBytes = "256K"
    @Option(help: "Size of each application layer's payload (bytes, or K/M/G).") var appBytes = "64K"
    @Option(help: "Name prefix of the images.") var prefix = "sample/app"
    @Flag(help: "Also write a two-platform index (linux/amd64, linux/arm64/v8).") var multiArch = false
    @Flag(help: "Leave layers uncompressed (fast to generate at large sizes).") var uncompressed = false

    func run() async throws {
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("airgap-sample-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: temp) }
        let store = try LocalStore(path: temp)
        var options = SampleImages.Options()
        options.count = count
        options.baseLayerBytes = Int(try parseByteSize(baseBytes))
        options.appLayerBytes = Int(try parseByteSize(appBytes))
        options.namePrefix = prefix
        options.multiArch = multiArch
        options.compress = !uncompressed
        let references = try SampleImages(store: store).generate(options)
        // Read the index once (a findOne per name would read all of it per name).
        let byName = Dictionary(try store.images().compactMap { image in image.reference.map { ($0, image) } }, uniquingKeysWith: { a, _ in a })
        let images = references.compactMap { byName[$0] }
        let fd = try FileIO.open(output, flags: O_WRONLY | O_CREAT | O_TRUNC)
        defer { close(fd) }
        _ = try await ArchiveSaver(store: store).save(images, format: .docker, to: AirgapTar.fileSink(fd: fd, path: output))
        for reference in references { print(reference.familiarDescription) }
    }
}
