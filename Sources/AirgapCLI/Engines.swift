#if canImport(Glibc)
import Glibc
#endif
import AirgapRegistry
import Foundation
import NIOCore

/// An image engine `load --into` hands a verified bundle to, and asks afterwards what it lists.
protocol ImageEngine: Sendable {
    /// For messages ("the Docker engine", "podman").
    var name: String { get }
    /// Where tags are recorded for the rollback check ("docker", "containerd:k8s.io").
    var destination: String { get }
    /// Takes the bundle's bytes as they are verified; a stream that fails must load nothing.
    func load(_ bytes: ByteBufferPipe) async throws -> [String]
    /// Every name the engine lists, full (`docker.io/library/httpd:2.4`) or familiar.
    func listedNames() async throws -> Set<String>
}

enum Engines {
    static func named(_ target: String) throws -> any ImageEngine {
        switch target {
        case "docker": return DockerEngine(client: try DockerEngineClient())
        case "podman": return try CommandEngine.podman()
        default:
            let namespace = target.hasPrefix("containerd:") ? String(target.dropFirst("containerd:".count)) : "default"
            guard !namespace.isEmpty, namespace.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
                throw CommandError(.usage, "--into \(target): a containerd namespace is letters, digits, '.', '_' and '-' (containerd:k8s.io)")
            }
            return try CommandEngine.containerd(namespace: namespace)
        }
    }
}

/// dockerd through its API socket.
struct DockerEngine: ImageEngine {
    let client: DockerEngineClient
    var name: String { "the Docker engine" }
    var destination: String { "docker" }
    func load(_ bytes: ByteBufferPipe) async throws -> [String] { try await client.load(bytes) }
    func listedNames() async throws -> Set<String> { Set(try await client.repoTags()) }
}

/// An engine fed through its own command (`podman load`, `ctr images import -`): the bytes go to
/// its standard input as they are verified; a failed check kills it before the stream ends.
struct CommandEngine: ImageEngine {
    let name: String
    let destination: String
    let executable: String
    let loadArguments: [String]
    let listArguments: [String]

    static func podman() throws -> CommandEngine {
        let path = try Self.find("podman", hint: "install podman, or load into the store and push to a registry podman pulls from")
        return CommandEngine(name: "podman", destination: "podman", executable: path, loadArguments: ["load"],
                             listArguments: ["images", "--format", "{{.Repository}}:{{.Tag}}"])
    }

    static func containerd(namespace: String) throws -> CommandEngine {
        let path = try Self.find("ctr", hint: "install containerd's ctr (it talks to the socket CONTAINERD_ADDRESS names, default /run/containerd/containerd.sock)")
        // Said before the bundle is read, not as ctr's dial timeout after it.
        let socket = ProcessInfo.processInfo.environment["CONTAINERD_ADDRESS"].flatMap { $0.isEmpty ? nil : $0 } ?? "/run/containerd/containerd.sock"
        guard FileManager.default.fileExists(atPath: socket.hasPrefix("unix://") ? String(socket.dropFirst(7)) : socket) else {
            throw CommandError(.failure, "no containerd socket at \(socket); start containerd, or set CONTAINERD_ADDRESS=/path/to/containerd.sock")
        }
        // A namespace that does not exist yet is created by the import: said, since a typo
        // (k8sio) would otherwise hide the images from whoever reads the right one.
        if let existing = try? Self.runNow(path, ["namespaces", "ls", "-q"]), !existing.contains(namespace) {
            printErr("note: containerd has no namespace '\(namespace)' yet; the load creates it\(namespace == "default" || namespace == "k8s.io" ? "" : " (Kubernetes reads k8s.io)")")
        }
        // Every platform the bundle carries, not unpacked: a bundle holds artifacts (signatures,
        // build contexts) whose layers are no file system, and ctr refuses the whole import when
        // one of its images cannot be unpacked.
        return CommandEngine(name: "containerd (namespace \(namespace))", destination: "containerd:\(namespace)", executable: path,
                             loadArguments: ["-n", namespace, "images", "import", "--all-platforms", "--no-unpack", "-"],
                             listArguments: ["-n", namespace, "images", "ls", "-q"])
    }

