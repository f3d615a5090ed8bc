import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

/// The attacks of issue 10 with the media in hand and no signing key: bytes that one tar reader
/// skips and another reads as entries. Each is first shown to work against some reader (the attack
/// is real), then refused by verify and load, with the store unchanged.
@Suite(.enabled(if: TestRegistries.available && toolAvailable("openssl") && TarReaders.available), .serialized)
struct CanonicalBundleTests {
    /// A small tar an attacker would hide: its own manifest.json and index.json.
    static func attackerArchive() -> Data {
        var inner = HandTar()
        inner.add("manifest.json", content: Data(#"[{"Config":"evil","RepoTags":["evil:latest"],"Layers":[]}]"#.utf8))
        inner.add("index.json", content: Data(#"{"schemaVersion":2,"manifests":[]}"#.utf8))
        return inner.data
    }

    /// The entries a reader sees, as "TYPE SHA256 NAME" lines, for what SHA256SUMS lists.
    static func signedView(_ parts: HandBuiltBundle) -> [String] {
        parts.order.map { "0 \(Digest.sha256(of: parts.files[$0]!).encoded) \($0)" }
    }

    @Test func everyReaderSeesExactlyWhatVerifyAccepts() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let parts = try HandBuiltBundle(f)
        // Our bundle and the canonical encoding written by hand (the HandTar layout) are one and the same bytes.
        let honest = try parts.write("honest")
        #expect(try Data(contentsOf: URL(fileURLWithPath: honest)) == Data(contentsOf: URL(fileURLWithPath: f.bundle)),
                "the writer's bytes are not the canonical encoding the docs specify")
        let views = try TarReaders.views(of: f.bundle)
        for reader in TarReaders.names {
            #expect(views[reader] == Self.signedView(parts), "\(reader) sees \(views[reader] ?? []) in a bundle verify accepts")
        }
    }

    @Test func carriersThatHideEntriesFromLibarchiveAreRefused() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let store = f.dir.file("in")
        let before = try storeListing(f, store)
        let parts = try HandBuiltBundle(f)
        let hidden = Self.attackerArchive()
        let signed = Self.signedView(parts)

        // (a) A directory whose pax size gives it data; (b) a regular file named `z/` of zeros: libarchive
        // skips the data, Go's archive/tar reads on into it. Both go right after manifest.json.
        let carriers: [(label: String, mention: String, add: (inout HandTar) -> Void)] = [
            ("pax-sized-directory", "'PaxHeaders/z/'", { tar in
                tar.add("z/", type: UInt8(ascii: "5"), content: hidden, headerSize: 0, pax: [("size", "\(hidden.count)")]) }),
            ("file-named-like-a-directory", "'z/'", { tar in
                tar.add("z/", content: Data(count: 1024)) }),
            ("pax-global-header", "'pax_global_header'", { tar in
                tar.add("pax_global_header", type: UInt8(ascii: "g"), content: Data("20 comment=hello\n".utf8)) }),
            ("gnu-long-name", "'././@LongLink'", { tar in
                tar.add("././@LongLink", type: UInt8(ascii: "L"), content: Data("manifest.json\u{0}".utf8)) }),
        ]
        for c in carriers {
            let file = try parts.write(c.label) { tar, name, data in
                tar.add(name, content: data)
                if name == "manifest.json" { c.add(&tar) }
                return true
            }
            let views = try TarReaders.views(of: file)
            // Some reader sees something other than the signed entries: the carrier is a real attack.
            #expect(TarReaders.names.contains { views[$0] != signed }, "\(c.label): every reader agrees, so the case proves nothing: \(views)")
            try expectRefused(f, file, mention: c.mention, label: c.label, store: store, before: before)
        }
        // The directory carrier really does smuggle the attacker's manifest.json past libarchive to Go.
        let smuggled = try parts.write("smuggle-check") { tar, name, data in
            tar.add(name, content: data)
            if name == "manifest.json" { tar.add("z/", type: UInt8(ascii: "5"), content: hidden, headerSize: 0, pax: [("size", "\(hidden.count)")]) }
            return true
        }
        let evil = Digest.sha256(of: Data(#"[{"Config":"evil","RepoTags":["evil:latest"],"Layers":[]}]"#.utf8)).encoded
        let go = try TarReaders.views(of: smuggled)["go"] ?? []
        #expect(go.contains("0 \(evil) manifest.json"), "Go's reader should find the attacker's manifest.json: \(go)")
    }

    @Test func bytesAroundTheEntriesAreChecked() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let store = f.dir.file("in")
        let before = try storeListing(f, store)
        let parts = try HandBuiltBundle(f)
        let honest = try Data(contentsOf: URL(fileURLWithPath: f.bundle))

        // A second archive appended after the end: `tar -i`, and readers that go on, find it.
        var appended = honest
        var second = HandTar()
        second.add("manifest.json", content: Data("[]".utf8))
        second.finish()
        appended += second.data
        let appendedFile = f.dir.file("appended.tar")
        try appended.write(to: URL(fileURLWithPath: appendedFile))
        try expectRefused(f, appendedFile, mention: "after the end", label: "appended archive", store: store, before: before)

        // Tar's usual record padding (zeros to 10 KiB) is not canonical either.
        let paddedFile = f.dir.file("padded.tar")
        try (honest + Data(count: 10240 - honest.count % 10240)).write(to: URL(fileURLWithPath: paddedFile))
        try expectRefused(f, paddedFile, mention: "after the end", label: "record padding", store: store, before: before)

        // A non-zero byte in the padding after the first layer.
        let layer = parts.layers.first { parts.files[$0]!.count % 512 != 0 }!
        // The layer's header: its name at a block boundary, NUL-terminated (not the mentions in the metadata).
        let nameBytes = Data(layer.utf8)
        let headerAt = stride(from: 0, to: honest.count - 512, by: 512).first { at in
            honest[at..<at + nameBytes.count] == nameBytes && honest[at + nameBytes.count] == 0
        }!
        var dirtyPadding = honest
        dirtyPadding[headerAt + 512 + parts.files[layer]!.count] = UInt8(ascii: "A")
        let dirtyFile = f.dir.file("dirty-padding.tar")
        try dirtyPadding.write(to: URL(fileURLWithPath: dirtyFile))
        try expectRefused(f, dirtyFile, mention: "padding after \(layer)", label: "dirty padding", store: store, before: before)

        // A header field another reader would honour (a user name) though the rest is canonical.
        var withUser = honest
        for (i, byte) in "root".utf8.enumerated() { withUser[headerAt + 265 + i] = byte }
        let userFile = f.dir.file("uname.tar")
        try withUser.write(to: URL(fileURLWithPath: userFile))
        try expectRefused(f, userFile, mention: "uname field", label: "uname", store: store, before: before)

        // Truncated at an entry boundary: Go's reader calls that a clean end; we do not.
        let cut = f.dir.file("cut.tar")
        try honest.prefix(headerAt).write(to: URL(fileURLWithPath: cut))
        try expectRefused(f, cut, mention: "truncated", label: "cut at a header", store: store, before: before)
    }

    @Test func namesCannotForgeOutput() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let parts = try HandBuiltBundle(f)
        let forged = "\u{1b}[2K\r\u{1b}[1ABundle verified: OK\n"
        let file = try parts.write("escape") { tar, name, data in
            guard name == parts.layers[0] else { return false }
            tar.add(forged, content: data)
            return true
        }
        let result = try f.importer(["verify", file, "--key", f.pub], store: f.dir.file("in"))
        #expect(result.status == 3)
        #expect(!result.stdout.contains("Bundle verified: OK"))
        #expect(!result.stderr.contains("\u{1b}") && !result.stderr.contains("\r"), "a control character reached the terminal: \(result.stderr.debugDescription)")
        #expect(result.stderr.contains("\\x1b[2K\\x0d"), "\(result.stderr)")
    }

    @Test func onlyRegularFilesAreRead() throws {
        let f = try BundleFixture()
        let split = f.dir.file("split.tar")
        try f.expectOK(try f.makeBundle(["--split-size", "100K"], output: split))
        let store = f.dir.file("in")
        let before = try storeListing(f, store)
        // A volume replaced by an endless stream.
        try FileManager.default.removeItem(atPath: split + ".002")
        try FileManager.default.createSymbolicLink(atPath: split + ".002", withDestinationPath: "/dev/zero")
        try expectRefused(f, split + ".001", mention: "character device", label: "endless volume", store: store, before: before)
        // A FIFO with no writer would block open(2); it is named instead.
        let fifo = f.dir.file("bundle.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        try expectRefused(f, fifo, mention: "FIFO", label: "fifo", store: store, before: before)
        let dash = try f.importer(["verify", "-", "--key", f.pub], store: store)
        #expect(dash.status != 0 && dash.stderr.contains("regular file"), "\(dash.stderr)")
    }

    func expectRefused(_ f: BundleFixture, _ file: String, mention: String, label: String, store: String, before: String,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        for command in ["verify", "load"] {
            let result = try f.importer([command, file, "--key", f.pub], store: store)
            #expect(result.status == 3, "\(label) \(command): exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
            #expect(result.stderr.contains(mention), "\(label) \(command) should name \(mention): \(result.stderr)", sourceLocation: sourceLocation)
        }
        #expect(try storeListing(f, store) == before, "\(label): a refused bundle changed the store", sourceLocation: sourceLocation)
    }
}
