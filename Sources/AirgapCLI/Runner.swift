import AirgapBundle
import AirgapContent
import AirgapImageSet
import AirgapOCI
import AirgapRegistry
import AirgapSignatures
import AirgapStore
import AirgapTar
import AirgapTransfer
import ArgumentParser
import Foundation

public enum AirgapVersion {
    public static let current = "0.1.0"
}

/// Exit codes of the command contract.
public enum ExitStatus: Int32, Sendable {
    case ok = 0, failure = 1, usage = 2, verificationFailed = 3, registryError = 4
}

/// An error a command raises with its own exit status.
public struct CommandError: Error, CustomStringConvertible {
    public let status: ExitStatus
    public let message: String
    public init(_ status: ExitStatus, _ message: String) { self.status = status; self.message = message }
    public var description: String { message }
}

/// Runs a root command: global options before the subcommand, exit codes per the contract,
/// one error sentence on stderr.
public enum CommandRunner {
    public static func main(_ root: any AsyncParsableCommand.Type) async -> Never {
        // A closed pipe on stdout or stderr shows up as EPIPE on the write, handled where we write.
        signal(SIGPIPE, SIG_IGN)
        let arguments = DockerShortcuts.expand(hoistGlobalOptions(Array(CommandLine.arguments.dropFirst())),
                                               bundleCommands: root == ImportRoot.self)
        let code = await run(root, arguments: arguments)
        exit(code)
    }

    /// Whether `--store` was given before the command (hoisted into AIRGAP_STORE).
    nonisolated(unsafe) static var storeNamedOnCommandLine = false

    /// `--store DIR` given before the subcommand applies to it (as `docker --config` does); it is
    /// passed through the environment variable the option reads anyway.
    static func hoistGlobalOptions(_ arguments: [String]) -> [String] {
        var rest: [String] = []
        var i = 0
        var sawCommand = false
        while i < arguments.count {
            let arg = arguments[i]
            if !sawCommand, arg == "--store", i + 1 < arguments.count {
                setenv("AIRGAP_STORE", arguments[i + 1], 1)
                storeNamedOnCommandLine = true
                i += 2
                continue
            }
            if !sawCommand, arg.hasPrefix("--store=") {
                setenv("AIRGAP_STORE", String(arg.dropFirst("--store=".count)), 1)
                storeNamedOnCommandLine = true
                i += 1
                continue
            }
            if !arg.hasPrefix("-") { sawCommand = true }
            rest.append(arg)
            i += 1
        }
        return rest
    }

    public static func run(_ root: any AsyncParsableCommand.Type, arguments: [String]) async -> Int32 {
        do {
            var command = try root.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            ProgressRenderer.stopActive()
            let (status, message) = describe(error, root: root)
            if status == .ok {
                if !message.isEmpty { print(message) }
                return 0
            }
            writeOut(2, message.hasSuffix("\n") ? message : message + "\n")
            return status.rawValue
        }
    }

    static func describe(_ error: any Error, root: any AsyncParsableCommand.Type) -> (ExitStatus, String) {
        switch error {
        case let e as CommandError: return (e.status, "error: " + e.message)
        case let e as ContentError: return (e.isVerificationFailure ? .verificationFailed : .failure, "error: " + e.description)
        case let e as StoreError: return (.failure, "error: " + e.description)
        case let e as TransferError:
            return (e.kind == .verification ? .verificationFailed : .failure, "error: " + e.description)
        case let e as OCIError: return (.usage, "error: " + e.description)
        case let e as TarError: return (.verificationFailed, "error: " + e.description)
        case let e as BundleError:
            return (e.kind == .verification ? .verificationFailed : (e.kind == .format ? .usage : .failure), "error: " + e.description)
        case let e as ImageSet.ParseError: return (.usage, "error: " + e.description)
        case let e as SignatureError: return (.failure, "error: " + e.description)
        case let e as RegistryError: return (e.isVerificationFailure ? .verificationFailed : .registryError, "error: " + e.description)
        default:
            let code = root.exitCode(for: error)
            let message = root.fullMessage(for: error)
            if code == .success { return (.ok, message) }
            if code.rawValue == 64 || error is ValidationError { return (.usage, message) }
            if let status = ExitStatus(rawValue: code.rawValue) { return (status, message) }
            return (.failure, message)
        }
    }
}

