import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

/// What a store holds, to prove a refused bundle changed nothing that is visible.
func storeListing(_ f: BundleFixture, _ store: String) throws -> String {
    try f.importer(["image", "ls", "--no-trunc"], store: store).stdout
}

func registryTags(_ f: BundleFixture, _ repository: String) throws -> String {
    try runProcess("skopeo", ["list-tags", "--tls-verify=false", "docker://\(f.registries.plain)/\(repository)"]).stdout
}

/// Rewrites one entry of a tar (same size unless `newData` differs) by rebuilding the archive with GNU tar.
func tamperedCopy(_ f: BundleFixture, _ name: String, label: String, _ change: (inout Data) -> Void) throws -> String {
    let x = f.dir.file("x-\(label)")
    try FileManager.default.createDirectory(atPath: x, withIntermediateDirectories: true)
    #expect(try runProcess("tar", ["xf", f.bundle, "-C", x]).status == 0)
    let order = try f.tarEntries(f.bundle)
    var data = try Data(contentsOf: URL(fileURLWithPath: "\(x)/\(name)"))
    change(&data)
    try data.write(to: URL(fileURLWithPath: "\(x)/\(name)"))
    // Written back in the canonical encoding, so that only the content lies.
    let out = f.dir.file("\(label).tar")
    var tar = HandTar()
    for entry in order { tar.add(entry, content: try Data(contentsOf: URL(fileURLWithPath: "\(x)/\(entry)"))) }
    tar.finish()
    try tar.data.write(to: URL(fileURLWithPath: out))
    return out
}

