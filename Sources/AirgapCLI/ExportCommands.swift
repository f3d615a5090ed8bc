import AirgapBundle
import AirgapImageSet
import AirgapOCI
import AirgapRegistry
import AirgapSignatures
import AirgapStore
import AirgapTransfer
import ArgumentParser
import Foundation

struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen", abstract: "Create an Ed25519 key pair for signing bundles.",
        discussion: """
        Examples:
          airgap-export keygen --output-prefix site-a
            (writes site-a.key, mode 0600, and site-a.pub for the inside)
        """)
    @Option(name: .customLong("output-prefix"), help: "Writes NAME.key (private, mode 0600) and NAME.pub.") var outputPrefix = "airgap"
    @Flag(help: "Overwrite existing key files.") var force = false

    func run() async throws {
        let keyPath = outputPrefix + ".key", pubPath = outputPrefix + ".pub"
        if !force {
            for path in [keyPath, pubPath] where FileManager.default.fileExists(atPath: path) {
                throw CommandError(.failure, "\(path) already exists; use --force to replace it (bundles signed with the old key will no longer verify with the new one)")
            }
        }
        let key = BundleKeys.generate()
        try FileIO.writeAtomically(Data(BundleKeys.privatePEM(key).utf8), to: keyPath, mode: 0o600)
        chmod(keyPath, 0o600)
        try FileIO.writeAtomically(Data(BundleKeys.publicPEM(of: key).utf8), to: pubPath, mode: 0o644)
        print("Private key: \(keyPath) (keep it on the connected side)")
        print("Public key:  \(pubPath) (carry it inside; fingerprint \(BundleKeys.fingerprint(of: key)))")
    }
}

struct BundleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bundle", abstract: "Pull the images a manifest lists and write a signed bundle.",
        discussion: """
        Examples:
          airgap-export bundle -f images.yaml -o bundle.tar --key airgap.key
          airgap-export bundle -f images.txt -o bundle.tar --key airgap.key \\
              --split-size 4G
          airgap-export bundle -f images.yaml -o delta.tar --key airgap.key \\
              --since receipt.json
        """)
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var registry: RegistryFlags
    @Option(name: .shortAndLong, help: "The image manifest (YAML ImageSet or a plain list).") var file: String
    @Option(name: .shortAndLong, help: "The bundle to write.") var output: String
    @Option(help: "Private key (PEM) to sign with.") var key: String?
    @Flag(help: "Write an unsigned bundle (import refuses it unless --allow-unsigned).") var unsigned = false
    @Option(help: "Leave out blobs a receipt from the inside says it holds.") var since: String?
    @Option(name: .customLong("split-size"), help: "Split into volumes of SIZE bytes (K/M/G, or fat32).") var splitSize: String?
    @Flag(help: "Keep a copy of every blob fetched in the store (a store that exists is read from either way).") var cache = false
    @Flag(name: .shortAndLong, help: "Only the summary.") var quiet = false
    @OptionGroup var display: ProgressOptions
    @Option(name: .customLong("image-key"), help: ArgumentHelp("Carry only images signed with this key (repeatable; any one suffices): a cosign public key, or an OpenPGP public key for containers' GPG signatures; adds to the manifest's verify: keys.", valueName: "FILE"))
    var imageKeys: [String] = []
    @Option(name: .customLong("registries.d"), help: ArgumentHelp("Where containers' registries.d names the lookaside stores of simple-signing (GPG) signatures to carry (default: ~/.config/containers/registries.d, else /etc/containers/registries.d).", valueName: "DIR"))
    var registriesD: String?

    func validate() throws {
        if key == nil && !unsigned { throw ValidationError("give --key NAME.key to sign the bundle, or --unsigned") }
        if key != nil && unsigned { throw ValidationError("--key and --unsigned exclude each other") }
    }

    func run() async throws {
        let started = Date()
        try OutputPath.check(output, option: "-o")
        // Held here only until the exporter takes it (and lets its entries go once planned).
        var loaded: ImageSet?
        do { loaded = try ImageSet.load(path: file) } catch let error as ImageSet.ParseError {
            // Like a --key file that is not there: exit 1; a manifest read and found wrong is a usage error.
            throw CommandError(error.unreadable ? .failure : .usage, error.description)
        }
        let signingKey = try key.map { try BundleKeys.loadPrivateKey(path: $0) }
        let receipt = try since.map { try Receipt.load(path: $0) }
        let split = try splitSize.map { try parseSplitSize($0) }
        let keys = try imageKeys.map { try ImageKey.load(path: $0) }
        let lookaside = try RegistriesD.load(directory: registriesD)
        // The store is a cache, not a hop: read when it exists, written only with --cache.
        let storePath = globals.store ?? LocalStore.defaultPath()
        let store = cache || FileManager.default.fileExists(atPath: storePath + "/oci-layout") ? try LocalStore(path: storePath) : nil
        var table = registry.table
        for (host, settings) in loaded?.registries ?? [:] {
            table.perRegistry[host] = RegistryOptions(caFile: settings.caFile, insecure: settings.insecure)
        }
        let progress = display.renderer(verb: "Pull", title: "Bundle", quiet: quiet)
        let exporter = BundleExporter(store: store, cache: cache, events: progress.handle)
        let summary = try await RegistryClient.withClient(options: table, warn: { printErr($0) }) { client in
            let set = loaded!
            loaded = nil
            return try await exporter.export(consume set, client: client, options: .init(output: output, signingKey: signingKey, receipt: receipt, splitSize: split, imageKeys: keys, registriesD: lookaside))
        }
        progress.finish()
        let seconds = Date().timeIntervalSince(started)
        let files = summary.volumes.volumes.count > 1 ? "\(summary.volumes.volumes.count) volumes \(output).001…" : output
        print("Bundle: \(files) (\(Format.size(summary.bundleBytes)), sha256 \(summary.volumes.bundleSHA256))")
        print("Images: \(summary.images), blobs: \(summary.blobs), unique bytes: \(Format.size(summary.uniqueBytes)), saved by dedup: \(Format.size(summary.bytesSavedByDedup))"
              + (summary.leftOutBlobs > 0 ? ", left out (--since): \(summary.leftOutBlobs) blobs" : "")
              + (progress.planningSeconds.map { String(format: ", planned in: %.2fs", $0) } ?? "")
              + String(format: ", time: %.1fs", seconds))
        if signingKey == nil { printErr("warning: the bundle is unsigned; the inside must use --allow-unsigned and cannot tell who made it") }
    }
}
