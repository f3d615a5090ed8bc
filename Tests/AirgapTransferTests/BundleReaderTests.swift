@testable import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapStore
import AirgapTar
import AirgapTestSupport
import AirgapTransfer
import Foundation
import NIOCore
import Testing

/// A signed bundle of generated sample images, written in-process from a store (no registry).
struct InProcessBundle {
    let dir = TempDirectory("bundle-reader")
    let source: LocalStore
    let key = BundleKeys.generate()
    let bytes: Data
    let path: String

    /// Written by the copy engine from the store, as `bundle` writes one from a registry.
    init(count: Int = 2, created: String = "2026-01-01T00:00:00Z", baseBytes: Int? = nil, appBytes: Int? = nil) async throws {
        source = try LocalStore(path: dir.file("source"))
        var options = SampleImages.Options()
        options.count = count
        if let baseBytes { options.baseLayerBytes = baseBytes }
        if let appBytes { options.appLayerBytes = appBytes }
        options.compress = false
        _ = try SampleImages(store: source).generate(options)
        let store = StoreSource(store: source)
        let requests = try source.images().map { CopyRequest(reference: $0.reference!, allPlatforms: true, pinned: $0.entry) }
        let plan = try await CopyPlanner(source: store).plan(requests)
        path = dir.file("bundle.tar")
        _ = try await BundleExporter(store: nil).write(plan, from: store, options: .init(output: path, signingKey: key, created: created), manifest: nil)
        bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    }

    func reader(_ path: String? = nil) throws -> BundleReader {
        BundleReader(files: try BundleFiles.resolve([path ?? self.path]), publicKey: BundleKeys.publicKey(of: key), allowUnsigned: false)
    }

    func write(_ data: Data, as name: String) throws -> String {
        let path = dir.file(name)
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Offsets of every header block and of the bytes that must be zero (padding, end of archive).
    func layout() -> (headers: [Int], zeros: [Range<Int>]) {
        var headers: [Int] = [], zeros: [Range<Int>] = []
        var at = 0
        while at + 512 <= bytes.count {
            let block = bytes[at..<at + 512]
            if block.allSatisfy({ $0 == 0 }) { zeros.append(at..<bytes.count); break }
            headers.append(at)
            let sizeField = String(decoding: bytes[at + 124..<at + 135], as: UTF8.self)
            let size = Int(sizeField, radix: 8)!
            let end = at + 512 + size
            let padded = (end + 511) / 512 * 512
            if padded > end { zeros.append(end..<padded) }
            at = padded
        }
        return (headers, zeros)
    }
}

@Suite struct BundleReaderTests {
    @Test func theWrittenBundleIsAccepted() async throws {
        let b = try await InProcessBundle()
        let result = try await b.reader().read()
        #expect(result.ok, "\(result.findings)")
        #expect(result.signature == .valid(fingerprint: BundleKeys.fingerprint(BundleKeys.publicKey(of: b.key))))
        #expect(result.metadata?.created == "2026-01-01T00:00:00Z")
    }

    /// Verify hashes two blobs at once (one on a second core): a damaged byte in any blob is still
    /// its own finding, every entry gets its digest, and only good blobs get an offset to push from.
    @Test func aDamagedBlobIsFoundWhicheverCoreHashedIt() async throws {
        let b = try await InProcessBundle(count: 3)
        let good = try await b.reader().read()
        #expect(good.ok && good.entries.allSatisfy { $0.sha256.count == 64 && $0.ok }, "\(good.findings)")
        let blobHeaders = b.layout().headers.filter { String(decoding: b.bytes[$0..<$0 + 13], as: UTF8.self) == "blobs/sha256/" }
        #expect(blobHeaders.count >= 8)
        for header in blobHeaders {
            let name = String(decoding: b.bytes[header..<header + 77], as: UTF8.self)
            let size = Int(String(decoding: b.bytes[header + 124..<header + 135], as: UTF8.self), radix: 8)!
            guard size > 0 else { continue }
            var copy = b.bytes
            copy[header + 512 + size / 2] ^= 0x01
            let result = try await b.reader(try b.write(copy, as: "damaged.tar")).read()
            #expect(result.findings.map(\.entry) == [name], "\(name): \(result.findings)")
            #expect(result.entries.allSatisfy { $0.sha256.count == 64 }, "an entry was left without its digest")
            #expect(result.entries.filter { !$0.ok }.map(\.name) == [name])
            let digest = try Digest(parsing: "sha256:" + name.dropFirst(13))
            #expect(result.blobOffsets[digest] == nil)
        }
    }

