import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

/// A real signed bundle taken apart and put back together by hand, with one lie in it each time.
/// SHA256SUMS is re-signed with the real key where the lie needs it: the signature is the
/// insider's, and the reader must still refuse the structure.
struct HandBuiltBundle {
    let f: BundleFixture
    let extracted: String
    let order: [String]
    var files: [String: Data]

    init(_ f: BundleFixture) throws {
        self.f = f
        extracted = f.dir.file("parts")
        try FileManager.default.createDirectory(atPath: extracted, withIntermediateDirectories: true)
        #expect(try runProcess("tar", ["xf", f.bundle, "-C", extracted]).status == 0)
        order = try f.tarEntries(f.bundle).filter { !$0.hasSuffix("/") }
        var files: [String: Data] = [:]
        for name in order { files[name] = try Data(contentsOf: URL(fileURLWithPath: "\(extracted)/\(name)")) }
        self.files = files
    }

    var layers: [String] { order.filter { $0.hasPrefix("blobs/") }.sorted { files[$0]!.count > files[$1]!.count } }

    /// Rewrites SHA256SUMS for the current files and signs it with the bundle's key (openssl).
    mutating func resign(extra: [String] = []) throws {
        let names = order + extra
        let sums = names.filter { $0 != "airgap/SHA256SUMS" && $0 != "airgap/SHA256SUMS.sig" }
            .map { "\(Digest.sha256(of: files[$0]!).encoded)  \($0)" }.joined(separator: "\n") + "\n"
        files["airgap/SHA256SUMS"] = Data(sums.utf8)
        let sumsPath = f.dir.file("resigned-sums"), sigPath = f.dir.file("resigned-sig")
        try files["airgap/SHA256SUMS"]!.write(to: URL(fileURLWithPath: sumsPath))
        #expect(try runProcess("openssl", ["pkeyutl", "-sign", "-inkey", f.key, "-rawin", "-in", sumsPath, "-out", sigPath]).status == 0)
        files["airgap/SHA256SUMS.sig"] = try Data(contentsOf: URL(fileURLWithPath: sigPath))
    }

    /// Writes the entries in bundle order; `entry` may replace how one is written.
    func write(_ label: String, extra: [String] = [], entry: (inout HandTar, String, Data) -> Bool = { _, _, _ in false }) throws -> String {
        var tar = HandTar()
        for name in order + extra {
            if !entry(&tar, name, files[name]!) { tar.add(name, content: files[name]!) }
        }
        tar.finish()
        let path = f.dir.file("\(label).tar")
        try tar.data.write(to: URL(fileURLWithPath: path))
        return path
    }
}

@Suite(.enabled(if: TestRegistries.available && toolAvailable("openssl")), .serialized)
struct HostileBundleTests {
    /// Each case: verify and load exit 3, stderr names `mention`, the store lists nothing new, and
    /// the process stays small.
    func expectRefused(_ f: BundleFixture, _ file: String, mention: String, label: String, store: String, before: String,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        for command in ["verify", "load"] {
            let (result, peakKiB) = try runMeasuringMemory(builtBinary("airgap-import"), [command, file, "--key", f.pub],
                                                           environment: ["AIRGAP_STORE": store, "DOCKER_CONFIG": f.dir.file("docker-config")])
            #expect(result.status == 3, "\(label) \(command): exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
            #expect(result.stderr.contains(mention), "\(label) \(command) should name '\(mention)': \(result.stderr)", sourceLocation: sourceLocation)
            #expect(peakKiB < 150 << 10, "\(label) \(command) peaked at \(peakKiB >> 10) MiB", sourceLocation: sourceLocation)
        }
        #expect(try storeListing(f, store) == before, "\(label): a refused bundle changed the store", sourceLocation: sourceLocation)
    }

    /// A signed bundle of the sample images, an empty inside store and what it lists.
    func signedBundle() throws -> (BundleFixture, store: String, before: String) {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let store = f.dir.file("in")
        return (f, store, try storeListing(f, store))
    }

