import AirgapTestSupport
import Foundation
import Testing

/// Progress as an operator sees it: bars in a real terminal (tmux), lines in a log, nothing with
/// --progress none; a pull from a registry slowed to a few MB/s by the fault proxy.
@Suite(.enabled(if: TestRegistries.available && toolAvailable("tmux") && toolAvailable("curl")), .serialized)
struct ProgressTests {
    let registries = TestRegistries.current!

    /// One 16 MiB layer (random, so it stays 16 MiB compressed) behind a proxy that sends 4 MB/s.
    func slowImage(_ cli: CLI) throws -> (reference: String, proxy: FaultProxy) {
        let archive = cli.dir.file("samples.tar")
        #expect(try cli.export("sample-images", "-o", archive, "--count", "1", "--base-bytes", "\(16 << 20)").status == 0)
        #expect(try cli.export("image", "load", "-i", archive).status == 0)
        let repo = TestRegistries.uniqueRepository("progress")
        let pushed = try cli.export("image", "push", "--progress", "none", "sample/app-1:1.0", "\(registries.plain)/\(repo)/app:1")
        #expect(pushed.status == 0, "\(pushed.stderr)")
        let proxy = try FaultProxy(upstream: registries.plain)
        try proxy.setRules([["method": "GET", "path_contains": "/blobs/sha256:", "rate": 4_000_000, "times": 100]])
        return ("\(proxy.address)/\(repo)/app:1", proxy)
    }

    @Test func aTerminalShowsMovingBarsAndAnETAThatChanges() throws {
        let cli = CLI()
        let (reference, proxy) = try slowImage(cli)
        defer { withExtendedLifetime(proxy) {} }
        let socket = "airgap-progress-\(getpid())"
        let tmux = { (args: [String]) throws -> ProcessResult in try runProcess("tmux", ["-L", socket] + args) }
        defer { _ = try? tmux(["kill-server"]) }
        let done = cli.dir.file("done")
        let command = "AIRGAP_STORE=\(cli.dir.file("pulled")) \(builtBinary("airgap-export")) image pull \(reference); echo exit=$? > \(done); sleep 60"
        // Started through Python, which closes every other descriptor: the tmux server would
        // otherwise inherit the one Foundation's Process watches, and runProcess would wait for it.
        let start = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode)"
        #expect(try runProcess("/usr/bin/python3", ["-c", start, "tmux", "-L", socket, "new-session", "-d", "-s", "pull", "-x", "120", "-y", "30", command]).status == 0)
        var screens: [String] = []
        let deadline = Date().addingTimeInterval(40)
        while !FileManager.default.fileExists(atPath: done) && Date() < deadline {
            usleep(400_000)
            screens.append(try tmux(["capture-pane", "-p", "-t", "pull"]).stdout)
        }
        let final = try tmux(["capture-pane", "-p", "-t", "pull"]).stdout
        #expect((try? String(contentsOfFile: done, encoding: .utf8))?.contains("exit=0") == true, "\(final)")
        // While the layer came in: its own bar, and an overall line with a rate and an ETA.
        let during = screens.filter { $0.contains("ETA") }
        #expect(during.count >= 3, "screens with an ETA: \(during.count) of \(screens.count); last: \(screens.last ?? "")")
        #expect(during.contains { screen in screen.split(separator: "\n").contains { $0.contains(": [") && $0.contains("MB/") } }, "no per-blob bar: \(during.first ?? "")")
        let etas = Set(during.compactMap { screen -> String? in
            guard let line = screen.split(separator: "\n").last(where: { $0.contains("ETA ") }), let at = line.range(of: "ETA ") else { return nil }
            return String(line[at.upperBound...].prefix { !$0.isWhitespace })
        })
        #expect(etas.count >= 2, "the ETA did not move: \(etas)")
        // Once done, the bars are gone and the finished layer is a line of its own.
        #expect(final.contains("Pull complete (16.8MB)"), "\(final)")
        #expect(!final.contains("ETA"), "\(final)")
        #expect(final.contains("Digest: sha256:"))
    }

    @Test func withoutATerminalALinePerBlobAndPeriodicTotals() throws {
        let cli = CLI()
        let (reference, proxy) = try slowImage(cli)
        defer { withExtendedLifetime(proxy) {} }
        let pull = try runProcess(builtBinary("airgap-export"), ["image", "pull", reference],
                                  environment: ["AIRGAP_STORE": cli.dir.file("plain"), "AIRGAP_PROGRESS_INTERVAL": "0.5"])
        #expect(pull.status == 0, "\(pull.stderr)")
        let totals = pull.stderr.split(separator: "\n").filter { $0.hasPrefix("Pull progress:") }
        #expect(totals.count >= 3, "\(pull.stderr)")
        let percents = totals.compactMap { line in line.range(of: "(").flatMap { Int(line[$0.upperBound...].prefix { $0.isNumber }) } }
        #expect(percents == percents.sorted() && percents.first! < percents.last!, "\(totals)")
        #expect(totals.allSatisfy { $0.contains("/s") }, "\(totals)")
        #expect(pull.stderr.contains("Pull complete (16.8MB)"))
        #expect(!pull.stderr.contains("\u{1B}["), "escape codes in a log: \(pull.stderr)")
        // --progress none: the lines go, the result stays.
        let quiet = try runProcess(builtBinary("airgap-export"), ["image", "pull", "--progress", "none", reference],
                                   environment: ["AIRGAP_STORE": cli.dir.file("none")])
        #expect(quiet.status == 0 && quiet.stderr.isEmpty, "\(quiet.stderr)")
        #expect(quiet.stdout.contains("Digest: sha256:"))
    }

    @Test func aBundlePassIsReportedForVerifyLoadAndAudit() throws {
        let cli = CLI()
        _ = try cli.withSamples(count: 2)
        #expect(try cli.export("keygen", "--output-prefix", cli.dir.file("k")).status == 0)
        let bundle = cli.dir.file("b.tar")
        // A real bundle: from a registry, signed.
        let repo = TestRegistries.uniqueRepository("pass")
        #expect(try cli.export("image", "push", "-q", "sample/app-1:1.0", "\(registries.plain)/\(repo)/app:1").status == 0)
        try Data("\(registries.plain)/\(repo)/app:1\n".utf8).write(to: URL(fileURLWithPath: cli.dir.file("list.txt")))
        let made = try cli.export("bundle", "-f", cli.dir.file("list.txt"), "-o", bundle, "--key", cli.dir.file("k.key"))
        #expect(made.status == 0, "\(made.stderr)")
        for args in [["verify"], ["load", "--store", cli.dir.file("in")], ["audit", "-o", cli.dir.file("audit.txt")]] {
            let importer = { (extra: [String]) throws -> ProcessResult in
                try runProcess(builtBinary("airgap-import"), args + [bundle, "--key", cli.dir.file("k.pub")] + extra, environment: ["AIRGAP_STORE": cli.store])
            }
            let run = try importer([])
            #expect(run.status == 0, "\(args): \(run.stderr)")
            #expect(run.stderr.contains("b.tar (") && run.stderr.contains("read in"), "\(args): \(run.stderr)")
            let none = try importer(["--progress", "none"])
            #expect(none.status == 0 && !none.stderr.contains("read in"), "\(args): \(none.stderr)")
        }
    }
}