    /// The largest blob is handed to the other core before the stream reaches it, from the offset
    /// the canonical layout gives it: found damaged, found moved (then read like any other), and
    /// its offset kept for push only when it matched.
    @Test func theBlobHashedAheadIsCheckedLikeAnyOther() async throws {
        let b = try await InProcessBundle(count: 2, baseBytes: 17 << 20, appBytes: 1 << 20)
        let headers = b.layout().headers
        let big = headers.first { Int(String(decoding: b.bytes[$0 + 124..<$0 + 135], as: UTF8.self), radix: 8)! > 16 << 20 }!
        let bigSize = Int64(String(decoding: b.bytes[big + 124..<big + 135], as: UTF8.self), radix: 8)!
        let name = String(decoding: b.bytes[big..<big + 77], as: UTF8.self)
        let digest = try Digest(parsing: "sha256:" + name.dropFirst(13))
        // The offset predicted from the signed sizes, at the first blob's header, is where the blob is.
        let sums = try Checksums.parse(b.bytes[headers[1] + 512..<headers[1] + 512 + Int(String(decoding: b.bytes[headers[1] + 124..<headers[1] + 135], as: UTF8.self), radix: 8)!])
        let metadataSize = Int(String(decoding: b.bytes[headers[0] + 124..<headers[0] + 135], as: UTF8.self), radix: 8)!
        let metadata = try JSONDecoder().decode(BundleMetadata.self, from: b.bytes[headers[0] + 512..<headers[0] + 512 + metadataSize])
        let firstBlob = sums.entries.firstIndex { $0.name.hasPrefix("blobs/") }!
        let firstHeader = headers.first { String(decoding: b.bytes[$0..<$0 + 13], as: UTF8.self) == "blobs/sha256/" }!
        let candidate = BundleReader.aheadCandidate(sums.entries[firstBlob...], headerAt: Int64(firstHeader),
                                                   sizes: BlobTable(metadata.blobs), fileSize: Int64(b.bytes.count))
        // Sizes no file could hold (unsigned metadata may say anything) plan nothing, and do not overflow.
        var huge = metadata.blobs
        for i in huge.indices { huge[i].size = Int64.max / 2 }
        #expect(BundleReader.aheadCandidate(sums.entries[firstBlob...], headerAt: Int64(firstHeader), sizes: BlobTable(huge), fileSize: Int64(b.bytes.count)) == nil)
        #expect(candidate?.name == name && candidate?.offset == Int64(big + 512) && candidate?.size == bigSize, "\(String(describing: candidate))")
        let reader = try b.reader()
        let good = try await reader.read()
        #expect(good.ok && good.entries.allSatisfy { $0.sha256.count == 64 && $0.ok }, "\(good.findings)")
        #expect(good.blobOffsets[digest] == Int64(big + 512))
        for at in [big + 512, big + 512 + (8 << 20), big + 512 + (17 << 20) - 1] {
            var copy = b.bytes
            copy[at] ^= 0x01
            let result = try await b.reader(try b.write(copy, as: "damaged.tar")).read()
            #expect(result.findings.map(\.entry) == [name], "\(result.findings)")
            #expect(result.blobOffsets[digest] == nil)
        }
        // Every size is signed, so the offset cannot move in a bundle that passes; a header made
        // longer in front of it (a second metadata name) fails the canonical check, not the hash.
        var moved = b.bytes
        moved[headers[3] + 100] ^= 0x01 // a mode field before the big blob
        let refused = try await b.reader(try b.write(moved, as: "moved.tar")).read()
        #expect(!refused.ok && refused.blobOffsets[digest] == nil, "\(refused.findings)")
    }

    /// Between verify and use (push, copy) the media may change: what is re-read is hashed again,
    /// and a file swapped for a device is not read at all.
    @Test func aBundleChangedAfterItsCheckIsCaughtWhenItIsUsed() async throws {
        let b = try await InProcessBundle(count: 1)
        let bundle = try await #require(VerifiedBundle(try b.reader().read()))
        let layer = try #require(bundle.metadata.blobs.max { $0.size < $1.size })
        let descriptor = Descriptor(mediaType: layer.mediaType, digest: layer.digest, size: layer.size)
        let segments = try #require(bundle.fileSegments(descriptor))
        let name = try Reference(parsing: "example.com/x:1")
        // One byte of the blob changes on the media after verification.
        var bytes = b.bytes
        bytes[Int(segments.segments[0].offset + layer.size / 2)] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: b.path))
        let writer = MemoryBlobWriter(descriptor, source: "blob")
        await #expect(throws: ContentError.self) {
            try await bundle.copyBlob(descriptor, in: name, into: writer, progress: { _ in })
            try await writer.commit()
        }
        #expect(writer.data.count < Int(layer.size), "the whole changed blob was handed on")
        // The file is replaced by a link to a device: refused, not read.
        unlink(b.path)
        symlink("/dev/zero", b.path)
        await #expect(throws: ContentError.self) {
            try await bundle.copyBlob(descriptor, in: name, into: MemoryBlobWriter(descriptor, source: "blob"), progress: { _ in })
        }
    }

    /// Every byte outside entry data is fixed by the encoding: changing any one of them is a finding.
    @Test func everyHeaderPaddingAndEndByteIsChecked() async throws {
        let b = try await InProcessBundle(count: 1)
        let (headers, zeros) = b.layout()
        #expect(headers.count >= 8)
        var offsets: [Int] = []
        for h in headers { offsets += Array(h..<h + 512) }
        for z in zeros { offsets += Array(z) }
        var accepted: [Int] = []
        for offset in offsets {
            var copy = b.bytes
            copy[offset] = copy[offset] == 0 ? 0x20 : copy[offset] ^ 0x01
            let path = try b.write(copy, as: "flipped.tar")
            if try await b.reader(path).read().ok { accepted.append(offset) }
        }
        #expect(accepted.isEmpty, "bytes that can change unnoticed: \(accepted.prefix(20))")
    }

    @Test func nothingMayFollowTheEnd() async throws {
        let b = try await InProcessBundle(count: 1)
        for extra in [Data([0]), Data(count: 512), Data(count: 9216), Data("x".utf8)] {
            let result = try await b.reader(try b.write(b.bytes + extra, as: "extra.tar")).read()
            #expect(!result.ok)
            #expect(result.findings.first?.problem.contains("end of the archive") == true || result.findings.first?.problem.contains("must end") == true,
                    "\(result.findings)")
        }
        // Cut anywhere: a finding, never a hang or a crash.
        for cut in [1, 511, 512, 1024, b.bytes.count / 2, b.bytes.count - 1024, b.bytes.count - 1] {
            let result = try await b.reader(try b.write(b.bytes.prefix(cut), as: "cut.tar")).read()
            #expect(!result.ok, "cut at \(cut) was accepted")
        }
    }

    /// Sizes past 8 GiB take a pax size record; the readers on the inside agree on the size.
    @Test func largeSizesUsePaxAndEveryReaderAgrees() async throws {
        let size: Int64 = 9 << 30
        let header = try CanonicalTar.header(name: "blobs/sha256/" + String(repeating: "a", count: 64), size: size)
        #expect(header.count == 1536)
        let dir = TempDirectory("large")
        let path = dir.file("large.tar")
        try Data(header).write(to: URL(fileURLWithPath: path))
        // The data and the end as a hole: the file is sparse, nothing is written.
        #expect(truncate(path, off_t(1536 + size + 1024)) == 0)
        let python = try runProcess("/usr/bin/python3", ["-c", "import tarfile,sys; m=tarfile.open(sys.argv[1]).getmembers(); print(len(m), m[0].name, m[0].size, m[0].type.decode())", path])
        #expect(python.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1 blobs/sha256/\(String(repeating: "a", count: 64)) \(size) 0", "\(python.stdout) \(python.stderr)")
        let gnu = try runProcess("tar", ["-tvf", path])
        #expect(gnu.status == 0 && gnu.stdout.contains(" \(size) "), "\(gnu.stdout) \(gnu.stderr)")
        // And the reader parses it back to the same size.
        let reader = CanonicalTarReader(source: DataSource(Data(header)))
        let read = try reader.readHeader(oneOf: ["blobs/sha256/" + String(repeating: "a", count: 64)], limit: .max)
        #expect(read.size == size)
    }

    /// What `load --into docker` hands the engine: a good bundle becomes an archive that names
    /// its images exactly as the bundle does (the same index.json and manifest.json, planned again
    /// from the verified documents), names last; a bundle damaged anywhere leaves the engine with
    /// a failed load and an archive that names nothing.
    @Test func anEngineGetsTheNamesOnlyFromABundleThatCheckedOut() async throws {
        let b = try await InProcessBundle(count: 3)
        let good = try await Self.loadIntoFakeEngine(b, b.path)
        #expect(good.result.ok && good.engineFinished, "\(good.result.findings)")
        let archive = try b.write(good.archive, as: "engine.tar")
        let entries = try Self.sha256s(of: archive).map { [$0.0, $0.1] }
        #expect(entries.count > 3)
        #expect(entries.first?.first == "oci-layout")
        #expect(entries.suffix(2).map { $0[0] } == ["index.json", "manifest.json"], "\(entries.map { $0[0] })")
        for entry in entries where entry[0].hasPrefix("blobs/sha256/") { #expect(entry[0].hasSuffix(entry[1]), "\(entry)") }
        let bundleEntries = Dictionary(try Self.sha256s(of: b.path), uniquingKeysWith: { a, _ in a })
        for name in ["index.json", "manifest.json"] {
            #expect(entries.first { $0[0] == name }?[1] == bundleEntries[name], "\(name) differs from the bundle's")
        }
        #expect(Set(entries.map { $0[0] }.filter { $0.hasPrefix("blobs/") }) == Set(bundleEntries.keys.filter { $0.hasPrefix("blobs/") }))

        let headers = b.layout().headers
        for (what, at) in [("the last entry", headers.last! + 600), ("a middle blob", headers[headers.count / 2] + 512)] {
            var damaged = b.bytes
            damaged[at] ^= 0xff
            let bad = try await Self.loadIntoFakeEngine(b, try b.write(damaged, as: "damaged.tar"))
            #expect(!bad.result.ok, "\(what)")
            #expect(!bad.engineFinished, "the engine's load of a bundle damaged in \(what) ended as if whole")
            let named = bad.archive.range(of: Data("index.json".utf8)) != nil || bad.archive.range(of: Data("manifest.json".utf8)) != nil
            #expect(!named, "the engine got names from a bundle damaged in \(what)")
        }
    }

    /// `load --into ENGINE`'s steps with an engine that keeps what it is sent.
    static func loadIntoFakeEngine(_ b: InProcessBundle, _ path: String) async throws -> (result: BundleReadResult, archive: Data, engineFinished: Bool) {
        final class Received: @unchecked Sendable { var data = Data(); var finished = false }
        let received = Received()
        let sink = EngineSink(engineName: "a test engine", load: { pipe in
            for try await chunk in pipe { received.data.append(contentsOf: chunk.readableBytesView) }
            received.finished = true
            return ["Loaded"]
        })
        let copy = StreamedCopy(sink: sink)
        let reader = try b.reader(path)
        let result = try await withTaskExecutorPreference(BlockingThread()) { try await reader.read(into: copy) }
        if result.ok, let bundle = VerifiedBundle(result) {
            let plan = try await bundle.plan()
            try await withTaskExecutorPreference(BlockingThread()) { try await copy.commit(plan) }
        } else {
            await copy.abort()
        }
        return (result, received.data, received.finished)
    }

    /// Each entry of a tar file with the sha256 of its content, by Python's reader.
    static func sha256s(of path: String) throws -> [(String, String)] {
        let out = try runProcess("/usr/bin/python3", ["-c", """
            import tarfile, hashlib, sys
            t = tarfile.open(sys.argv[1])
            for m in t.getmembers():
                print(m.name, hashlib.sha256(t.extractfile(m).read()).hexdigest())
            """, path]).stdout
        return out.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.map { ($0[0], $0[1]) }
    }

    @Test func namesOutsideTheAllowedSetCannotBeWrittenOrListed() async throws {
        for bad in ["", "/abs", "a/../b", "a//b", "dir/", "./a", "a\u{1b}[2K", "a b", String(repeating: "x", count: 90), "a\\b"] {
            #expect(!CanonicalTar.isAllowedName(bad), "\(bad.debugDescription) should be refused")
        }
        #expect(CanonicalTar.isAllowedName("blobs/sha256/" + String(repeating: "0", count: 64)))
        let sums = Data("\(String(repeating: "0", count: 64))  evil\u{1b}]0;x\n".utf8)
        #expect(throws: BundleError.self) { try Checksums.parse(sums) }
    }

    @Test func aStrippedSignatureIsRefusedForANamedKeyEvenWithAllowUnsigned() async throws {
        let b = try await InProcessBundle(count: 1)
        // Rebuild the bundle without its signature entry: what an attacker with no key can do.
        let (headers, _) = b.layout()
        let signatureHeader = headers[2]
        var stripped = b.bytes
        stripped.removeSubrange(signatureHeader..<signatureHeader + 1024)
        let path = try b.write(stripped, as: "stripped.tar")
        let named = BundleReader(files: try BundleFiles.resolve([path]), trust: BundleTrust(keys: [BundleKeys.publicKey(of: b.key)], keyNamedByUser: true, allowUnsigned: true, keySource: "--key"))
        let result = try await named.read()
        #expect(!result.ok && result.signature == .unsigned)
        #expect(result.findings.first?.problem.contains("stripped") == true, "\(result.findings)")
        // Without a named key, --allow-unsigned still accepts it (the operator asked for that).
        let unnamed = BundleReader(files: try BundleFiles.resolve([path]), trust: BundleTrust(keys: [], keyNamedByUser: false, allowUnsigned: true, keySource: "none"))
        #expect(try await unnamed.read().ok)
    }

    @Test func aRefusedLoadLeavesBlobsAndIndexByteIdentical() async throws {
        let b = try await InProcessBundle()
        let inside = try LocalStore(path: b.dir.file("inside"))
        // Load one image's worth first so the store is not empty.
        _ = try await BundleImporter(store: inside).load(b.reader())
        let before = try snapshot(inside)
        // A second bundle whose last blob is damaged: every other blob verifies and is new to the store.
        let other = try await InProcessBundle(count: 3)
        var damaged = other.bytes
        damaged[damaged.count - 1024 - 600] ^= 0xff
        let path = try other.write(damaged, as: "damaged.tar")
        let outcome = try await BundleImporter(store: inside).load(other.reader(path))
        #expect(!outcome.result.ok)
        // The store's ingest refused the bytes; the finding names the entry, as verify would.
        #expect(outcome.result.findings.contains { $0.entry.hasPrefix("blobs/sha256/") && $0.problem.contains("does not match SHA256SUMS") },
                "\(outcome.result.findings)")
        #expect(try snapshot(inside) == before, "a refused load changed blobs/ or index.json")
        // Nothing staged stays behind either.
        let ingest = try FileManager.default.contentsOfDirectory(atPath: inside.root + "/.airgap/ingest")
        #expect(ingest.allSatisfy { !$0.hasPrefix("stage-") }, "\(ingest)")
    }

    /// A damaged blob in the middle, new to the store: one finding, the one verify gives. (The
    /// store's writer refused the last chunk; the entry must still be read to its end, or the next
    /// header is looked for inside it.)
    @Test func aDamagedMiddleBlobIsOneFindingOnLoadAsOnVerify() async throws {
        let b = try await InProcessBundle(count: 3)
        let (headers, _) = b.layout()
        var damaged = b.bytes
        damaged[headers[6] + 512 + 3] ^= 0xff // inside the first blob after the header documents
        let path = try b.write(damaged, as: "middle.tar")
        let verified = try await b.reader(path).read()
        #expect(verified.findings.count == 1)
        let inside = try LocalStore(path: b.dir.file("inside"))
        let before = try snapshot(inside)
        let outcome = try await BundleImporter(store: inside).load(b.reader(path))
        #expect(outcome.result.findings.map(\.description) == verified.findings.map(\.description))
        #expect(try snapshot(inside) == before)
    }

    /// The load holds the store's ingest lease before it checks what a `--since` bundle needs:
    /// a prune (which needs the lease's lock exclusively) cannot take those blobs meanwhile.
    @Test func theLeaseIsHeldBeforeTheRequirementsAreChecked() async throws {
        let b = try await InProcessBundle(count: 1)
        let inside = try LocalStore(path: b.dir.file("inside"))
        var couldCollect: Bool?
        _ = try await BundleImporter(store: inside).load(b.reader(), admit: { _, _ in
            let fd = open(inside.root + "/.airgap/gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            defer { close(fd) }
            couldCollect = flock(fd, LOCK_EX | LOCK_NB) == 0
        })
        #expect(couldCollect == false)
    }

    /// Many small blobs take whole blocks each: a store on a 5 MiB disk is refused before the
    /// first one is written (0.6 MB of content was once let through, to fail at the names).
    @Test func aSmallDiskIsSaidBeforeManySmallBlobsAreWritten() async throws {
        let b = try await InProcessBundle(count: 400, baseBytes: 1024, appBytes: 100)
        let small = b.dir.file("small")
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        guard try runProcess("mount", ["-t", "tmpfs", "-o", "size=5m", "tmpfs", small]).status == 0 else {
            print("skipped: cannot mount a tmpfs here; the small-disk estimate is untested")
            return
        }
        defer { _ = try? runProcess("umount", [small]) }
        let inside = try LocalStore(path: small + "/store")
        let before = try snapshot(inside)
        await #expect(throws: StoreError.self) { _ = try await BundleImporter(store: inside).load(b.reader()) }
        #expect(try snapshot(inside) == before)
    }

    /// bundle.json may not promise a blob the bundle does not carry, even signed by the right key
    /// (one canonical bundle: what it lists is what SHA256SUMS lists).
    @Test func aSignedPromiseOfABlobNotCarriedIsAFinding() async throws {
        let b = try await InProcessBundle(count: 1)
        let reader = try TarReader(source: DataSource(b.bytes))
        var entries: [(String, Data)] = []
        while let entry = try reader.next() { entries.append((entry.name, try reader.readAll(limit: 1 << 30))) }
        var metadata = try JSONSerialization.jsonObject(with: entries[0].1) as! [String: Any]
        var blobs = metadata["blobs"] as! [[String: Any]]
        let phantom = Digest.sha256(of: Data("not in the bundle".utf8))
        blobs.append(["digest": phantom.description, "size": 17, "mediaType": "application/vnd.oci.image.layer.v1.tar"])
        metadata["blobs"] = blobs
        entries[0].1 = try JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys])
        var sums = String(decoding: entries[1].1, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        sums[0] = Digest.sha256(of: entries[0].1).encoded + "  " + BundleMetadata.entryName
        entries[1].1 = Data(sums.joined(separator: "\n").utf8)
        entries[2].1 = try BundleKeys.sign(entries[1].1, with: b.key)
        var rebuilt = Data()
        let writer = CanonicalTarWriter(sink: { rebuilt.append(contentsOf: $0) })
        for (name, data) in entries { try writer.addFile(name, data: data) }
        try writer.close()
        let result = try await b.reader(try b.write(rebuilt, as: "promise.tar")).read()
        #expect(result.signature != .invalid)
        #expect(result.findings.contains { $0.entry == BundleMetadata.entryName && $0.problem.contains("\(phantom)") }, "\(result.findings)")
    }

    @Test func aCorruptStoreBlobIsReplacedFromTheBundle() async throws {
        let b = try await InProcessBundle(count: 1)
        let inside = try LocalStore(path: b.dir.file("inside"))
        _ = try await BundleImporter(store: inside).load(b.reader())
        let layer = try inside.images()[0].manifest.layers[0]
        let path = inside.blobPath(layer.digest)
        // Same size, one byte changed: "already present" by size alone.
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[10] ^= 0xff
        try data.write(to: URL(fileURLWithPath: path))
        let outcome = try await BundleImporter(store: inside).load(b.reader())
        #expect(outcome.result.ok)
        #expect(Digest.sha256(of: try Data(contentsOf: URL(fileURLWithPath: path))) == layer.digest, "the corrupt blob was kept")
        #expect(outcome.blobsAdded == 1)
    }

    @Test func sinceRequirementsAreCheckedBeforeAnyByteIsWritten() async throws {
        let b = try await InProcessBundle()
        let metadataOnly = try BundleReader(files: BundleFiles.resolve([b.path]), publicKey: BundleKeys.publicKey(of: b.key), allowUnsigned: false)
        let inside = try LocalStore(path: b.dir.file("inside"))
        let before = try snapshot(inside)
        var seenBlobs = 0
        struct Refuse: Error {}
        await #expect(throws: Refuse.self) {
            _ = try await metadataOnly.read(verifiedMetadata: { _, _ in throw Refuse() }, blobHandler: { _, _, data, _ in
                seenBlobs += 1
                try data.readData { _ in }
                return Digest.sha256(of: Data())
            })
        }
        #expect(seenBlobs == 0)
        #expect(try snapshot(inside) == before)
    }

    func snapshot(_ store: LocalStore) throws -> [String: Data] {
        var files: [String: Data] = ["index.json": try Data(contentsOf: URL(fileURLWithPath: store.root + "/index.json"))]
        for name in try FileManager.default.contentsOfDirectory(atPath: store.root + "/blobs/sha256") {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: store.root + "/blobs/sha256/" + name))
        }
        return files
    }
}

