import AirgapContent
import AirgapOCI
import AirgapStore
import AirgapTar
import AirgapTestSupport
@testable import AirgapTransfer
import Foundation
import Testing

/// `copy oci-archive:FILE …` / `docker-archive:FILE …` read the archive in place: one pass hashes
/// it, then each blob is read again from its byte range through the sink's verifier.
@Suite struct ArchiveSourceTests {
    /// Copies every named image of the archive at `path` into a new store, in place.
    func copyInPlace(_ path: String, into dir: TempDirectory) async throws -> LocalStore {
        defer { withExtendedLifetime(dir) {} }
        let store = try LocalStore(path: dir.path)
        let source = try #require(try await ArchiveSource.open(path), "the archive was not read in place")
        let plan = try await CopyPlanner(source: source, allowAbsent: true).plan(try source.requests(nil, platforms: [], allPlatforms: true))
        try await CopyEngine(source: source, sink: StoreSink(store: store)).run(plan)
        return store
    }

    /// What `image load` makes of the same bytes: the reference the in-place copy must equal.
    func loaded(_ data: Data) async throws -> (LocalStore, TempDirectory) {
        let dir = TempDirectory("loaded")
        let store = try LocalStore(path: dir.path)
        _ = try await ArchiveLoader(store: store).load(source: DataSource(data), sourceName: "archive")
        return (store, dir)
    }

    func sameImages(_ a: LocalStore, _ b: LocalStore) throws {
        let left = try a.images().map { "\($0.reference?.description ?? "-") \($0.entry.digest)" }.sorted()
        let right = try b.images().map { "\($0.reference?.description ?? "-") \($0.entry.digest)" }.sorted()
        #expect(!left.isEmpty && left == right)
        #expect(try a.allBlobs() == (try b.allBlobs()))
    }

    @Test func anArchiveFileIsCopiedInPlaceAsImageLoadReadsIt() async throws {
        let (archive, _, keep) = try await savedArchive(count: 3, multiArch: true)
        defer { withExtendedLifetime(keep) {} }
        let dir = TempDirectory("in-place")
        let path = dir.file("saved.tar")
        try archive.write(to: URL(fileURLWithPath: path))
        let (reference, keepLoaded) = try await loaded(archive)
        defer { withExtendedLifetime(keepLoaded) {} }
        let target = TempDirectory("target")
        try sameImages(try await copyInPlace(path, into: target), reference)

        // The same entries re-encoded by Python with a pax header before each one (where the data
        // starts is no fixed distance from the header): still read in place, to the same images.
        let pax = dir.file("pax.tar")
        let repack = try runProcess("/usr/bin/python3", ["-c", """
            import tarfile, sys
            src = tarfile.open(sys.argv[1]); dst = tarfile.open(sys.argv[2], 'w', format=tarfile.PAX_FORMAT)
            for m in src.getmembers():
                m.pax_headers = {'comment': 'x' * (700 + len(m.name))}
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
            dst.close()
            """, path, pax])
        #expect(repack.status == 0, "\(repack.stderr)")
        let paxTarget = TempDirectory("pax-target")
        defer { withExtendedLifetime(paxTarget) {} }
        try sameImages(try await copyInPlace(pax, into: paxTarget), reference)
    }

