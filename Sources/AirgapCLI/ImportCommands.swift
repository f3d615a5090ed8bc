import AirgapBundle
import AirgapOCI
import AirgapRegistry
import AirgapSignatures
import AirgapStore
import AirgapTar
import AirgapTransfer
import ArgumentParser
import Foundation

/// The bundle and how to trust it: shared by verify, load, push and audit.
struct BundleInput: ParsableArguments {
    @Argument(help: "The bundle file, or its first volume FILE.001 (the others are found), or every volume.")
    var bundle: [String]
    @Option(help: "Public key (PEM) the bundle must be signed with (default: the trusted signers, see 'trust').") var key: String?
    @Flag(name: .customLong("allow-unsigned"), help: "Accept an unsigned bundle when no --key is given.")
    var allowUnsigned = false
    @Flag(name: .customLong("allow-rollback"), help: "Let a bundle older than the one that set a tag move that tag back.")
    var allowRollback = false
    @Option(name: .customLong("image-key"), help: ArgumentHelp("Every image must carry a signature by this key (repeatable; any one suffices), checked from the bundle's bytes: a cosign public key, or an OpenPGP public key (gpg --export) for containers' GPG signatures.", valueName: "FILE"))
    var imageKeys: [String] = []
    @OptionGroup var display: ProgressOptions

    func validate() throws {
        if bundle.isEmpty { throw ValidationError("give the bundle to read") }
    }

    /// With --image-key: every image's signature checked from the verified bytes; a failure is
    /// exit 3 naming the images and why, and `action` names what did not happen.
    func checkImageSignatures(_ result: BundleReadResult, quiet: Bool, action: String) throws {
        try Self.checkImageSignatures(result, keyPaths: imageKeys, quiet: quiet, action: action)
    }

    static func checkImageSignatures(_ result: BundleReadResult, keyPaths: [String], quiet: Bool, action: String) throws {
        guard !keyPaths.isEmpty, result.ok else { return }
        let keys = try keyPaths.map { try ImageKey.load(path: $0) }
        let checked = try BundleSignatures.check(result, keys: keys)
        let failed = checked.filter { !$0.outcome.isVerified }
        for item in checked where !quiet || !item.outcome.isVerified {
            printErr("Image signature: \(EscapedText.escape(item.image)): \(item.outcome)")
        }
        guard let first = failed.first else { return }
        throw CommandError(.verificationFailed, "\(failed.count) image\(failed.count == 1 ? "" : "s") fail the signature check (first: \(EscapedText.escape(first.image)): \(first.outcome)); \(action)")
    }

    /// Which signatures count: the key given, else the store's trusted signers.
    func trust(storeRoot: String) throws -> BundleTrust {
        try Self.trust(key: key, allowUnsigned: allowUnsigned, storeRoot: storeRoot)
    }

    static func trust(key: String?, allowUnsigned: Bool, storeRoot: String) throws -> BundleTrust {
        if let key {
            return BundleTrust(keys: [try BundleKeys.loadPublicKey(path: key)], keyNamedByUser: true, allowUnsigned: allowUnsigned,
                               keySource: "the key \(key)")
        }
        let trusted = try TrustedSigners(storeRoot: storeRoot).keys()
        if trusted.isEmpty && !allowUnsigned {
            throw CommandError(.usage, "no key to check the bundle's signature with: give --key NAME.pub, or trust its signer once with 'airgap-import trust add NAME.pub' (or accept it unsigned with --allow-unsigned)")
        }
        return BundleTrust(keys: trusted, keyNamedByUser: false, allowUnsigned: allowUnsigned,
                           keySource: "any of the \(trusted.count) trusted signer\(trusted.count == 1 ? "" : "s") ('airgap-import trust ls')")
    }

    /// The reader of the bundle; `progress` is told of its read pass.
    func reader(storeRoot: String, hashFiles: Bool = false, progress: ProgressRenderer? = nil) throws -> BundleReader {
        let files = try BundleFiles.resolve(bundle)
        let reader = BundleReader(files: files, trust: try trust(storeRoot: storeRoot), hashFiles: hashFiles)
        reader.events = progress?.handle
        return reader
    }

    /// Refuses a bundle that would move a tag back to what an older bundle of the same signer set.
    func checkRollback(_ metadata: BundleMetadata, _ signature: SignatureStatus, history: TagHistory, destination: String,
                       tags: [(String, Digest)]) throws {
        try Self.checkRollback(metadata, signature, history: history, destination: destination, tags: tags, allowRollback: allowRollback)
    }

