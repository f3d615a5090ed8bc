import AirgapContent
import AirgapOCI
import AirgapStore
import AirgapTar
import AirgapTestSupport
import AirgapTransfer
import Foundation
import Testing

/// Snapshot of what a store holds, to prove an operation changed nothing.
struct StoreSnapshot: Equatable {
    var blobs: [Digest: Int64]
    var entries: [Descriptor]
    init(_ store: LocalStore) throws { blobs = try store.allBlobs(); entries = try store.entries() }
}

func savedArchive(count: Int = 2, multiArch: Bool = false) async throws -> (Data, [Reference], TempDirectory) {
    let dir = TempDirectory("src")
    let store = try LocalStore(path: dir.path)
    var options = SampleImages.Options()
    options.count = count
    options.multiArch = multiArch
    let refs = try SampleImages(store: store).generate(options)
    var data = Data()
    _ = try await ArchiveSaver(store: store).save(try refs.map { try store.findOne($0.description) }, format: .docker) { data.append(contentsOf: $0) }
    return (data, refs, dir)
}

@Suite struct SaveLoadTests {
    @Test func roundTripKeepsDigestsAndSharesBlobs() async throws {
        let (archive, refs, sourceDir) = try await savedArchive(count: 3, multiArch: true)
        let source = try LocalStore(path: sourceDir.path)
        let target = TempDirectory("dst")
        let store = try LocalStore(path: target.path)
        let loaded = try await ArchiveLoader(store: store).load(source: DataSource(archive), sourceName: "archive")
        #expect(loaded.compactMap(\.reference) == refs)
        for ref in refs {
            #expect(try store.findOne(ref.description).entry.digest == (try source.findOne(ref.description)).entry.digest)
        }
        #expect(try store.allBlobs() == (try source.allBlobs()))
        // The archive holds each blob once: entries = metadata + unique blobs.
        var names: [String] = []
        let reader = try TarReader(source: DataSource(archive))
        while let e = try reader.next() { names.append(e.name) }
        #expect(Set(names).count == names.count)
        #expect(names.prefix(3) == ["oci-layout", "index.json", "manifest.json"])
        #expect(names.filter { $0.hasPrefix("blobs/") }.count == (try source.allBlobs()).count)
    }

    @Test func saveIsReproducible() async throws {
        let (a, _, _) = try await savedArchive()
        let (b, _, _) = try await savedArchive()
        #expect(Digest.sha256(of: a) == Digest.sha256(of: b))
    }

    @Test func gzipCompressedArchiveLoads() async throws {
        let (archive, refs, _) = try await savedArchive()
        let target = TempDirectory("dst")
        let store = try LocalStore(path: target.path)
        let loaded = try await ArchiveLoader(store: store).load(source: DataSource(try Gzip.compress(archive)), sourceName: "archive.tar.gz")
        #expect(loaded.compactMap(\.reference) == refs)
    }

    @Test(.enabled(if: toolAvailable("zstd"))) func zstdCompressedArchiveLoads() async throws {
        let (archive, refs, _) = try await savedArchive()
        let dir = TempDirectory("zstd")
        try archive.write(to: URL(fileURLWithPath: dir.file("a.tar")))
        #expect(try runProcess("zstd", ["-q", dir.file("a.tar"), "-o", dir.file("a.tar.zst")]).status == 0)
        let store = try LocalStore(path: dir.file("store"))
        let loaded = try await ArchiveLoader(store: store).load(source: try FileSequenceSource(path: dir.file("a.tar.zst")), sourceName: "a.tar.zst")
        #expect(loaded.compactMap(\.reference) == refs)
    }