/// Docker's top-level commands (`images`, `pull`, `push`, `tag`, `rmi`, `save`, `load`, `history`,
/// `inspect`) as the
/// `image` commands they are. Inside, `load BUNDLE` and `push BUNDLE --to` are the bundle commands
/// of the contract; `load -i FILE` (or `load < FILE`) and `push NAME` without `--to` are Docker's.
enum DockerShortcuts {
    static let plain = ["images": ["image", "ls"], "pull": ["image", "pull"], "tag": ["image", "tag"],
                        "rmi": ["image", "rm"], "save": ["image", "save"], "push": ["image", "push"], "load": ["image", "load"],
                        "history": ["image", "history"], "inspect": ["image", "inspect"]]

    static func expand(_ arguments: [String], bundleCommands: Bool) -> [String] {
        // Go's flag package reads `-H=false`; the argument parser spells it --no-human.
        let arguments = arguments.map { argument -> String in
            switch argument {
            case "-H=false", "--human=false": return "--no-human"
            case "-H=true", "--human=true": return "--human"
            default: return argument
            }
        }
        // The command is the first word that is neither an option nor the value of `--store`.
        let command = arguments.indices.first { i in !arguments[i].hasPrefix("-") && (i == 0 || arguments[i - 1] != "--store") }
        guard let at = command, let target = plain[arguments[at]] else { return arguments }
        let rest = arguments[(at + 1)...]
        if bundleCommands {
            switch arguments[at] {
            case "load":
                let dockerStyle = rest.contains { $0 == "-i" || $0 == "--input" || $0.hasPrefix("--input=") }
                    || rest.allSatisfy { $0 == "-q" || $0 == "--quiet" }
                if !dockerStyle { return arguments }
            case "push":
                // A bundle file given without --to stays the bundle command, which says --to is missing.
                let namesAFile = rest.first { !$0.hasPrefix("-") }.map { FileManager.default.fileExists(atPath: $0) } ?? false
                if namesAFile || rest.contains(where: { $0 == "--to" || $0.hasPrefix("--to=") || $0 == "-h" || $0 == "--help" }) {
                    return arguments
                }
            default: break
            }
        }
        return Array(arguments[..<at]) + target + rest
    }
}

/// Options every command has.
public struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The local store: an OCI image layout directory.", valueName: "DIR"))
    public var store: String?

    public init() {}

    public func openStore() throws -> LocalStore {
        try LocalStore(path: store ?? LocalStore.defaultPath())
    }

    /// The store for a command that only reads it: never created. A store named with --store that
    /// is not there is a mistake worth a sentence (a typo); the default one (or AIRGAP_STORE's) not
    /// made yet reads as empty.
    func openStoreForReading() throws -> LocalStore {
        let root = store ?? LocalStore.defaultPath()
        if FileManager.default.fileExists(atPath: root + "/index.json") { return try LocalStore(path: root) }
        if store != nil || CommandRunner.storeNamedOnCommandLine {
            throw CommandError(.failure, "there is no store at \(root) (no index.json); check the --store path, or load a bundle into it first (nothing was created)")
        }
        return try EmptyStore.shared()
    }
}

/// An empty store in a scratch directory that goes away with the process: what a read-only
/// command sees before anything was ever loaded, without creating the default store.
enum EmptyStore {
    nonisolated(unsafe) static var path: String?

    static func shared() throws -> LocalStore {
        if let path { return try LocalStore(path: path) }
        let created = NSTemporaryDirectory() + "airgap-empty-store-\(getpid())"
        path = created
        atexit { if let path = EmptyStore.path { try? FileManager.default.removeItem(atPath: path) } }
        return try LocalStore(path: created)
    }
}

func printErr(_ text: String) {
    if ProgressRenderer.writeAbove(text + "\n") { return }
    writeOut(2, text + "\n")
}

/// Writes to standard output (1) or error (2) with write(2). A reader that has gone away (EPIPE:
/// `… | head -1`) only loses the rest of the output: the command finishes its work and exits as it
/// would, instead of dying on SIGPIPE or on FileHandle's exception mid-operation.
func writeOut(_ fd: Int32, _ data: Data) {
    if fd == 1 { fflush(nil) } // what print() buffered goes first
    data.withUnsafeBytes { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}

func writeOut(_ fd: Int32, _ text: String) { writeOut(fd, Data(text.utf8)) }

func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }
