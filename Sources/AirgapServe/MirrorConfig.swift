import AirgapOCI
import Foundation

/// Client configuration that sends pulls by the images' original names to a served bundle:
/// containerd `hosts.toml` (certs.d layout), containers `registries.conf`, Docker `daemon.json`,
/// and over TLS the server's certificate where each client looks for it.
public struct MirrorConfig: Sendable {
    /// `HOST:PORT` clients reach the server at.
    public var address: String
    public var scheme: String
    public var prefix: String
    /// The original registries (`docker.io`, `quay.io`, `myreg:5000`).
    public var registries: [String]
    /// The server's certificate (PEM) for clients to trust; a self-signed one is its own CA.
    public var certificatePEM: String?
    /// The server answers containers' lookaside protocol (it serves simple-signing signatures).
    public var lookaside = false

    public init(address: String, scheme: String, prefix: String, registries: [String], certificatePEM: String?) {
        self.address = address
        self.scheme = scheme
        self.prefix = prefix
        self.registries = registries
        self.certificatePEM = certificatePEM
    }

    /// Relative path → contents.
    public var files: [(String, String)] {
        var files: [(String, String)] = []
        for registry in registries {
            files.append(("containerd/certs.d/\(registry)/hosts.toml", hostsToml(registry)))
            if let certificatePEM { files.append(("containerd/certs.d/\(registry)/ca.crt", certificatePEM)) }
        }
        files.append(("containers/registries.conf", registriesConf))
        if let certificatePEM {
            // containers/image and dockerd look up a registry's CA by HOST:PORT in certs.d.
            files.append(("containers/certs.d/\(address)/ca.crt", certificatePEM))
            files.append(("docker/certs.d/\(address)/ca.crt", certificatePEM))
        }
        if lookaside { files.append(("containers/registries.d/airgap-serve.yaml", registriesD)) }
        if let daemon = daemonJSON { files.append(("docker/daemon.json", daemon)) }
        files.append(("README.txt", readme))
        return files
    }

    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    var root: String { "\(scheme)://\(address)" }

    func hostsToml(_ registry: String) -> String {
        // containerd appends /v2/NAME/...; with a prefix the host URL carries /v2/PREFIX and override_path.
        let host = prefix.isEmpty ? root : "\(root)/v2/\(prefix)"
        // `server` is the fallback after the hosts: the mirror again, so that a node inside never
        // reaches for the original registry (a DNS lookup and a timeout at best, a leak at worst).
        var text = """
        # Written by airgap-import serve: pulls of \(registry)/… are answered by the served bundle at \(address).
        server = \(Self.quoted(root))

        [host.\(Self.quoted(host))]
          capabilities = ["pull", "resolve"]

        """
        if !prefix.isEmpty { text += "  override_path = true\n" }
        // Relative to this file's directory, so the directory can be copied to /etc/containerd/certs.d.
        if certificatePEM != nil { text += "  ca = \"ca.crt\"\n" }
        return text
    }

    var registriesConf: String {
        let location = prefix.isEmpty ? address : "\(address)/\(prefix)"
        var text = """
        # Written by airgap-import serve: podman, buildah and skopeo pull these registries' images from \(location).
        # podman/buildah: CONTAINERS_REGISTRIES_CONF=THIS_FILE; skopeo: --registries-conf THIS_FILE;
        # or merge it into /etc/containers/registries.conf.

        """
        for registry in registries {
            text += """

            [[registry]]
            prefix = \(Self.quoted(registry))
            location = \(Self.quoted(registry))

            [[registry.mirror]]
            location = \(Self.quoted(location))

            """
            if scheme == "http" { text += "insecure = true\n" }
        }
        return text
    }

    /// containers' registries.d: the signatures of the served names, and of the original names
    /// (pulled through the mirror), are read from this server.
    var registriesD: String {
        var text = "# Written by airgap-import serve: simple-signing signatures are read from \(root)/sigstore.\n"
        text += "# Use it with 'skopeo --registries.d DIR', or copy it to /etc/containers/registries.d/.\ndocker:\n"
        for scope in [address] + registries {
            text += "  \(Self.quoted(scope)):\n    lookaside: \(Self.quoted(root + "/sigstore"))\n"
        }
        return text
    }

    /// Docker mirrors Docker Hub only, and only from a mirror's root.
    var daemonJSON: String? {
        guard registries.contains(Reference.dockerHub), prefix.isEmpty else { return nil }
        let insecure = scheme == "http" ? ",\n  \"insecure-registries\": [\(Self.quoted(address))]" : ""
        return "{\n  \"registry-mirrors\": [\(Self.quoted(root))]\(insecure)\n}\n"
    }

    var readme: String {
        let tls = certificatePEM != nil
        var text = """
        Client configuration for the registry airgap-import serve runs at \(root)\(prefix.isEmpty ? "" : "/" + prefix).
        Images are pulled by their original names (\(registries.joined(separator: ", "))).

        containerd / ctr / nerdctl / Kubernetes nodes:
          ctr images pull --hosts-dir DIR/containerd/certs.d NAME
          or copy containerd/certs.d/* to /etc/containerd/certs.d/ (config_path = "/etc/containerd/certs.d" in config.toml)
        podman / buildah:
          CONTAINERS_REGISTRIES_CONF=DIR/containers/registries.conf podman pull\(tls ? " --cert-dir DIR/containers/certs.d/\(address)" : "") NAME
        skopeo:
          skopeo --registries-conf DIR/containers/registries.conf copy\(tls ? " --src-cert-dir DIR/containers/certs.d/\(address)" : "") docker://NAME …

        """
        if tls {
            text += "  (or copy containers/certs.d/\(address) to /etc/containers/certs.d/ for every client on the host)\n"
        }
        if daemonJSON != nil {
            text += "Docker: merge docker/daemon.json into /etc/docker/daemon.json\(tls ? ", copy docker/certs.d/\(address) to /etc/docker/certs.d/" : "") and restart dockerd; docker pull NAME (Docker Hub images only)\n"
        } else if registries.contains(Reference.dockerHub) {
            text += "Docker: a Docker mirror must be served at the root; serve without --prefix to get docker/daemon.json\n"
        } else {
            text += "Docker mirrors Docker Hub only: pull the other registries' images as \(address)/\(prefix.isEmpty ? "" : prefix + "/")PATH:TAG\n"
        }
        return text
    }

    /// Writes the files under `directory` (created if needed); returns the paths written.
    public func write(to directory: String) throws -> [String] {
        var written: [String] = []
        for (relative, contents) in files {
            let path = (directory as NSString).appendingPathComponent(relative)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(contents.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            written.append(path)
        }
        return written
    }
}