    /// A `docker save` archive in the legacy layout (Docker < 25): `<id>/layer.tar`, `<id>/json`,
    /// `<config>.json`, `manifest.json`, `repositories`, shared layers as symlinks.
    @Test func legacyDockerSaveLoadsWithRightDiffIDs() async throws {
        let layerA = try craftTar([.file("etc/a", Data("a".utf8))])
        let layerB = try craftTar([.file("etc/b", Data("b".utf8))])
        let diffA = Digest.sha256(of: layerA), diffB = Digest.sha256(of: layerB)
        func config(_ diffs: [Digest]) -> Data {
            Data(#"{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","config":{},"rootfs":{"type":"layers","diff_ids":[\#(diffs.map { "\"\($0)\"" }.joined(separator: ","))]},"history":[{"created_by":"a"},{"created_by":"b"}]}"#.utf8)
        }
        let config1 = config([diffA, diffB]), config2 = config([diffA])
        let id1 = Digest.sha256(of: config1).encoded, id2 = Digest.sha256(of: config2).encoded
        let manifest = #"[{"Config":"\#(id1).json","RepoTags":["legacy/one:1"],"Layers":["l1/layer.tar","l2/layer.tar"]},{"Config":"\#(id2).json","RepoTags":["legacy/two:1","localhost:5000/two:x"],"Layers":["l3/layer.tar"]}]"#
        let archive = try craftTar([
            .directory("l1"), .file("l1/VERSION", Data("1.0".utf8)), .file("l1/json", Data("{}".utf8)), .file("l1/layer.tar", layerA),
            .directory("l2"), .file("l2/layer.tar", layerB),
            .directory("l3"), .symlink("l3/layer.tar", target: "../l1/layer.tar"),
            .file("\(id1).json", config1), .file("\(id2).json", config2),
            .file("manifest.json", Data(manifest.utf8)),
            .file("repositories", Data(#"{"legacy/one":{"1":"l2"}}"#.utf8)),
        ])
        let dir = TempDirectory("legacy")
        let store = try LocalStore(path: dir.path)
        let loaded = try await ArchiveLoader(store: store).load(source: DataSource(archive), sourceName: "legacy.tar")
        #expect(loaded.compactMap { $0.reference?.familiarDescription } == ["legacy/one:1", "legacy/two:1", "localhost:5000/two:x"])
        let one = try store.findOne("legacy/one:1")
        #expect(one.id.encoded == id1)
        #expect(one.manifest.layers.map(\.digest) == [diffA, diffB])
        #expect(one.config.rootfs.diffIDs == [diffA, diffB])
        #expect(try store.findOne("legacy/two:1").manifest.layers.map(\.digest) == [diffA])
        // `json` and `VERSION` files are not kept.
        #expect(!store.hasBlob(Digest.sha256(of: Data("1.0".utf8))))
    }
}

@Suite struct HostileArchiveTests {
    /// The store starts with one image (unless `populated` is false, when the archive's own images
    /// would share its blobs) and must be byte-for-byte the same afterwards.
    func expectRejected(_ archive: Data, mentioning: String, populated: Bool = true) async throws {
        let dir = TempDirectory("hostile")
        let store = try LocalStore(path: dir.path)
        var options = SampleImages.Options()
        options.count = 1
        options.namePrefix = "other/app"
        options.baseLayerBytes = 1000
        if populated { try SampleImages(store: store).generate(options) }
        let before = try StoreSnapshot(store)
        do {
            _ = try await ArchiveLoader(store: store).load(source: DataSource(archive), sourceName: "bad.tar")
            Issue.record("a bad archive was accepted")
        } catch let error as TransferError {
            #expect(error.isVerificationFailure)
            #expect(error.description.contains(mentioning), "message: \(error)")
        }
        #expect(try StoreSnapshot(store) == before, "the store changed")
    }

    @Test func parentDirectoryNames() async throws {
        try await expectRejected(try craftTar([.file("../evil", Data("x".utf8))]), mentioning: "'..'")
    }

    @Test func absoluteNames() async throws {
        try await expectRejected(try craftTar([.file("/etc/evil", Data("x".utf8))]), mentioning: "absolute")
    }

    @Test func symlinkLeavingTheArchive() async throws {
        let config = Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:\#(String(repeating: "0", count: 64))"]}}"#.utf8)
        let manifest = #"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l/layer.tar"]}]"#
        try await expectRejected(try craftTar([.file("c.json", config), .symlink("l/layer.tar", target: "../../etc/passwd"),
                                         .file("manifest.json", Data(manifest.utf8))]), mentioning: "outside the archive")
    }

    @Test func deviceEntries() async throws {
        try await expectRejected(try craftTar([.device("dev/null")]), mentioning: "character device")
    }

    @Test func duplicateNames() async throws {
        try await expectRejected(try craftTar([.file("a", Data("1".utf8)), .file("a", Data("2".utf8))]), mentioning: "twice")
    }

    @Test func blobNotMatchingItsName() async throws {
        let name = "blobs/sha256/" + Digest.sha256(of: Data("expected".utf8)).encoded
        try await expectRejected(try craftTar([.file(name, Data("tampered".utf8))]), mentioning: "does not match its digest")
    }

    @Test func manifestNamingAnAbsentBlob() async throws {
        let (archive, _, _) = try await savedArchive(count: 1)
        // Rebuild the archive without its largest blob (the base layer).
        var entries: [(String, Data)] = []
        let reader = try TarReader(source: DataSource(archive))
        while let e = try reader.next() { entries.append((e.name, try reader.readAll(limit: 1 << 24))) }
        let largest = entries.max { $0.1.count < $1.1.count }!.0
        let rebuilt = try craftTar(entries.filter { $0.0 != largest }.map { CraftedEntry.file($0.0, $0.1) })
        try await expectRejected(rebuilt, mentioning: "does not contain", populated: false)
    }

    @Test func truncatedArchive() async throws {
        let (archive, _, _) = try await savedArchive(count: 1)
        try await expectRejected(archive.prefix(archive.count / 2), mentioning: "truncated")
    }

    @Test func malformedJSON() async throws {
        try await expectRejected(try craftTar([.file("manifest.json", Data("[{\"Config\": ".utf8))]), mentioning: "manifest.json")
        try await expectRejected(try craftTar([.file("oci-layout", Data("{}".utf8)), .file("index.json", Data("{\"manifests\": 5}".utf8))]),
                           mentioning: "index.json")
    }

    @Test func notAnArchiveAtAll() async throws {
        try await expectRejected(Data("hello, this is not a tar".utf8), mentioning: "bad.tar")
    }
}

@Suite struct HostileJSONTests {
    func load(_ entries: [CraftedEntry]) async throws -> any Error {
        let dir = TempDirectory("json")
        let store = try LocalStore(path: dir.path)
        do {
            _ = try await ArchiveLoader(store: store).load(source: DataSource(try craftTar(entries)), sourceName: "hostile.tar")
        } catch {
            #expect(try store.entries().isEmpty)
            return error
        }
        Issue.record("hostile JSON was accepted")
        return TransferError(.failure, "accepted")
    }

    @Test func deepNestingIsRefusedWithoutCrashing() async throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = try await load([.file("manifest.json", Data(deep.utf8))])
        #expect("\(error)".contains("manifest.json"))
    }

    @Test func hugeNumbersAndWrongTypes() async throws {
        let digest = "sha256:" + String(repeating: "a", count: 64)
        let huge = #"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(digest)","size":1e400}]}"#
        #expect("\(try await load([.file("oci-layout", Data("{}".utf8)), .file("index.json", Data(huge.utf8))]))".contains("index.json"))
        let negative = #"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(digest)","size":-5}]}"#
        #expect("\(try await load([.file("oci-layout", Data("{}".utf8)), .file("index.json", Data(negative.utf8))]))".contains("index.json"))
        let wrongType = #"[{"Config":5,"RepoTags":"x","Layers":{}}]"#
        #expect("\(try await load([.file("manifest.json", Data(wrongType.utf8))]))".contains("manifest.json"))
    }

    @Test func oversizedMetadataIsRefusedBeforeItIsHeldInMemory() async throws {
        let big = Data(repeating: UInt8(ascii: " "), count: 65 << 20)
        let error = try await load([.file("manifest.json", big)])
        #expect("\(error)".contains("limit"))
    }
}

/// Reads `data` and, once `after` bytes have gone out, calls `watch` on every later read: what
/// the store shows while the load is still going.
final class WatchedSource: ByteSource {
    let inner: DataSource
    let after: Int
    let watch: () -> Void
    private var sent = 0
    init(_ data: Data, after: Int, watch: @escaping () -> Void) { inner = DataSource(data); self.after = after; self.watch = watch }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if sent >= after { watch() }
        // Small reads, so that the load is watched many times on its way.
        let n = try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(buffer.count, 4096)]))
        sent += n
        return n
    }
    var positionDescription: String { inner.positionDescription }
}

