import AirgapOCI
import Foundation

/// Client configuration that sends pulls by the images' original names to a served bundle:
/// containerd `hosts.toml` (certs.d layout), containers `registries.conf`, Docker `daemon.json`.
public struct MirrorConfig: Sendable {
    /// `HOST:PORT` clients reach the server at.
    public var address: String
    public var scheme: String
    public var prefix: String
    /// The original registries (`docker.io`, `quay.io`, `myreg:5000`).
    public var registries: [String]
    /// The server's certificate, for clients to trust (a self-signed one is its own CA).
    public var certificate: String?

    public init(address: String, scheme: String, prefix: String, registries: [String], certificate: String?) {
        self.address = address
        self.scheme = scheme
        self.prefix = prefix
        self.registries = registries
        self.certificate = certificate
    }

    /// Relative path → contents.
    public var files: [(String, String)] {
        var files: [(String, String)] = []
        for registry in registries {
            files.append(("containerd/certs.d/\(registry)/hosts.toml", hostsToml(registry)))
        }
        files.append(("containers/registries.conf", registriesConf))
        if let daemon = daemonJSON { files.append(("docker/daemon.json", daemon)) }
        files.append(("README.txt", readme))
        return files
    }

    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    func hostsToml(_ registry: String) -> String {
        let upstream = registry == Reference.dockerHub ? "https://registry-1.docker.io" : "https://\(registry)"
        // containerd appends /v2/NAME/...; with a prefix the host URL carries /v2/PREFIX and override_path.
        let host = prefix.isEmpty ? "\(scheme)://\(address)" : "\(scheme)://\(address)/v2/\(prefix)"
        var text = """
        # Written by airgap-import serve: pulls of \(registry)/… are answered by the served bundle at \(address).
        server = \(Self.quoted(upstream))

        [host.\(Self.quoted(host))]
          capabilities = ["pull", "resolve"]

        """
        if !prefix.isEmpty { text += "  override_path = true\n" }
        if let certificate { text += "  ca = \(Self.quoted(certificate))\n" }
        return text
    }

    var registriesConf: String {
        let location = prefix.isEmpty ? address : "\(address)/\(prefix)"
        var text = """
        # Written by airgap-import serve: podman, buildah and skopeo pull these registries' images from \(location).
        # Use it with CONTAINERS_REGISTRIES_CONF=THIS_FILE, or merge it into /etc/containers/registries.conf.

        """
        for registry in registries {
            text += """

            [[registry]]
            prefix = \(Self.quoted(registry))
            location = \(Self.quoted(registry))

            [[registry.mirror]]
            location = \(Self.quoted(location))

            """
            if scheme == "http" || certificate != nil { text += "insecure = true\n" }
        }
        return text
    }

    /// Docker mirrors Docker Hub only, and only from a mirror's root.
    var daemonJSON: String? {
        guard registries.contains(Reference.dockerHub), prefix.isEmpty else { return nil }
        let insecure = scheme == "http" ? ",\n  \"insecure-registries\": [\(Self.quoted(address))]" : ""
        return "{\n  \"registry-mirrors\": [\(Self.quoted("\(scheme)://\(address)"))]\(insecure)\n}\n"
    }

    var readme: String {
        var text = """
        Client configuration for the registry airgap-import serve runs at \(scheme)://\(address)\(prefix.isEmpty ? "" : "/" + prefix).
        Images are pulled by their original names (\(registries.joined(separator: ", "))).

        containerd / ctr / nerdctl / Kubernetes nodes:
          ctr images pull --hosts-dir DIR/containerd/certs.d NAME
          or copy containerd/certs.d/* to /etc/containerd/certs.d/ (config_path = "/etc/containerd/certs.d" in config.toml)
        podman / buildah / skopeo:
          CONTAINERS_REGISTRIES_CONF=DIR/containers/registries.conf podman pull NAME

        """
        if daemonJSON != nil {
            text += "Docker: merge docker/daemon.json into /etc/docker/daemon.json and restart dockerd; docker pull NAME (Docker Hub images only)\n"
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
