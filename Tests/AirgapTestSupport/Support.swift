import AirgapTar
import Foundation

/// A directory removed when the value goes away.
public final class TempDirectory: @unchecked Sendable {
    public let path: String
    public init(_ label: String = "test") {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("airgap-\(label)-\(UUID().uuidString.prefix(8))").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    public func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program to completion, capturing its output (files, not pipes, so large output cannot block).
@discardableResult
public func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                       stdin: String? = nil, stdinData: Data? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : try which(executable))
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let dir = TempDirectory("proc")
    _ = FileManager.default.createFile(atPath: dir.file("out"), contents: nil)
    _ = FileManager.default.createFile(atPath: dir.file("err"), contents: nil)
    let out = FileHandle(forWritingAtPath: dir.file("out"))!
    let err = FileHandle(forWritingAtPath: dir.file("err"))!
    process.standardOutput = out
    process.standardError = err
    if let input = stdinData ?? stdin.map({ Data($0.utf8) }) {
        _ = FileManager.default.createFile(atPath: dir.file("in"), contents: input)
        process.standardInput = FileHandle(forReadingAtPath: dir.file("in"))
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    try process.run()
    process.waitUntilExit()
    try out.close(); try err.close()
    return ProcessResult(status: process.terminationStatus,
                         stdout: (try? String(contentsOfFile: dir.file("out"), encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: dir.file("err"), encoding: .utf8)) ?? "")
}

public func which(_ name: String) throws -> String {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    struct NotFound: Error, CustomStringConvertible { var description: String }
    throw NotFound(description: "\(name) is not installed; run scripts/install-deps.sh")
}

public func toolAvailable(_ name: String) -> Bool { (try? which(name)) != nil }

/// The package root, found from this file's location.
public let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// Path of a built executable (the test command builds them before running tests).
public func builtBinary(_ name: String) -> String {
    for config in ["debug", "release"] {
        let path = "\(packageRoot)/.build/\(config)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return "\(packageRoot)/.build/debug/\(name)"
}

/// One entry of a hand-made tar, for crafting good and hostile archives.
public enum CraftedEntry: Sendable {
    case file(String, Data)
    case directory(String)
    case symlink(String, target: String)
    case hardlink(String, target: String)
    case device(String)
}

/// Builds a tar with arbitrary (even hostile) entries through libarchive.
public func craftTar(_ entries: [CraftedEntry]) throws -> Data {
    var data = Data()
    let writer = try RawTarWriter { data.append(contentsOf: $0) }
    for entry in entries {
        switch entry {
        case .file(let name, let bytes): try writer.add(name: name, type: .file, data: bytes)
        case .directory(let name): try writer.add(name: name, type: .directory)
        case .symlink(let name, let target): try writer.add(name: name, type: .symlink, link: target)
        case .hardlink(let name, let target): try writer.add(name: name, type: .hardlink, link: target)
        case .device(let name): try writer.add(name: name, type: .characterDevice)
        }
    }
    try writer.close()
    return data
}