@Suite struct StagedArchiveLoadTests {
    /// An archive's blobs wait in the staging area until every image in it checked out: while it is
    /// read, and after it is refused, `blobs/` and index.json are what they were; accepted, only
    /// what its images use is published.
    @Test func nothingIsVisibleBeforeTheEnd() async throws {
        let (archive, refs, _) = try await savedArchive(count: 2, multiArch: false)
        let dir = TempDirectory("staged")
        let store = try LocalStore(path: dir.path)
        let before = try StoreSnapshot(store)
        var seenDuring: [StoreSnapshot] = []
        // Half way through, and again at the very end of the stream.
        let watched = WatchedSource(archive, after: archive.count / 2) { if let s = try? StoreSnapshot(store) { seenDuring.append(s) } }
        let loaded = try await ArchiveLoader(store: store).load(source: watched, sourceName: "archive")
        #expect(!seenDuring.isEmpty && seenDuring.allSatisfy { $0 == before }, "blobs or names were visible before the archive was read to its end")
        #expect(loaded.compactMap(\.reference) == refs)
        // Published: exactly the blobs the two images need, each once.
        var needed = Set<Digest>()
        for ref in refs { needed.formUnion(try store.contentClosure(of: try store.findOne(ref.description).entry, requireAll: true).required) }
        #expect(Set(try store.allBlobs().keys) == needed)
        let ingest = try FileManager.default.contentsOfDirectory(atPath: store.root + "/.airgap/ingest")
        #expect(ingest.allSatisfy { !$0.hasPrefix("stage-") }, "\(ingest)")

        // The same archive with its last layer's bytes changed: refused at that entry, nothing kept.
        let other = TempDirectory("staged-bad")
        let fresh = try LocalStore(path: other.path)
        let untouched = try StoreSnapshot(fresh)
        var damaged = archive
        let layer = try #require(try store.allBlobs().max { $0.value < $1.value })
        let bytes = try store.readBlob(layer.key, limit: 1 << 30)
        let at = try #require(damaged.range(of: bytes.prefix(512)))
        damaged[at.lowerBound + 100] ^= 0xff
        await #expect(throws: (any Error).self) { _ = try await ArchiveLoader(store: fresh).load(source: DataSource(damaged), sourceName: "damaged") }
        #expect(try StoreSnapshot(fresh) == untouched)
        let left = try FileManager.default.contentsOfDirectory(atPath: fresh.root + "/.airgap/ingest")
        #expect(left.allSatisfy { !$0.hasPrefix("stage-") && !$0.hasPrefix("tmp-") }, "\(left)")
    }
}