    /// Docker's legacy layout (`<id>/layer.tar`, links between layers): the manifests a Docker
    /// archive lacks are written in memory, the layers read in place.
    @Test func aLegacyDockerSaveIsCopiedInPlace() async throws {
        let layerA = try craftTar([.file("etc/a", Data("a".utf8))])
        let diffA = Digest.sha256(of: layerA)
        let config = Data(#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["\#(diffA)","\#(diffA)"]}}"#.utf8)
        let id = Digest.sha256(of: config).encoded
        let archive = try craftTar([
            .directory("l1"), .file("l1/layer.tar", layerA),
            .directory("l2"), .symlink("l2/layer.tar", target: "../l1/layer.tar"),
            .file("\(id).json", config),
            .file("manifest.json", Data(#"[{"Config":"\#(id).json","RepoTags":["legacy/one:1"],"Layers":["l1/layer.tar","l2/layer.tar"]}]"#.utf8)),
        ])
        let dir = TempDirectory("legacy-in-place")
        let path = dir.file("legacy.tar")
        try archive.write(to: URL(fileURLWithPath: path))
        let (reference, keep) = try await loaded(archive)
        defer { withExtendedLifetime(keep) {} }
        let target = TempDirectory("legacy-target")
        defer { withExtendedLifetime(target) {} }
        let copied = try await copyInPlace(path, into: target)
        try sameImages(copied, reference)
        #expect(try copied.findOne("legacy/one:1").manifest.layers.map(\.digest) == [diffA, diffA])
    }

    /// The file changes between the pass that checked it and the copy that reads it again: the
    /// sink's verifier refuses the changed blob, and the destination names nothing.
    @Test func anArchiveChangedAfterItsPassIsCaughtWhenCopied() async throws {
        let (archive, _, keep) = try await savedArchive(count: 2)
        defer { withExtendedLifetime(keep) {} }
        let dir = TempDirectory("changed")
        let path = dir.file("saved.tar")
        try archive.write(to: URL(fileURLWithPath: path))
        let source = try #require(try await ArchiveSource.open(path))
        let plan = try await CopyPlanner(source: source, allowAbsent: true).plan(try source.requests(nil, platforms: [], allPlatforms: true))
        let largest = try #require(plan.blobs.max { $0.descriptor.size < $1.descriptor.size })
        let segments = try #require(source.fileSegments(largest.descriptor))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64(segments.segments[0].offset + segments.length / 2))
        try handle.write(contentsOf: Data([0x5a]))
        try handle.close()
        let target = TempDirectory("changed-target")
        defer { withExtendedLifetime(target) {} }
        let store = try LocalStore(path: target.path)
        await #expect(throws: (any Error).self) { try await CopyEngine(source: source, sink: StoreSink(store: store)).run(plan) }
        #expect(try store.entries().isEmpty)
        #expect(!store.hasBlob(largest.descriptor.digest))
    }

    /// What the image checks read again from the file (a layer inflated for its diff_id) is
    /// hashed on the way: bytes changed after the pass fail at the stream's end, and the
    /// compression's magic comes from the pass, not from a second read.
    @Test func whatTheChecksReadAgainIsVerified() throws {
        let dir = TempDirectory("stream-check")
        let path = dir.file("a.tar")
        let content = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try (Data(count: 512) + content).write(to: URL(fileURLWithPath: path))
        let digest = Digest.sha256(of: content)
        let entries = ArchiveFileEntries(path: path)
        entries.record(digest, offset: 512, size: Int64(content.count), head: Array(content.prefix(6)))
        try drain(try entries.stream(digest)) // unchanged: reads to its end and passes
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 512 + 50_000)
        try handle.write(contentsOf: Data([0]))
        try handle.seek(toOffset: 512)
        try handle.write(contentsOf: Data([0x1f, 0x8b]))
        try handle.close()
        #expect(throws: ContentError.self) { try drain(try entries.stream(digest)) }
        #expect(try entries.head(digest) == Array(content.prefix(6)))
    }

    /// A compressed archive has no byte ranges to read again: it is not opened in place (copy
    /// reads it once into a temporary layout instead).
    @Test func aCompressedArchiveIsNotReadInPlace() async throws {
        let (archive, _, keep) = try await savedArchive(count: 1)
        defer { withExtendedLifetime(keep) {} }
        let dir = TempDirectory("gz")
        let path = dir.file("saved.tar")
        try archive.write(to: URL(fileURLWithPath: path))
        #expect(try runProcess("gzip", ["-k", path]).status == 0)
        #expect(try await ArchiveSource.open(path + ".gz") == nil)
    }
}

/// A staged copy into the store writes its new index.json before it publishes a blob: a disk
/// that fills up after the blobs were staged fails the copy with `blobs/` and index.json as
/// they were, not with published blobs that nothing names.
@Suite(.serialized) struct PublishOrderTests {
    /// Forwards to the store's staged sink, and fills the disk just before the names.
    final class FillingSink: ContentSink, @unchecked Sendable {
        let inner: StoreSink
        let filler: String
        init(_ inner: StoreSink, filler: String) { self.inner = inner; self.filler = filler }
        var description: String { inner.description }
        var order: SinkOrder { inner.order }
        func begin(_ plan: CopyPlan) async throws { try await inner.begin(plan) }
        func holds(_ d: Descriptor, for name: Reference) async throws -> Bool { try await inner.holds(d, for: name) }
        func blobWriter(_ d: Descriptor, for name: Reference) async throws -> any BlobWriter { try await inner.blobWriter(d, for: name) }
        func putDocument(_ d: Descriptor, _ data: Data, for name: Reference) async throws { try await inner.putDocument(d, data, for: name) }
        func commit(_ plan: CopyPlan) async throws {
            let fd = open(filler, O_WRONLY | O_CREAT, 0o644)
            let chunk = [UInt8](repeating: 0, count: 1 << 16)
            while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
            close(fd)
            try await inner.commit(plan)
        }
        func abort() async { await inner.abort() }
    }

    @Test func aDiskThatFillsBeforeTheNamesLeavesNothingVisible() async throws {
        let dir = TempDirectory("publish-order")
        let mountPoint = dir.file("disk")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        guard try runProcess("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mountPoint]).status == 0 else {
            print("skipped: cannot mount a tmpfs here; the publish order is untested")
            return
        }
        defer { _ = try? runProcess("umount", ["-l", mountPoint]) }
        let source = try LocalStore(path: dir.file("source"))
        var options = SampleImages.Options()
        options.count = 2
        options.baseLayerBytes = 64 << 10
        options.appLayerBytes = 16 << 10
        _ = try SampleImages(store: source).generate(options)
        let store = try LocalStore(path: mountPoint + "/store")
        let before = try StoreSnapshot(store)
        let sourceEndpoint = StoreSource(store: source)
        let plan = try await CopyPlanner(source: sourceEndpoint).plan(try source.images().map { CopyRequest(reference: $0.reference!, allPlatforms: true, pinned: $0.entry) })
        let sink = FillingSink(StoreSink(store: store, staged: true), filler: mountPoint + "/filler")
        await #expect(throws: (any Error).self) { try await CopyEngine(source: sourceEndpoint, sink: sink).run(plan) }
        #expect(try StoreSnapshot(store) == before, "blobs were published that nothing names")
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.root).filter { $0.hasPrefix("index.json.tmp") }.isEmpty)
        // With room again, the same copy goes through.
        unlink(mountPoint + "/filler")
        try await CopyEngine(source: sourceEndpoint, sink: StoreSink(store: store, staged: true)).run(plan)
        #expect(try store.images().count == 2)
    }
}
