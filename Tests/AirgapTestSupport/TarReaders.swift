import AirgapOCI
import Foundation

/// What other tar readers see in an archive: for each reader, its entries as "TYPE SHA256 NAME"
/// (TYPE `0` for a regular file, whatever typeflag the reader reports otherwise), in order, or
/// "ERROR …" where the reader gave up. The readers are the ones bundles meet on the inside:
/// Go's archive/tar (docker, podman, skopeo, ctr), Python's tarfile, GNU tar and libarchive (bsdtar).
public enum TarReaders {
    public static let names = ["go", "python", "gnu-tar", "bsdtar"]

    public static var available: Bool { toolAvailable("go") && toolAvailable("bsdtar") && toolAvailable("tar") }

    /// The Go lister, built once per test process (the standard library only: no network).
    static let goLister: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("airgap-go-tarlist-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let binary = dir + "/tarlist"
        _ = try? runProcess("go", ["build", "-o", binary, "\(packageRoot)/scripts/tar-readers/list.go"],
                            environment: ["GOCACHE": dir + "/cache", "GOPATH": dir + "/gopath", "GOFLAGS": "-mod=mod", "GO111MODULE": "off"])
        return binary
    }()

    public static func views(of archive: String) throws -> [String: [String]] {
        var views: [String: [String]] = [:]
        views["go"] = lines(try runProcess(goLister, [archive]))
        views["python"] = lines(try runProcess("/usr/bin/python3", ["\(packageRoot)/scripts/tar-readers/list.py", archive]))
        views["gnu-tar"] = try listByExtracting(tool: "tar", archive)
        views["bsdtar"] = try listByExtracting(tool: "bsdtar", archive)
        return views
    }

    /// "0 SHA256 NAME" for each line "TYPE SHA256 SIZE NAME" of a lister (regular files as type 0).
    static func lines(_ result: ProcessResult) -> [String] {
        var out: [String] = []
        for line in result.stdout.split(separator: "\n") {
            if line.hasPrefix("ERROR") { out.append(String(line)); continue }
            let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count == 4 else { out.append("ERROR unparsable: \(line)"); continue }
            let type = parts[0] == "\u{0}" || parts[0].isEmpty ? "0" : String(parts[0])
            out.append("\(type) \(parts[1]) \(parts[3])")
        }
        if result.status != 0 && !out.contains(where: { $0.hasPrefix("ERROR") }) { out.append("ERROR exit \(result.status): \(result.stderr)") }
        return out
    }

    /// GNU tar and bsdtar: names from `-tvf` (type from the mode column), data from `-xOf NAME`.
    static func listByExtracting(tool: String, _ archive: String) throws -> [String] {
        let listing = try runProcess(tool, ["-tvf", archive])
        var out: [String] = []
        let names = try runProcess(tool, ["-tf", archive]).stdout.split(separator: "\n").map(String.init)
        let modes = listing.stdout.split(separator: "\n").map { String($0.prefix(1)) }
        for (i, name) in names.enumerated() {
            let mode = i < modes.count ? modes[i] : "?"
            if mode == "-" {
                let data = try runProcessData(tool, ["-xOf", archive, name])
                out.append("0 \(Digest.sha256(of: data).encoded) \(name)")
            } else {
                out.append("\(mode) - \(name)")
            }
        }
        if listing.status != 0 { out.append("ERROR exit \(listing.status): \(listing.stderr.prefix(200))") }
        return out
    }

    static func runProcessData(_ tool: String, _ arguments: [String]) throws -> Data {
        let dir = TempDirectory("extract")
        let result = try runProcess("/bin/sh", ["-c", "\"$0\" \"$@\" > '\(dir.file("out"))'", tool] + arguments)
        _ = result
        return (try? Data(contentsOf: URL(fileURLWithPath: dir.file("out")))) ?? Data()
    }
}