@Suite struct TrustStateTests {
    @Test func signersAreAddedListedAndRemoved() async throws {
        let dir = TempDirectory("trust")
        let key = BundleKeys.generate()
        try BundleKeys.publicPEM(of: key).write(toFile: dir.file("site.pub"), atomically: true, encoding: .utf8)
        let signers = TrustedSigners(storeRoot: dir.file("store"))
        #expect(try signers.keys().isEmpty)
        let (signer, added) = try signers.add(pemPath: dir.file("site.pub"))
        #expect(added && signer.fingerprint == BundleKeys.fingerprint(of: key))
        #expect(try signers.add(pemPath: dir.file("site.pub")).added == false)
        #expect(try signers.keys().map(BundleKeys.fingerprint) == [signer.fingerprint])
        #expect(throws: BundleError.self) { try signers.remove("sha256:00") }
        #expect(try signers.remove(String(signer.fingerprint.prefix(20))).fingerprint == signer.fingerprint)
        #expect(try signers.list().isEmpty)
    }

    @Test func anOlderBundleMayNotMoveATagBack() async throws {
        let dir = TempDirectory("history")
        let history = TagHistory(storeRoot: dir.path)
        let new = Digest.sha256(of: Data("new".utf8)), old = Digest.sha256(of: Data("old".utf8))
        try history.record(destination: "store", signer: "sha256:k", created: "2026-06-01T00:00:00Z", bundle: "b2", tags: [("docker.io/library/httpd:2.4", new)])
        // Older and different: a rollback.
        let back = try history.rollbacks(destination: "store", signer: "sha256:k", created: "2026-05-01T00:00:00Z", tags: [("docker.io/library/httpd:2.4", old)])
        #expect(back.count == 1 && back[0].description.contains("2026-06-01T00:00:00Z") && back[0].description.contains("2026-05-01T00:00:00Z"))
        // Older but the same content, newer, another signer or another destination: allowed.
        #expect(try history.rollbacks(destination: "store", signer: "sha256:k", created: "2026-05-01T00:00:00Z", tags: [("docker.io/library/httpd:2.4", new)]).isEmpty)
        #expect(try history.rollbacks(destination: "store", signer: "sha256:k", created: "2026-07-01T00:00:00Z", tags: [("docker.io/library/httpd:2.4", old)]).isEmpty)
        #expect(try history.rollbacks(destination: "store", signer: "sha256:other", created: "2026-05-01T00:00:00Z", tags: [("docker.io/library/httpd:2.4", old)]).isEmpty)
        #expect(try history.rollbacks(destination: "docker", signer: "sha256:k", created: "2026-05-01T00:00:00Z", tags: [("docker.io/library/httpd:2.4", old)]).isEmpty)
    }