    static func checkRollback(_ metadata: BundleMetadata, _ signature: SignatureStatus, history: TagHistory, destination: String,
                              tags: [(String, Digest)], allowRollback: Bool) throws {
        guard case .valid(let signer) = signature, !allowRollback else { return }
        let rollbacks = try history.rollbacks(destination: destination, signer: signer, created: metadata.createdForHistory, tags: tags)
        guard let first = rollbacks.first else { return }
        throw CommandError(.verificationFailed, "refusing a rollback: \(first)\(rollbacks.count > 1 ? " (and \(rollbacks.count - 1) more tags)" : ""); nothing was changed (use --allow-rollback if this is intended)")
    }

    /// Remembers which bundle set these tags (signed bundles only: an unsigned one proves nothing).
    func recordTags(_ result: BundleReadResult, history: TagHistory, destination: String, tags: [(String, Digest)]) throws {
        try Self.recordTags(result, history: history, destination: destination, tags: tags)
    }

    static func recordTags(_ result: BundleReadResult, history: TagHistory, destination: String, tags: [(String, Digest)]) throws {
        guard case .valid(let signer) = result.signature, let metadata = result.metadata, let id = result.bundleID else { return }
        try history.record(destination: destination, signer: signer, created: metadata.createdForHistory, bundle: id, tags: tags)
    }
}

extension BundleMetadata {
    /// The tags the bundle sets, with what they name.
    var tags: [(String, Digest)] { images.map { ($0.reference, $0.digest) } }
    /// A format-1 bundle has no creation time: it counts as older than any that has one.
    var createdForHistory: String { created ?? "1970-01-01T00:00:00Z" }
}

extension GlobalOptions {
    /// The store's directory, without creating it (verify reads only its trusted signers).
    var storeRoot: String { store ?? LocalStore.defaultPath() }
}

/// Each finding on a line of its own, then one sentence that names where the first is (its
/// whole text is the line above, not repeated) and what did not happen.
func reportFindings(_ result: BundleReadResult, quiet: Bool, nothing: String = "nothing was loaded") throws {
    guard !result.ok else { return }
    for finding in result.findings { printErr("finding: \(EscapedText.escape(finding.description))") }
    let first = result.findings[0]
    let place = EscapedText.escape(first.entry) + (first.volume.map { " in \(EscapedText.escape($0))" } ?? "")
    let count = result.findings.count == 1 ? "1 finding, in \(place)" : "\(result.findings.count) findings, the first in \(place)"
    throw CommandError(.verificationFailed, "the bundle failed verification (\(count)); \(nothing)")
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check a bundle: signature, then every entry, then its structure.",
        discussion: """
        Examples:
          airgap-import verify bundle.tar --key airgap.pub
          airgap-import verify bundle.tar.001 --format json
        """)
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var input: BundleInput
    @Option(help: "text or json.") var format = "text"
    @Flag(name: .shortAndLong, help: "Only the verdict.") var quiet = false

    func run() async throws {
        let started = Date()
        let progress = input.display.renderer(verb: "Verify", passVerb: "Verifying", quiet: quiet || format == "json")
        let reader = try input.reader(storeRoot: globals.storeRoot, progress: progress)
        reader.keepsConfigs = false // nothing after the read looks at a config's bytes
        reader.keepsOffsets = false // nor reads a blob again
        let result = try await reader.read()
        progress.finish()
        let seconds = Date().timeIntervalSince(started)
        let bytes = result.entries.reduce(Int64(0)) { $0 + $1.size }
        if format == "json" {
            struct Output: Encodable { var ok: Bool; var signature: String; var entries: Int; var bytes: Int64; var findings: [Finding] }
            print(Format.json(Output(ok: result.ok, signature: result.signature.description, entries: result.entries.count, bytes: bytes, findings: result.findings)))
        } else if !quiet {
            print("Signature: \(result.signature.description)")
            print("Entries checked: \(result.entries.count) (\(Format.size(bytes)))" + String(format: " in %.1fs", seconds))
            if let metadata = result.metadata {
                print("Images: \(metadata.images.count), blobs: \(metadata.blobs.count)" + (metadata.requiredOnInside.isEmpty ? "" : ", required on the inside: \(metadata.requiredOnInside.count)"))
            }
        }
        if result.ok {
            try input.checkImageSignatures(result, quiet: quiet || format == "json", action: "the bundle's own checks passed")
            if format != "json" { print("Bundle verified: OK") }
            return
        }
        for finding in result.findings { printErr("finding: \(EscapedText.escape(finding.description))") }
        throw CommandError(.verificationFailed, "the bundle failed verification with \(result.findings.count) finding\(result.findings.count == 1 ? "" : "s")")
    }
}

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load", abstract: "Verify a bundle while loading it into the store, or into Docker, podman or containerd.",
        discussion: """
        Examples:
          airgap-import load bundle.tar --key airgap.pub
          airgap-import load bundle.tar --into docker
          airgap-import load bundle.tar --into containerd:k8s.io
          airgap-import load -i image.tar
            (no BUNDLE: Docker's load of an image archive, as image load)
        """)
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var input: BundleInput
    @Option(help: ArgumentHelp("store (the local store), docker (a Docker engine via DOCKER_HOST), podman (podman load), or containerd[:NAMESPACE] (ctr import; CONTAINERD_ADDRESS, namespace default).", valueName: "TARGET"))
    var into = "store"
    @Flag(name: .shortAndLong, help: "Only the loaded references.") var quiet = false
    @Option(help: "text or json (a summary object for scripts).") var format = "text"

    func validate() throws {
        guard ["store", "docker", "podman"].contains(into) || into == "containerd" || into.hasPrefix("containerd:") else {
            throw ValidationError("--into must be store, docker, podman or containerd[:NAMESPACE]")
        }
        guard ["text", "json"].contains(format) else { throw ValidationError("--format must be text or json") }
    }

    func run() async throws {
        let started = Date()
        if into != "store" {
            try await EngineLoader.load(input: input, storeRoot: globals.storeRoot, quiet: quiet, json: format == "json", engine: try Engines.named(into))
            return
        }
        let progress = input.display.renderer(verb: "Load", passVerb: "Verifying and loading", quiet: quiet || format == "json")
        let reader = try input.reader(storeRoot: globals.storeRoot, progress: progress)
        // The store gets configs and blobs as they pass: nothing after the read looks at their
        // bytes again, or reads them from the bundle (the image signatures are documents).
        reader.keepsConfigs = false
        reader.keepsOffsets = false
        let store = try globals.openStore()
        let history = TagHistory(storeRoot: store.root)
        let outcome = try await BundleImporter(store: store).load(reader, admit: { metadata, signature in
            try input.checkRollback(metadata, signature, history: history, destination: "store", tags: metadata.tags)
        }, beforePublish: { result in
            try input.checkImageSignatures(result, quiet: quiet || format == "json", action: "nothing was loaded")
        })
        progress.finish()
        try reportFindings(outcome.result, quiet: quiet)
        if let metadata = outcome.result.metadata {
            try input.recordTags(outcome.result, history: history, destination: "store", tags: metadata.tags)
        }
        if format == "json" {
            struct Summary: Encodable { var loaded: [String]; var blobsAdded: Int; var blobsAlreadyPresent: Int; var seconds: Double; var signature: String }
            print(Format.json(Summary(loaded: outcome.loaded.map(\.description), blobsAdded: outcome.blobsAdded,
                                      blobsAlreadyPresent: outcome.blobsAlreadyPresent, seconds: Date().timeIntervalSince(started),
                                      signature: outcome.result.signature.description)))
            return
        }
        for reference in outcome.loaded { print(quiet ? reference.description : "Loaded image: \(EscapedText.escape(reference.familiarDescription))") }
        if !quiet {
            print("Blobs: \(outcome.blobsAdded) added, \(outcome.blobsAlreadyPresent) already present" + String(format: ", time: %.1fs", Date().timeIntervalSince(started)))
        }
    }
}

