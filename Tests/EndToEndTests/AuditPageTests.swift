import AirgapTestSupport
import Foundation
import Testing

/// The audit page as an auditor opens it: laid out by a real browser (headless Chromium) at
/// 1280 px, where nothing may stick out, with a damaged base layer naming every image it breaks.
@Suite(.enabled(if: TestRegistries.available && toolAvailable("chromium")), .serialized)
struct AuditPageTests {
    /// Chromium's layout of `page`: the right edge of the widest element, from a copy of the page
    /// with a measuring script added (the report itself carries none).
    func layoutWidth(_ page: String, in dir: TempDirectory) throws -> Int {
        var html = try String(contentsOfFile: page, encoding: .utf8)
        html = html.replacingOccurrences(of: "</body>", with: """
        <script>document.body.setAttribute('data-right', String(Math.ceil(Math.max(document.documentElement.scrollWidth,
          ...Array.from(document.querySelectorAll('*')).map(e => e.getBoundingClientRect().right)))))</script></body>
        """)
        let measured = dir.file("measured.html")
        try html.write(toFile: measured, atomically: true, encoding: .utf8)
        let dom = try runProcess("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,900", "--dump-dom", "file://\(measured)"])
        guard let at = dom.stdout.range(of: "data-right=\""), let width = Int(dom.stdout[at.upperBound...].prefix { $0.isNumber }) else {
            throw TestFailure("chromium gave no layout: \(dom.stderr.suffix(500))")
        }
        return width
    }

    func screenshot(_ page: String, to png: String) throws -> (width: Int, height: Int) {
        let shot = try runProcess("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1600", "--screenshot=\(png)", "file://\(page)"])
        let data = try Data(contentsOf: URL(fileURLWithPath: png))
        guard data.count > 24, data.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { throw TestFailure("no PNG: \(shot.stderr.suffix(500))") }
        let be = { (o: Int) in data[o..<o + 4].reduce(0) { $0 << 8 | Int($1) } }
        return (be(16), be(20))
    }

    @Test func theAuditPageFits1280PixelsAndNamesWhatADamagedLayerBreaks() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let json = try f.importer(["audit", f.bundle, "--key", f.pub, "--format", "json"], store: f.dir.file("in"))
        try f.expectOK(json)
        let report = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        let images = report["images"] as! [[String: Any]]
        let blobs = report["blobs"] as! [[String: Any]]
        // The source manifest, by name and hash.
        let manifestHash = try runProcess("sha256sum", [f.manifest]).stdout.prefix(64)
        let source = report["sourceManifest"] as? [String: String]
        #expect(source?["name"] == "images.yaml" && source?["sha256"] == String(manifestHash), "\(String(describing: source))")
        // The blob every image is built on: the map says so.
        let shared = blobs.max { ($0["images"] as? [String] ?? []).count < ($1["images"] as? [String] ?? []).count }!
        let users = shared["images"] as! [String]
        #expect(users.count >= 3, "\(users)")

        let page = f.dir.file("audit.html")
        try f.expectOK(try f.importer(["audit", f.bundle, "--key", f.pub, "--format", "html", "-o", page], store: f.dir.file("in")))
        let html = try String(contentsOfFile: page, encoding: .utf8)
        let signer = (report["signature"] as! [String: Any])["signerFingerprint"] as! String
        #expect(html.components(separatedBy: signer).count == 2, "the signer is named once")
        let index = images.first { ($0["mediaType"] as! String).contains("index") }!
        #expect(html.contains(index["digest"] as! String), "the multi-arch index digest is shown")
        #expect(html.contains("images.yaml") && html.contains(String(manifestHash)))
        #expect(html.contains("kB") && html.contains("title=\"\(shared["size"] as! Int) bytes\""), "human sizes, exact bytes in the tooltip")
        #expect(html.contains("\(blobs.count) blobs: \(blobs.count) ok"), "the blob total")
        #expect(html.contains("@media print") && !html.contains("<script"))
        #expect(try layoutWidth(page, in: f.dir) <= 1280)
        let size = try screenshot(page, to: f.dir.file("audit.png"))
        #expect(size.width == 1280 && size.height == 1600, "\(size)")

        // Damage the shared layer in a copy: the report fails and names every image it breaks.
        let damaged = f.dir.file("damaged.tar")
        try FileManager.default.copyItem(atPath: f.bundle, toPath: damaged)
        let hex = (shared["digest"] as! String).dropFirst("sha256:".count)
        let offset = try runProcess("/usr/bin/python3", ["-c", "import sys, tarfile; print(tarfile.open(sys.argv[1]).getmember(sys.argv[2]).offset_data)", damaged, "blobs/sha256/\(hex)"])
        let at = UInt64(offset.stdout.trimmingCharacters(in: .whitespacesAndNewlines))! + 100
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: damaged))
        try handle.seek(toOffset: at)
        var byte = try handle.read(upToCount: 1)!
        byte[0] ^= 0xff
        try handle.seek(toOffset: at)
        try handle.write(contentsOf: byte)
        try handle.close()
        let badPage = f.dir.file("bad.html")
        let failed = try f.importer(["audit", damaged, "--key", f.pub, "--format", "html", "-o", badPage], store: f.dir.file("in"))
        #expect(failed.status == 3, "\(failed.stderr)")
        let bad = try String(contentsOfFile: badPage, encoding: .utf8)
        let findings = bad.components(separatedBy: "<h2>Findings</h2>").last!.components(separatedBy: "</table>").first!
        #expect(findings.contains(String(hex)))
        for user in users { #expect(findings.contains(user), "the finding names \(user)") }
        #expect(bad.contains("Broken images") && bad.contains("\(users.count) of \(images.count)"), "the summary counts the broken images")
        #expect(failed.stderr.contains("(\(users.count) of \(images.count) images broken)"), "\(failed.stderr)")
        let text = try f.importer(["audit", damaged, "--key", f.pub], store: f.dir.file("in"))
        #expect(text.stdout.contains("Broken images (\(users.count) of \(images.count)): "), "\(text.stdout)")
        #expect(text.stdout.contains("(breaks ") && text.stdout.contains("total: \(blobs.count) blobs"), "\(text.stdout)")
        #expect(try layoutWidth(badPage, in: f.dir) <= 1280)
        _ = try screenshot(badPage, to: f.dir.file("bad.png"))
        // It prints: Chromium makes a PDF of it.
        let pdf = f.dir.file("audit.pdf")
        _ = try runProcess("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer", "--print-to-pdf=\(pdf)", "file://\(page)"])
        #expect((try? Data(contentsOf: URL(fileURLWithPath: pdf)).prefix(5)) == Data("%PDF-".utf8))
    }
}