    @Test func tarTricksInsideASignedBundleAreRefused() throws {
        let (f, store, before) = try signedBundle()
        let parts = try HandBuiltBundle(f)
        let layer = parts.layers[0], other = parts.layers[1]
        let size = parts.files[layer]!.count

        // The hand-written copy with no lie must pass, or the cases below prove nothing.
        let honest = try parts.write("honest")
        try f.expectOK(try f.importer(["verify", honest, "--key", f.pub], store: store))

        let cases: [(label: String, mention: String, write: (inout HandTar, String, Data) -> Bool)] = [
            ("hardlink", "typeflag", { tar, name, _ in
                guard name == layer else { return false }
                tar.add(name, type: UInt8(ascii: "1"), link: other); return true }),
            ("symlink", "typeflag", { tar, name, _ in
                guard name == layer else { return false }
                tar.add(name, type: UInt8(ascii: "2"), link: "../../../etc/passwd"); return true }),
            ("device", "typeflag", { tar, name, _ in
                guard name == layer else { return false }
                tar.add(name, type: UInt8(ascii: "3")); return true }),
            // pax says fewer bytes than the data that follows: the rest is read as headers.
            ("pax-short", "pax extended header", { tar, name, data in
                guard name == layer else { return false }
                tar.add(name, content: data, pax: [("size", "\(size - 700)")]); return true }),
            // pax says more: the following entries are swallowed as this one's data.
            ("pax-long", "pax extended header", { tar, name, data in
                guard name == layer else { return false }
                tar.add(name, content: data, pax: [("size", "\(size + 5000)")]); return true }),
            // ustar size field disagrees with the data (no pax).
            ("ustar-size", "signed metadata says", { tar, name, data in
                guard name == layer else { return false }
                tar.add(name, content: data, headerSize: Int64(size / 2)); return true }),
            // A size of 1 TiB in a 400 KiB file: nothing may be allocated or preallocated for it.
            ("huge-size", "size field", { tar, name, data in
                guard name == layer else { return false }
                tar.add(name, content: data, pax: [("size", "\(1 << 40)")]); return true }),
            ("zero-length", "signed metadata says", { tar, name, _ in
                guard name == layer else { return false }
                tar.add(name, content: Data()); return true }),
            ("traversal", "found an entry named 'blobs/../../", { tar, name, data in
                guard name == layer else { return false }
                tar.add("blobs/../../\(name)", content: data); return true }),
            ("absolute-pax-path", "pax extended header", { tar, name, data in
                guard name == layer else { return false }
                tar.add(name, content: data, pax: [("path", "/tmp/airgap-owned")]); return true }),
            ("duplicate", "found an entry named '\(layer)'", { tar, name, data in
                guard name == layer else { return false }
                tar.add(name, content: data); tar.add(name, content: data); return true }),
        ]
        for c in cases {
            let file = try parts.write(c.label, entry: c.write)
            try expectRefused(f, file, mention: c.mention, label: c.label, store: store, before: before)
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/airgap-owned"))
    }

    @Test func compressedBundlesAndBombsAreRefusedBeforeDecompressing() throws {
        let (f, store, before) = try signedBundle()
        // A bomb: 1 GiB of zeros behind a tar header, a few MiB compressed.
        let bomb = f.dir.file("bomb.tar")
        try writeZeroBomb(bomb, entry: "airgap/bundle.json")
        for (tool, suffix, mention) in [("gzip", "gz", "gunzip"), ("zstd", "zst", "unzstd")] where toolAvailable(tool) {
            #expect(try runProcess("/bin/sh", ["-c", "\(tool) -c -1 '\(bomb)' > '\(bomb).\(suffix)'"]).status == 0)
            try expectRefused(f, "\(bomb).\(suffix)", mention: mention, label: "\(tool) bomb", store: store, before: before)
            // An honest bundle compressed by someone on the way is refused the same way, with the fix.
            #expect(try runProcess("/bin/sh", ["-c", "\(tool) -c -1 '\(f.bundle)' > '\(f.bundle).\(suffix)'"]).status == 0)
            try expectRefused(f, "\(f.bundle).\(suffix)", mention: mention, label: "\(tool) bundle", store: store, before: before)
        }
        // The uncompressed bomb: its first entry claims 1 GiB of metadata; refused without holding it.
        try expectRefused(f, bomb, mention: "bundle.json", label: "plain bomb", store: store, before: before)
    }

    @Test func aHundredMegabyteManifestIsRefusedWithBoundedMemory() throws {
        let (f, store, before) = try signedBundle()
        var parts = try HandBuiltBundle(f)
        // A well-formed manifest padded with 100 MiB of spaces, listed in index.json and bundle.json.
        let index = try JSONSerialization.jsonObject(with: parts.files["index.json"]!) as! [String: Any]
        let first = (index["manifests"] as! [[String: Any]])[0]
        let small = parts.files["blobs/sha256/\((first["digest"] as! String).dropFirst(7))"]!
        var huge = small.dropLast()
        huge.append(Data(repeating: UInt8(ascii: " "), count: 100 << 20))
        huge.append(UInt8(ascii: "}"))
        let digest = Digest.sha256(of: huge)
        let name = "blobs/sha256/\(digest.encoded)"
        parts.files[name] = huge
        var manifests = index["manifests"] as! [[String: Any]]
        manifests.append(["mediaType": first["mediaType"]!, "digest": digest.description, "size": huge.count,
                          "annotations": ["org.opencontainers.image.ref.name": "huge"]])
        var newIndex = index
        newIndex["manifests"] = manifests
        parts.files["index.json"] = try JSONSerialization.data(withJSONObject: newIndex)
        var metadata = try JSONSerialization.jsonObject(with: parts.files["airgap/bundle.json"]!) as! [String: Any]
        var blobs = metadata["blobs"] as! [[String: Any]]
        blobs.append(["digest": digest.description, "size": huge.count, "mediaType": first["mediaType"]!])
        metadata["blobs"] = blobs
        parts.files["airgap/bundle.json"] = try JSONSerialization.data(withJSONObject: metadata)
        try parts.resign(extra: [name])
        let file = try parts.write("huge-manifest", extra: [name])
        try expectRefused(f, file, mention: "over the 16 MiB limit", label: "100 MiB manifest", store: store, before: before)
    }
}

/// A tar whose first entry, `entry`, holds 1 GiB of zeros: a few MiB once compressed.
func writeZeroBomb(_ path: String, entry: String) throws {
    var header = HandTar()
    header.add(entry, headerSize: 1 << 30)
    try header.data.write(to: URL(fileURLWithPath: path))
    #expect(try runProcess("/bin/sh", ["-c", "head -c 1073741824 /dev/zero >> '\(path)'"]).status == 0)
}

/// `image load` takes compressed archives, so a bomb gets decompressed: it must stay a stream.
@Suite struct HostileArchiveTests {
    @Test(arguments: [("gzip", "gz"), ("zstd", "zst")])
    func aDecompressionBombIsRefusedWithBoundedMemory(tool: String, suffix: String) throws {
        guard toolAvailable(tool) else { return }
        let dir = TempDirectory("bomb")
        try writeZeroBomb(dir.file("bomb.tar"), entry: "manifest.json")
        let file = dir.file("bomb.tar.\(suffix)")
        #expect(try runProcess("/bin/sh", ["-c", "\(tool) -c -1 '\(dir.file("bomb.tar"))' > '\(file)'"]).status == 0)
        let store = dir.file("store")
        let (load, peakKiB) = try runMeasuringMemory(builtBinary("airgap-import"), ["image", "load", "-i", file], environment: ["AIRGAP_STORE": store])
        #expect(load.status == 3, "\(load.stderr)")
        #expect(load.stderr.contains("manifest.json"), "\(load.stderr)")
        #expect(peakKiB < 150 << 10, "peaked at \(peakKiB >> 10) MiB")
        let listing = try runProcess(builtBinary("airgap-import"), ["image", "ls", "-q"], environment: ["AIRGAP_STORE": store])
        #expect(listing.stdout.isEmpty)
    }
}