@Suite struct ArchiveCarriesWhatItNamesTests {
    /// An archive names only what it carries: one holding nothing but an index.json that points a
    /// name at a manifest already in the store (an older image, say) is refused, as podman refuses
    /// it, and no tag moves.
    @Test func anIndexAloneCannotMoveATagOntoStoredContent() async throws {
        let dir = TempDirectory("retag")
        let store = try LocalStore(path: dir.path)
        var options = SampleImages.Options()
        options.count = 2
        let refs = try SampleImages(store: store).generate(options)
        let target = try store.findOne(refs[1].description).entry
        let before = try StoreSnapshot(store)
        var entry = Descriptor(mediaType: target.mediaType, digest: target.digest, size: target.size)
        entry.annotations = [Descriptor.refNameAnnotation: refs[0].description, Descriptor.containerdNameAnnotation: refs[0].description]
        let index = try CanonicalJSON.encode(ImageIndex(manifests: [entry]))
        let archive = try craftTar([.file("oci-layout", Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8)), .file("index.json", index)])
        do {
            _ = try await ArchiveLoader(store: store).load(source: DataSource(archive), sourceName: "retag.tar")
            Issue.record("an archive that carries nothing moved a tag")
        } catch let error as TransferError {
            #expect(error.isVerificationFailure)
            #expect(error.description.contains("does not contain"), "\(error)")
        }
        #expect(try StoreSnapshot(store) == before)
    }
}

@Suite struct CompressedDockerLayerTests {
    /// A Docker archive's compressed layer must unpack to the config's diff_id, as `docker load`
    /// and podman check: one that unpacks to something else is refused and nothing is kept.
    @Test func aCompressedLayerIsCheckedAgainstItsDiffID() async throws {
        let layer = try craftTar([.file("hello.txt", Data("the layer the config describes\n".utf8))])
        let other = try craftTar([.file("hello.txt", Data("another layer altogether\n".utf8))])
        func archive(_ carried: Data) throws -> Data {
            let config = Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["\#(Digest.sha256(of: layer))"]}}"#.utf8)
            let manifest = Data(#"[{"Config":"config.json","RepoTags":["test/gz:1"],"Layers":["layer.tar.gz"]}]"#.utf8)
            return try craftTar([.file("config.json", config), .file("layer.tar.gz", try Gzip.compress(carried)), .file("manifest.json", manifest)])
        }
        let dir = TempDirectory("gz-layer")
        let store = try LocalStore(path: dir.path)
        let before = try StoreSnapshot(store)
        do {
            _ = try await ArchiveLoader(store: store).load(source: DataSource(try archive(other)), sourceName: "swapped.tar")
            Issue.record("a compressed layer that is not the config's was loaded")
        } catch let error as TransferError {
            #expect(error.isVerificationFailure && error.description.contains("unpacks to digest \(Digest.sha256(of: other))"), "\(error)")
        }
        #expect(try StoreSnapshot(store) == before)
        let loaded = try await ArchiveLoader(store: store).load(source: DataSource(try archive(layer)), sourceName: "good.tar")
        #expect(loaded.compactMap(\.reference).map(\.description) == ["docker.io/test/gz:1"])
    }
}