@Suite(.enabled(if: TestRegistries.available && toolAvailable("skopeo")), .serialized)
struct ImportTests {
    @Test func roundTripVerifyLoadPushKeepsDigests() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let verify = try f.importer(["verify", f.bundle, "--key", f.pub], store: f.dir.file("in"))
        #expect(verify.status == 0 && verify.stdout.contains("Bundle verified: OK"), "\(verify.stderr)")
        let load = try f.importer(["load", f.bundle, "--key", f.pub], store: f.dir.file("in"))
        #expect(load.status == 0, "\(load.stderr)")
        #expect(load.stdout.contains("Loaded image: \(f.source)/app-multi:1.0"))
        // Scripts get a JSON summary: a rerun adds nothing and finds every blob present.
        let again = try f.importer(["load", f.bundle, "--key", f.pub, "--format", "json"], store: f.dir.file("in"))
        let summary = try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as! [String: Any]
        #expect(summary["blobsAdded"] as? Int == 0 && (summary["loaded"] as? [String])?.count == 3)
        // Plain internal registry with a prefix.
        let prefix = TestRegistries.uniqueRepository("mirror")
        let push = try f.importer(["push", f.bundle, "--key", f.pub, "--to", "\(f.registries.plain)/\(prefix)"], store: f.dir.file("in"))
        #expect(push.status == 0, "\(push.stderr)")
        for name in ["app-1", "app-2", "app-multi"] {
            let original = try runProcess("skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://\(f.source)/\(name):1.0"]).stdout
            let mirrored = try runProcess("skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://\(f.registries.plain)/\(prefix)/\(f.repo)/\(name):1.0"]).stdout
            #expect(!original.isEmpty && original == mirrored, "\(name) differs after the round trip")
        }
        // The audit of what was pushed fetches and re-hashes every blob from the registry.
        let registryAudit = try f.importer(["audit", f.bundle, "--key", f.pub, "--registry", "\(f.registries.plain)/\(prefix)", "--format", "json"], store: f.dir.file("in"))
        #expect(registryAudit.status == 0, "\(registryAudit.stderr)")
        #expect(registryAudit.stdout.contains("\"result\" : \"PASS\""))
        let wrongPlace = try f.importer(["audit", f.bundle, "--key", f.pub, "--registry", "\(f.registries.plain)/nothing-here"], store: f.dir.file("in"))
        #expect(wrongPlace.status == 3 && wrongPlace.stdout.contains("not in the registry"), "\(wrongPlace.stdout)")
        // Token-auth internal registry: anonymous push is refused, logged in it works.
        let tokenPrefix = TestRegistries.uniqueRepository("tokmirror")
        let denied = try f.importer(["push", f.bundle, "--key", f.pub, "--to", "\(f.registries.token)/\(tokenPrefix)"], store: f.dir.file("in"))
        #expect(denied.status == 4)
        try f.expectOK(try f.importer(["login", "-u", f.registries.tokenUser, "--password-stdin", f.registries.token], store: f.dir.file("in"), stdin: f.registries.tokenPassword))
        let pushed = try f.importer(["push", f.bundle, "--key", f.pub, "--to", "\(f.registries.token)/\(tokenPrefix)"], store: f.dir.file("in"))
        #expect(pushed.status == 0, "\(pushed.stderr)")
        #expect(!pushed.stdout.contains(f.registries.tokenPassword) && !pushed.stderr.contains(f.registries.tokenPassword))
        // Audit of the store it was loaded into re-hashes every blob there.
        let audit = try f.importer(["audit", f.bundle, "--key", f.pub, "--in-store", "--format", "json"], store: f.dir.file("in"))
        #expect(audit.status == 0, "\(audit.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(audit.stdout.utf8)) as! [String: Any]
        #expect(report["result"] as? String == "PASS")
        #expect((report["blobs"] as! [[String: Any]]).allSatisfy { $0["result"] as? String == "ok" })
    }

    @Test func splitBundleLoadsAndNamesAMissingOrDamagedVolume() throws {
        let f = try BundleFixture()
        let split = f.dir.file("split.tar")
        try f.expectOK(try f.makeBundle(["--split-size", "100K"], output: split))
        let store = f.dir.file("in")
        try f.expectOK(try f.importer(["load", split + ".001", "--key", f.pub], store: store))
        #expect(try storeListing(f, store).contains("app-1"))
        // Damage volume 2.
        var volume = try Data(contentsOf: URL(fileURLWithPath: split + ".002"))
        volume[5000] ^= 0xff
        try volume.write(to: URL(fileURLWithPath: split + ".002"))
        let damaged = try f.importer(["verify", split + ".001", "--key", f.pub], store: store)
        #expect(damaged.status == 3)
        #expect(damaged.stderr.contains("split.tar.002"), "\(damaged.stderr)")
        // Remove volume 3.
        try FileManager.default.removeItem(atPath: split + ".003")
        let missing = try f.importer(["verify", split, "--key", f.pub], store: store)
        #expect(missing.status == 3)
        #expect(missing.stderr.contains("split.tar.003") && missing.stderr.contains("missing"), "\(missing.stderr)")
        // Exactly the volumes at fault: .003 missing, .002 still damaged; .001 and .004 (after the gap) are fine.
        #expect(FileManager.default.fileExists(atPath: split + ".004"))
        let named = { (text: String) in Set(["001", "002", "003", "004"].filter { text.contains("split.tar.\($0)") }) }
        #expect(named(missing.stderr) == ["002", "003"], "\(missing.stderr)")
        #expect(missing.stderr.contains("split.tar.002 (in split.tar.002): this volume is damaged"), "\(missing.stderr)")
        // Given as .001 (the rest found from it): the same findings.
        let fromFirst = try f.importer(["verify", split + ".001", "--key", f.pub], store: store)
        #expect(fromFirst.status == 3)
        #expect(named(fromFirst.stderr) == ["002", "003"], "\(fromFirst.stderr)")
        // Exported again into fewer volumes: the stale ones go, and the new bundle verifies.
        try f.expectOK(try f.makeBundle(["--split-size", "1M"], output: split))
        let left = try FileManager.default.contentsOfDirectory(atPath: f.dir.path).filter { $0.hasPrefix("split.tar.0") }
        #expect(left == ["split.tar.001"], "\(left)")
        try f.expectOK(try f.importer(["verify", split, "--key", f.pub], store: store))
    }

    @Test func everyFaultIsRefusedWithAFindingAndChangesNothing() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let store = f.dir.file("in")
        let before = try storeListing(f, store)
        let entries = try f.tarEntries(f.bundle)
        let index = try JSONSerialization.jsonObject(with: Data(runProcess("tar", ["xOf", f.bundle, "index.json"]).stdout.utf8)) as! [String: Any]
        let manifestDigest = ((index["manifests"] as! [[String: Any]])[0]["digest"] as! String).dropFirst(7)
        let largestLayer = try entries.filter { $0.hasPrefix("blobs/") }.max { a, b in
            (try runProcess("tar", ["xOf", f.bundle, a]).stdout.utf8.count) < (try runProcess("tar", ["xOf", f.bundle, b]).stdout.utf8.count)
        }!

        var cases: [(label: String, file: String, mention: String)] = []
        cases.append(("layer", try tamperedCopy(f, largestLayer, label: "layer") { $0[100] ^= 1 }, largestLayer))
        cases.append(("index", try tamperedCopy(f, "index.json", label: "index") { $0[$0.count - 2] = UInt8(ascii: " ") }, "index.json"))
        cases.append(("manifest", try tamperedCopy(f, "blobs/sha256/\(manifestDigest)", label: "manifest") { $0[10] ^= 1 }, "blobs/sha256/\(manifestDigest)"))
        cases.append(("sums", try tamperedCopy(f, "airgap/SHA256SUMS", label: "sums") { $0[3] = $0[3] == UInt8(ascii: "a") ? UInt8(ascii: "b") : UInt8(ascii: "a") }, "SHA256SUMS.sig"))
        cases.append(("signature", try tamperedCopy(f, "airgap/SHA256SUMS.sig", label: "sig") { $0[0] ^= 1 }, "SHA256SUMS.sig"))
        let bundleData = try Data(contentsOf: URL(fileURLWithPath: f.bundle))
        let truncated = f.dir.file("truncated.tar")
        try bundleData.prefix(bundleData.count * 2 / 3).write(to: URL(fileURLWithPath: truncated))
        cases.append(("truncated", truncated, "truncated"))
        // Extra entry appended after the blobs.
        let extra = f.dir.file("extra.tar")
        try FileManager.default.copyItem(atPath: f.bundle, toPath: extra)
        try Data("surprise".utf8).write(to: URL(fileURLWithPath: f.dir.file("surprise.txt")))
        #expect(try runProcess("tar", ["--format=pax", "-rf", extra, "-C", f.dir.path, "surprise.txt"]).status == 0)
        cases.append(("extra", extra, "surprise.txt"))

        let prefix = TestRegistries.uniqueRepository("never")
        for c in cases {
            for command in [["verify"], ["load"], ["push", "--to", "\(f.registries.plain)/\(prefix)"]] {
                let result = try f.importer(command + [c.file, "--key", f.pub], store: store)
                #expect(result.status == 3, "\(c.label) \(command[0]): exit \(result.status) \(result.stderr)")
                #expect(result.stderr.contains(c.mention), "\(c.label) \(command[0]) should name \(c.mention): \(result.stderr)")
            }
        }
        // Wrong key, and unsigned.
        try f.expectOK(try f.exporter(["keygen", "--output-prefix", f.dir.file("other")]))
        let wrongKey = try f.importer(["load", f.bundle, "--key", f.dir.file("other.pub")], store: store)
        #expect(wrongKey.status == 3 && wrongKey.stderr.contains("another key"))
        let unsigned = f.dir.file("unsigned.tar")
        try f.expectOK(try f.exporter(["bundle", "-f", f.manifest, "-o", unsigned, "--unsigned"]))
        let refused = try f.importer(["load", unsigned, "--key", f.pub], store: store)
        #expect(refused.status == 3 && refused.stderr.contains("unsigned"))
        #expect(try storeListing(f, store) == before, "a refused bundle changed the store")
        #expect(try registryTags(f, "\(prefix)/\(f.repo)/app-1").isEmpty, "a refused bundle reached the registry")
        // Allowed explicitly, the unsigned bundle loads.
        try f.expectOK(try f.importer(["load", unsigned, "--allow-unsigned"], store: store))
    }

    @Test func auditFormatsAndFailuresInRed() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        for format in ["text", "json", "csv", "html"] {
            let out = f.dir.file("audit.\(format)")
            let audit = try f.importer(["audit", f.bundle, "--key", f.pub, "--format", format, "-o", out], store: f.dir.file("in"))
            #expect(audit.status == 0, "\(format): \(audit.stderr)")
            #expect(audit.stdout.contains("Audit PASS: 3 images") && audit.stdout.contains("the report is in \(out)"), "the verdict on the terminal: \(audit.stdout)")
            let text = try String(contentsOfFile: out, encoding: .utf8)
            if format != "csv" {
                #expect(text.contains(Digest.sha256(of: try Data(contentsOf: URL(fileURLWithPath: f.bundle))).encoded), "\(format) names the bundle's sha256")
            }
        }
        let csv = try String(contentsOfFile: f.dir.file("audit.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 1 + (try f.tarEntries(f.bundle).filter { $0.hasPrefix("blobs/") }.count))
        let bad = try tamperedCopy(f, "index.json", label: "audit-bad") { $0[$0.count - 2] = UInt8(ascii: " ") }
        let failed = try f.importer(["audit", bad, "--key", f.pub, "--format", "html", "-o", f.dir.file("bad.html")], store: f.dir.file("in"))
        #expect(failed.status == 3)
        let html = try String(contentsOfFile: f.dir.file("bad.html"), encoding: .utf8)
        #expect(html.contains("FAIL") && html.contains("class=\"bad\"") && html.contains("index.json"))
        // An image archive given as a bundle, and the private key given to check one: each said as such.
        let archive = f.dir.file("archive.tar")
        try f.expectOK(try f.exporter(["image", "pull", "\(f.source)/app-1:1.0"], store: f.dir.file("pulled")))
        try f.expectOK(try f.exporter(["image", "save", "-o", archive, "\(f.source)/app-1:1.0"], store: f.dir.file("pulled")))
        let notBundle = try f.importer(["verify", archive, "--key", f.pub], store: f.dir.file("in"))
        #expect(notBundle.status == 3 && notBundle.stderr.contains("archive.tar is an image archive") && notBundle.stderr.contains("carries no airgap signature"), "\(notBundle.stderr)")
        #expect(!notBundle.stderr.contains("image load"), "no advice to load what nothing verifies: \(notBundle.stderr)")
        // A bundle whose first header was altered is still an altered bundle, not an "image archive".
        var altered = try Data(contentsOf: URL(fileURLWithPath: f.bundle))
        altered[136] ^= 0x01 // the mtime field of airgap/bundle.json's header
        try altered.write(to: URL(fileURLWithPath: f.dir.file("altered.tar")))
        let alteredRead = try f.importer(["verify", f.dir.file("altered.tar"), "--key", f.pub], store: f.dir.file("in"))
        #expect(alteredRead.status == 3 && !alteredRead.stderr.contains("image archive") && alteredRead.stderr.contains("airgap/bundle.json"), "\(alteredRead.stderr)")
        let privateKey = try f.importer(["verify", f.bundle, "--key", f.key], store: f.dir.file("in"))
        #expect(privateKey.status != 0 && privateKey.stderr.contains("is the private signing key; give the public key"), "\(privateKey.stderr)")
    }
}