struct ReceiptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receipt", abstract: "Write what the inside holds, for 'airgap-export bundle --since'.",
        discussion: """
        Examples:
          airgap-import receipt -o receipt.json
          airgap-import receipt --registry registry:5000/mirror -o receipt.json
        """)
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var registry: RegistryFlags
    @Option(name: .shortAndLong, help: "Write to FILE instead of standard output.") var output: String?
    @Option(name: .customLong("registry"), help: "Describe a registry HOST[:PORT][/PREFIX] instead of the store.") var registryTarget: String?

    func run() async throws {
        if let output { try OutputPath.check(output, option: "-o") }
        let receipt: Receipt
        if let registryTarget {
            receipt = try await registry.withClient { client in try await RegistryReceipt.make(client: client, target: registryTarget) }
        } else {
            let store = try globals.openStoreForReading()
            let images = try store.images()
            // Only blobs reachable from a named image: stray cache blobs could be pruned before the next bundle arrives.
            var blobs = Set<Digest>()
            for image in images { blobs.formUnion(try store.contentClosure(of: image.entry, requireAll: false).required) }
            receipt = Receipt(tool: "airgap \(AirgapVersion.current)", describes: .init(store: store.root, registry: nil), blobs: Array(blobs),
                              images: images.compactMap { i in i.reference.map { Receipt.Image(reference: $0.description, digest: i.entry.digest) } })
        }
        let data = try CanonicalJSON.encode(receipt, pretty: true)
        if let output { try FileIO.writeAtomically(data, to: output); printErr("Receipt: \(receipt.blobs.count) blobs, \(receipt.images.count) images → \(output)") }
        else { writeOut(1, data); print("") }
    }
}
