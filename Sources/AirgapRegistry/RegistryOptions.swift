import AirgapOCI
import Foundation
import NIOSSL

/// How to reach one registry: extra CA, or `--insecure` (plain HTTP or unverified TLS).
public struct RegistryOptions: Sendable, Hashable {
    public var caFile: String?
    public var insecure: Bool
    public init(caFile: String? = nil, insecure: Bool = false) { self.caFile = caFile; self.insecure = insecure }
}

/// Per-registry options: command-line flags apply to every registry, a manifest's `registries:` block to one.
public struct RegistryOptionsTable: Sendable {
    public var defaults: RegistryOptions
    public var perRegistry: [String: RegistryOptions]
    public init(defaults: RegistryOptions = RegistryOptions(), perRegistry: [String: RegistryOptions] = [:]) {
        self.defaults = defaults
        self.perRegistry = perRegistry
    }
    public func options(for registry: String) -> RegistryOptions {
        guard let specific = perRegistry[registry] else { return defaults }
        return RegistryOptions(caFile: specific.caFile ?? defaults.caFile, insecure: specific.insecure || defaults.insecure)
    }
}

/// Directories whose `HOST[:PORT]/*.crt` files add trusted CAs (Docker's and containers' documented layout).
public let certificateDirectories = ["/etc/docker/certs.d", "/etc/containers/certs.d"]

enum TLSSetup {
    static func configuration(registry: String, options: RegistryOptions, certificateDirectories: [String]) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if options.insecure {
            tls.certificateVerification = .none
            return tls
        }
        var extra: [NIOSSLCertificate] = []
        var files: [String] = []
        if let ca = options.caFile { files.append(ca) }
        for dir in certificateDirectories {
            let hostDir = "\(dir)/\(registry)"
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: hostDir) else { continue }
            files += names.filter { $0.hasSuffix(".crt") }.sorted().map { "\(hostDir)/\($0)" }
        }
        for file in files {
            guard FileManager.default.fileExists(atPath: file) else {
                throw RegistryError(.tls, "the CA file \(file) does not exist; check the path given to --ca-file")
            }
            do { extra += try NIOSSLCertificate.fromPEMFile(file) } catch {
                throw RegistryError(.tls, "the CA file \(file) holds no readable PEM certificate")
            }
        }
        if !extra.isEmpty {
            // System roots stay trusted; the extra CAs are added to them.
            tls.additionalTrustRoots = [.certificates(extra)]
        }
        return tls
    }
}