    @Test func creationTimeComesFromSourceDateEpoch() async throws {
        #expect(try BundleTime.now(environment: ["SOURCE_DATE_EPOCH": "1700000000"]) == "2023-11-14T22:13:20Z")
        #expect(throws: BundleError.self) { try BundleTime.now(environment: ["SOURCE_DATE_EPOCH": "yesterday"]) }
    }
}

/// `verify` reads configs without keeping them: a config that is not JSON is still a finding.
@Suite struct ConfigCheckTests {
    @Test func aConfigThatIsNotJSONIsAFindingWhetherOrNotConfigsAreKept() async throws {
        let dir = TempDirectory("bad-config")
        let store = try LocalStore(path: dir.file("source"))
        let config = Data("this is not JSON".utf8), layer = Data(repeating: 1, count: 2048)
        let configDescriptor = Descriptor(mediaType: .ociConfig, digest: try store.ingest(config, source: "test"), size: Int64(config.count))
        let layerDescriptor = Descriptor(mediaType: .ociLayer, digest: try store.ingest(layer, source: "test"), size: Int64(layer.count))
        let manifest = try CanonicalJSON.encode(ImageManifest(mediaType: .ociManifest, config: configDescriptor, layers: [layerDescriptor]))
        let top = Descriptor(mediaType: .ociManifest, digest: try store.ingest(manifest, source: "test"), size: Int64(manifest.count))
        let name = try Reference(parsing: "example.test/bad:1")
        try store.setTags([(name, top)])
        let source = StoreSource(store: store)
        let plan = try await CopyPlanner(source: source).plan([CopyRequest(reference: name, pinned: top)])
        let key = BundleKeys.generate(), path = dir.file("bundle.tar")
        _ = try await BundleExporter(store: nil).write(plan, from: source, options: .init(output: path, signingKey: key), manifest: nil)
        for keeps in [true, false] {
            let reader = BundleReader(files: try BundleFiles.resolve([path]), publicKey: BundleKeys.publicKey(of: key), allowUnsigned: false)
            reader.keepsConfigs = keeps
            let result = try await reader.read()
            #expect(result.findings.contains { $0.entry == Naming.blobPath(configDescriptor.digest) && $0.problem.contains("not valid JSON") }, "keeps configs: \(keeps): \(result.findings)")
            #expect(result.documents[configDescriptor.digest] == (keeps ? config : nil))
        }
    }
}