    /// The lines a quick command prints (a listing), or nil and its last error line when it fails.
    static func run(_ executable: String, _ arguments: [String]) async throws -> (lines: [String]?, error: String?) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = try OutputFiles()
        process.standardOutput = output.out
        process.standardError = output.err
        process.standardInput = FileHandle.nullDevice
        let exited = ExitWaiter(process)
        try process.run()
        return await exited.status() == 0 ? (output.lines(), nil) : (nil, output.lastError())
    }

    /// `run`, waited for here (the engine is being chosen, before any transfer starts).
    static func runNow(_ executable: String, _ arguments: [String]) throws -> [String]? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    }

    static func find(_ tool: String, hint: String) throws -> String {
        guard let path = executableOnPath(tool) else { throw CommandError(.usage, "\(tool) is not on PATH; \(hint)") }
        return path
    }

    func load(_ bytes: ByteBufferPipe) async throws -> [String] {
        let output = try OutputFiles()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = loadArguments
        // podman copies its standard input to a file in TMPDIR before it loads: in the private
        // directory, removed with it, also when the engine is killed.
        var environment = ProcessInfo.processInfo.environment
        environment["TMPDIR"] = output.directory
        process.environment = environment
        let input = Pipe()
        process.standardInput = input
        process.standardOutput = output.out
        process.standardError = output.err
        let exited = ExitWaiter(process)
        do { try process.run() } catch { throw CommandError(.failure, "cannot run \(executable): \(error.localizedDescription)") }
        // Foundation starts the child as the leader of a process group of its own: the engine and
        // whatever it starts (a wrapper script's podman) are killed together. A grandchild left
        // alive would hold the exit notification open and wait on standard input forever.
        let group = process.processIdentifier
        // A failed check must stop the engine even while a write to it blocks (it stopped reading).
        bytes.onFailure = { kill(-group, SIGKILL) }
        let writer = input.fileHandleForWriting
        var streamError: (any Error)?
        var engineStopped = false
        do {
            for try await chunk in bytes {
                // Straight from the verified buffer to the engine's pipe, no copy on the way.
                try chunk.withUnsafeReadableBytes { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        let n = Glibc.write(writer.fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset)
                        if n < 0 && errno == EINTR { continue }
                        guard n > 0 else { engineStopped = true; throw CommandError(.failure, "\(name) stopped reading the bundle") }
                        offset += n
                    }
                }
            }
            try writer.close()
        } catch {
            streamError = error
        }
        if let streamError {
            // The bundle failed a check (or the engine stopped reading): it must not see the end.
            kill(-group, SIGKILL)
            try? writer.close()
            let status = await exited.status()
            bytes.onFailure = nil // the group is gone; its number may be given again
            bytes.cancel()
            // The engine went first: what it said is the reason, not the broken pipe.
            if engineStopped, status != 0, let message = output.lastError() { throw CommandError(.failure, "\(name) refused the bundle: \(message)") }
            throw streamError
        }
        let status = await exited.status()
        bytes.onFailure = nil
        guard status == 0 else {
            throw CommandError(.failure, "\(name) failed to load the bundle (exit \(status)): \(output.lastError() ?? "no message")")
        }
        return output.lines()
    }

    func listedNames() async throws -> Set<String> {
        let (lines, error) = try await Self.run(executable, listArguments)
        guard let lines else { throw CommandError(.failure, "\(name) did not list its images: \(error ?? "")") }
        return Set(lines)
    }
}

/// The first executable named `name` on PATH.
func executableOnPath(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// A process's exit status, awaited without holding a thread (the handler is set before it runs).
final class ExitWaiter: @unchecked Sendable {
    private let lock = NSLock()
    private var code: Int32?
    private var waiting: CheckedContinuation<Int32, Never>?

    init(_ process: Process) {
        process.terminationHandler = { [self] p in
            lock.lock()
            code = p.terminationStatus
            let w = waiting
            waiting = nil
            lock.unlock()
            w?.resume(returning: p.terminationStatus)
        }
    }

    func status() async -> Int32 {
        await withCheckedContinuation { continuation in
            lock.lock()
            if let code { lock.unlock(); continuation.resume(returning: code); return }
            waiting = continuation
            lock.unlock()
        }
    }
}

/// Standard output and error of a child in files (pipes could fill and block it), removed after.
final class OutputFiles: @unchecked Sendable {
    let directory: String
    let out: FileHandle
    let err: FileHandle

    init() throws {
        directory = NSTemporaryDirectory() + "airgap-engine-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for name in ["out", "err"] { _ = FileManager.default.createFile(atPath: directory + "/" + name, contents: nil) }
        guard let out = FileHandle(forWritingAtPath: directory + "/out"), let err = FileHandle(forWritingAtPath: directory + "/err") else {
            throw CommandError(.failure, "cannot create files in \(NSTemporaryDirectory())")
        }
        self.out = out
        self.err = err
    }

    func lines() -> [String] {
        ((try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? "").split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func lastError() -> String? {
        ((try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? "").split(separator: "\n").last.map(String.init)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}
