import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapServe
import AirgapStore
import AirgapTar
import ArgumentParser
import Dispatch
import Foundation

/// `airgap-import serve`: a verified bundle (or the store) as a read-only registry, in place.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a verified bundle (or the store) as a read-only registry, straight from the media.",
        discussion: """
        The bundle is verified before the listener opens; its blobs are read in place (single file or \
        volumes, read-only media is fine) and hashed again as they are served. Names are laid out as \
        'push --to HOST:PORT[/PREFIX]' would: docker.io/library/httpd:2.4 is HOST:PORT/library/httpd:2.4.

        Examples:
          airgap-import serve images.tar --key signer.pub
          airgap-import serve images.tar.001 --listen 0.0.0.0:5000 \\
              --mirror-config /etc/airgap-mirror
          airgap-import --store /var/lib/airgap serve
            (the store instead of a bundle)
          docker pull 127.0.0.1:5000/library/httpd:2.4
        Ctrl-C (or SIGTERM) stops it.
        """)
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The bundle file, or its first volume FILE.001, or every volume; none: serve the store (--store).")
    var bundle: [String] = []
    @Option(help: "Public key (PEM) the bundle must be signed with (default: the trusted signers, see 'trust').") var key: String?
    @Flag(name: .customLong("allow-unsigned"), help: "Accept an unsigned bundle when no --key is given.") var allowUnsigned = false
    @Option(help: ArgumentHelp("Address to listen on (port 0: any free port).", valueName: "ADDR:PORT")) var listen = "127.0.0.1:5000"
    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("Serve HTTPS with this PEM certificate (chain).", valueName: "FILE")) var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: ArgumentHelp("The certificate's PEM private key.", valueName: "FILE")) var tlsKey: String?
    @Option(help: ArgumentHelp("Serve every name under this path (docker.io/library/httpd → P/library/httpd).", valueName: "P")) var prefix = ""
    @Option(name: .customLong("mirror-config"), help: ArgumentHelp("Write containerd hosts.toml, containers registries.conf and Docker daemon.json for pulls by the original names.", valueName: "DIR"))
    var mirrorConfig: String?
    @Option(name: .customLong("mirror-address"), help: ArgumentHelp("The address clients reach this server at, for --mirror-config (default: the listen address).", valueName: "HOST:PORT"))
    var mirrorAddress: String?
    @Option(help: ArgumentHelp("Append the access log (one line per request) to FILE instead of standard error.", valueName: "FILE")) var log: String?
    @Option(name: .customLong("idle-timeout"), help: ArgumentHelp("Close a connection that makes no progress for this long (no request finished, no data taken).", valueName: "SECONDS"))
    var idleTimeout = 60
    @Option(name: .customLong("max-connections"), help: "Connections served at once; more are closed as they arrive.")
    var maxConnections = 1024
    @Option(name: .customLong("image-key"), help: ArgumentHelp("Serve only if every image carries a signature by this key (repeatable): a cosign public key, or an OpenPGP public key.", valueName: "FILE"))
    var imageKeys: [String] = []

    func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if !prefix.isEmpty, (try? Reference(parsing: "serve.invalid/\(prefix)/x")) == nil {
            throw ValidationError("--prefix \(prefix) is not a valid repository path (lowercase letters, digits, '/', '.', '_', '-')")
        }
        _ = try Self.parseListen(listen)
        guard idleTimeout > 0, maxConnections > 0 else { throw ValidationError("--idle-timeout and --max-connections must be positive") }
    }

    static func parseListen(_ text: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen \(text) is not ADDR:PORT (127.0.0.1:5000, 0.0.0.0:5000, [::1]:5000)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    func run() async throws {
        let accessLog = try AccessLog(path: log)
        let (host, port) = try Self.parseListen(listen)
        let (source, names, what, signatures) = try await Self.openContent(bundle: bundle, key: key, allowUnsigned: allowUnsigned, imageKeys: imageKeys,
                                                                     storeRoot: globals.storeRoot, action: "nothing is served", verb: "serving")
        let content: ServedContent
        do {
            content = try await ServedContent.build(source: source, names: names, prefix: prefix, host: "\(host):\(port)",
                                                    signatures: signatures, warn: { printErr("warning: \($0)") })
        } catch let error as ContentError {
            throw CommandError(error.kind == .verification ? .verificationFailed : .failure, "cannot serve \(what): \(error.message)")
        }
        let api = RegistryAPI(content: content, alarm: { accessLog.alarm($0) })
        let server = try RegistryServer(api: api, log: accessLog, tlsCertificate: tlsCert, tlsKey: tlsKey,
                                        idleSeconds: idleTimeout, maxConnections: maxConnections)
        let scheme = server.scheme
        let mirror = mirrorConfig, mirrorAddress = self.mirrorAddress, prefix = self.prefix
        let certificatePEM = try tlsCert.map { try String(contentsOfFile: $0, encoding: .utf8) }

        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let serving = Task {
            try await server.run(host: host, port: port) { bound in
                let shown = host.contains(":") ? "[\(host)]:\(bound)" : "\(host):\(bound)"
                let reachable = mirrorAddress ?? (host == "0.0.0.0" || host == "::" ? "127.0.0.1:\(bound)" : shown)
                print("Serving \(content.images.count) image\(content.images.count == 1 ? "" : "s") (\(content.blobCount) blobs, \(Format.size(content.blobBytes))) from \(what), read-only")
                if let first = content.images.first {
                    print("Pull with: docker pull \(reachable)/\(first.served.repository)\(first.served.tag.map { ":\($0)" } ?? "@\(first.descriptor.digest)")")
                }
                if let mirror {
                    var config = MirrorConfig(address: reachable, scheme: scheme, prefix: prefix, registries: content.originalRegistries, certificatePEM: certificatePEM)
                    config.lookaside = !content.lookaside.isEmpty
                    do {
                        let written = try config.write(to: mirror)
                        print("Mirror configuration: \(written.count) files in \(mirror) (see \(mirror)/README.txt)")
                    } catch {
                        printErr("warning: cannot write the mirror configuration to \(mirror): \(error)")
                    }
                }
                print("Listening on \(scheme)://\(shown)")
                writeOut(1, "")
            }
        }
        let signals = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .main)
            source.setEventHandler { serving.cancel() }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        do {
            try await serving.value
        } catch is CancellationError {
        } catch let error as ContentError where !serving.isCancelled {
            throw CommandError(.failure, error.message)
        } catch where serving.isCancelled {
        }
        printErr("Stopped serving \(what).")
    }

    /// The verified bundle, or the store, with the names it holds (to serve, or to build from).
    static func openContent(bundle: [String], key: String?, allowUnsigned: Bool, imageKeys: [String], storeRoot root: String,
                            action: String, verb: String) async throws -> (any ContentSource, [(Reference, Descriptor)], String, [ServedContent.LookasideSignature]) {
        if bundle.isEmpty {
            guard imageKeys.isEmpty else {
                throw CommandError(.usage, "--image-key checks a bundle's images before they are used; to use only signed images from the store, load them with 'airgap-import load BUNDLE --image-key FILE' first")
            }
            guard FileManager.default.fileExists(atPath: root + "/index.json") else {
                throw CommandError(.usage, "there is no store at \(root) (no index.json): give a bundle, or --store DIR of a store that holds images")
            }
            let store = try LocalStore(path: root)
            var names: [(Reference, Descriptor)] = []
            for entry in try store.entries() {
                guard let name = entry.refName.flatMap({ try? Reference(parsing: $0) }) else { continue }
                names.append((name, entry))
            }
            return (StoreSource(store: store), names, "the store \(root)", [])
        }
        let files = try BundleFiles.resolve(bundle)
        let trust = try BundleInput.trust(key: key, allowUnsigned: allowUnsigned, storeRoot: root)
        let started = Date()
        printErr("Verifying \(files.paths.count == 1 ? files.paths[0] : "\(files.paths.count) volumes from \(files.paths[0])") before \(verb) it…")
        let result = try await BundleReader(files: files, trust: trust).read()
        if !result.ok {
            for finding in result.findings { printErr("finding: \(EscapedText.escape(finding.description))") }
            throw CommandError(.verificationFailed, "the bundle failed verification with \(result.findings.count) finding\(result.findings.count == 1 ? "" : "s") (first: \(EscapedText.escape(result.findings[0].description))); \(action)")
        }
        try BundleInput.checkImageSignatures(result, keyPaths: imageKeys, quiet: false, action: action)
        guard let verified = VerifiedBundle(result) else { throw CommandError(.verificationFailed, "the bundle failed verification; \(action)") }
        if !verified.metadata.requiredOnInside.isEmpty {
            throw CommandError(.failure, "this bundle was made with --since and leaves out \(verified.metadata.requiredOnInside.count) blobs the inside already holds; \(verb) it needs whole images: load it into the store ('airgap-import load'), then use the store ('--store DIR')")
        }
        printErr("Verified: \(result.signature.description)" + String(format: " (%.1fs)", Date().timeIntervalSince(started)))
        let names = verified.index.manifests.compactMap { entry -> (Reference, Descriptor)? in
            guard let name = entry.refName.flatMap({ try? Reference(parsing: $0) }) else { return nil }
            return (name, entry)
        }
        // Simple-signing signatures the bundle carries are served over containers' lookaside protocol.
        var signatures: [ServedContent.LookasideSignature] = []
        for image in verified.metadata.images {
            guard let name = try? Reference(parsing: image.reference) else { continue }
            for signature in image.lookasideSignatures ?? [] {
                guard let bytes = result.documents[signature.digest] else { continue }
                signatures.append(.init(image: name, subject: signature.subject, bytes: bytes))
            }
        }
        return (verified, names, "the bundle \((files.paths[0] as NSString).lastPathComponent)", signatures)
    }
}