@Suite struct BlobTableTests {
    @Test func sortedAndUnsortedListsFindTheSameBlobsFirstListingWinning() {
        let digests = (0..<200).map { Digest.sha256(of: Data("\($0)".utf8)) }.sorted()
        let blobs = digests.enumerated().map { BundleMetadata.Blob(digest: $1, size: Int64($0), mediaType: .ociLayer) }
        let absent = Digest.sha256(of: Data("absent".utf8))
        let sorted = BlobTable(blobs)
        var shuffled = blobs.reversed() + [BundleMetadata.Blob(digest: digests[7], size: -1, mediaType: .ociLayer)]
        let unsorted = BlobTable(shuffled)
        for (i, digest) in digests.enumerated() {
            #expect(sorted[digest]?.size == Int64(i) && unsorted[digest]?.size == Int64(i))
        }
        #expect(sorted[absent] == nil && unsorted[absent] == nil && BlobTable([])[absent] == nil)
        shuffled = [blobs[0], blobs[0]]
        #expect(BlobTable(shuffled)[digests[0]]?.size == 0, "a repeat is out of order: the dictionary takes the first")
    }
}

/// Lines and read entries keep a blob's name as its digest: what they say must not change.
@Suite struct CompactEntryTests {
    @Test func namesAndDigestsReadBackExactly() throws {
        let a = Digest.sha256(of: Data("a".utf8)), b = Digest.sha256(of: Data("b".utf8))
        let text = """
        \(a.encoded)  airgap/bundle.json
        \(a.encoded)  blobs/sha256/\(a.encoded)
        \(a.encoded)  blobs/sha256/\(b.encoded)
        \(b.encoded)  index.json

        """
        let sums = try Checksums.parse(Data(text.utf8))
        #expect(sums.entries.map(\.name) == ["airgap/bundle.json", "blobs/sha256/\(a.encoded)", "blobs/sha256/\(b.encoded)", "index.json"])
        #expect(sums.entries.map(\.digest) == [a, a, a, b])
        // A blob name that claims another digest than its line keeps its own (the reader's finding).
        #expect(sums.entries.map(\.blobDigest) == [nil, a, b, nil])
        #expect(String(decoding: sums.data, as: UTF8.self) == text)

        for entry in [ReadEntry(name: "blobs/sha256/\(a.encoded)", size: 1, sha256: a.encoded, ok: true),
                      ReadEntry(name: "blobs/sha256/\(a.encoded)", size: 1, sha256: b.encoded, ok: false),
                      ReadEntry(name: "index.json", size: 2, sha256: b.encoded, ok: true)] {
            let json = try JSONEncoder().encode(entry)
            let object = try JSONSerialization.jsonObject(with: json) as! [String: Any]
            #expect(object["name"] as? String == entry.name && object["sha256"] as? String == entry.sha256 && object["ok"] as? Bool == entry.ok)
            let back = try JSONDecoder().decode(ReadEntry.self, from: json)
            #expect(back.name == entry.name && back.sha256 == entry.sha256 && back.ok == entry.ok && back.size == entry.size)
        }
        #expect(ReadEntry(name: "blobs/sha256/\(a.encoded)", size: 1, sha256: b.encoded, ok: false).sha256 == b.encoded)
    }
}
