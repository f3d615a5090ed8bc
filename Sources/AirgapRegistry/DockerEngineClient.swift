import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// The Docker engine API over its unix socket (`DOCKER_HOST=unix:///path`, default /var/run/docker.sock).
public struct DockerEngineClient: Sendable {
    public let socketPath: String

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let host = environment["DOCKER_HOST"] ?? "unix:///var/run/docker.sock"
        guard host.hasPrefix("unix://") else {
            throw RegistryError(.unsupported, "DOCKER_HOST=\(host) is not a unix socket; only unix:// engines are supported")
        }
        socketPath = String(host.dropFirst("unix://".count))
        guard FileManager.default.fileExists(atPath: socketPath) else {
            throw RegistryError(.network, "no Docker engine socket at \(socketPath); start dockerd or set DOCKER_HOST=unix:///path/to/docker.sock")
        }
    }

    var base: String { "http+unix://" + socketPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }

    /// POST /images/load with a tar streamed from `body`, chunked: only a body that ends is
    /// terminated, so one that fails aborts the request before its end, and the engine's read of
    /// it fails (it loads nothing). Returns the engine's messages.
    public func load<Body: AsyncSequence & Sendable>(_ body: Body) async throws -> [String] where Body.Element == ByteBuffer {
        try await withHTTP { http in
            var request = HTTPClientRequest(url: base + "/images/load?quiet=1")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-tar")
            request.headers.add(name: "Host", value: "docker") // the engine insists on one, even over a socket
            request.body = .stream(body, length: .unknown)
            let response = try await http.execute(request, timeout: .hours(2))
            let data = Data(buffer: try await response.body.collect(upTo: 64 << 20))
            guard response.status == .ok else {
                throw RegistryError(.server, "the Docker engine refused the load (HTTP \(response.status.code)): \(String(decoding: data.prefix(300), as: UTF8.self))")
            }
            // A JSON message stream: {"stream": "Loaded image: …"} or {"errorDetail": …}.
            var messages: [String] = []
            for line in data.split(separator: UInt8(ascii: "\n")) {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
                if let error = object["error"] as? String { throw RegistryError(.server, "the Docker engine failed to load the bundle: \(error)") }
                if let stream = object["stream"] as? String { messages.append(stream.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
            return messages
        }
    }

    /// RepoTags of every image the engine lists.
    public func repoTags() async throws -> [String] {
        try await withHTTP { http in
            var request = HTTPClientRequest(url: base + "/images/json")
            request.headers.add(name: "Host", value: "docker")
            let response = try await http.execute(request, timeout: .seconds(60))
            let data = Data(buffer: try await response.body.collect(upTo: 64 << 20))
            guard response.status == .ok, let list = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
                throw RegistryError(.server, "the Docker engine did not list its images (HTTP \(response.status.code))")
            }
            return list.flatMap { ($0["RepoTags"] as? [String]) ?? [] }
        }
    }

    private func withHTTP<T>(_ body: (HTTPClient) async throws -> T) async throws -> T {
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let result = try await body(http)
            try await http.shutdown()
            return result
        } catch {
            try? await http.shutdown()
            if let error = error as? RegistryError { throw error }
            throw RegistryError(.network, "cannot talk to the Docker engine at \(socketPath): \(error)")
        }
    }
}
