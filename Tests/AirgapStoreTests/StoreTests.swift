import AirgapContent
import AirgapOCI
@testable import AirgapStore
import AirgapTestSupport
import AirgapTransfer
import Foundation
import Testing

@Suite struct IngestTests {
    @Test func commitsVerifiedBlobAndDeduplicates() throws {
        let dir = TempDirectory("store")
        let store = try LocalStore(path: dir.path)
        let data = Data(repeating: 7, count: 100_000)
        let digest = Digest.sha256(of: data)
        let session = try store.beginIngest(expected: digest, size: Int64(data.count), source: "test")
        try session.write(data)
        #expect(!store.hasBlob(digest), "nothing is visible before commit")
        #expect(try session.commit() == digest)
        #expect(session.addedNewBlob)
        #expect(store.blobSize(digest) == 100_000)
        let again = try store.ingestReportingNew(data, expected: digest, source: "again")
        #expect(again.added == false)
    }

    @Test func wrongDigestLeavesNothingBehind() throws {
        let dir = TempDirectory("store")
        let store = try LocalStore(path: dir.path)
        let claimed = Digest.sha256(of: Data("other".utf8))
        #expect(throws: ContentError.self) { try store.ingest(Data("actual".utf8), expected: claimed, source: "test") }
        #expect(!store.hasBlob(claimed))
        #expect(try store.allBlobs().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/.airgap/ingest").isEmpty)
    }

    @Test func shortStreamIsRejected() throws {
        let dir = TempDirectory("store")
        let store = try LocalStore(path: dir.path)
        let data = Data(repeating: 1, count: 1000)
        let session = try store.beginIngest(expected: Digest.sha256(of: data), size: 1000, source: "short stream")
        try session.write(data.prefix(600))
        do { try session.commit(); Issue.record("a short stream was committed") } catch let error as ContentError {
            #expect(error.description.contains("600 bytes where 1000"))
        }
        #expect(try store.allBlobs().isEmpty)
    }

    @Test func aFullLengthButTornPartialStartsOver() throws {
        let dir = TempDirectory("store")
        let store = try LocalStore(path: dir.path)
        let data = Data(repeating: 7, count: 4096)
        let digest = Digest.sha256(of: data)
        // What a power loss can leave: the right length, a zero-filled tail.
        var torn = data
        torn.replaceSubrange(2048..<4096, with: Data(count: 2048))
        try torn.write(to: URL(fileURLWithPath: "\(dir.path)/.airgap/ingest/sha256-\(digest.encoded).partial"))
        let session = try store.beginIngest(expected: digest, size: 4096, resume: true, source: "torn")
        #expect(session.resumedFrom == 0)
        try session.write(data)
        #expect(try session.commit() == digest)
    }

    @Test func tooManyBytesFailEarly() throws {
        let dir = TempDirectory("store")
        let store = try LocalStore(path: dir.path)
        let session = try store.beginIngest(expected: Digest.sha256(of: Data([1])), size: 1, source: "long stream")
        #expect(throws: ContentError.self) { try session.write(Data([1, 2])) }
        session.abandon()
    }

    @Test func resumesAPartialDownload() throws {
        let dir = TempDirectory("store")
        let store = try LocalStore(path: dir.path)
        let data = SampleImages.pseudoRandom(seed: "resume", count: 300_000)
        let digest = Digest.sha256(of: data)
        let first = try store.beginIngest(expected: digest, size: Int64(data.count), resume: true, source: "first")
        try first.write(data.prefix(123_456))
        first.abandon(keepForResume: true)
        let second = try store.beginIngest(expected: digest, size: Int64(data.count), resume: true, source: "second")
        #expect(second.resumedFrom == 123_456)
        try second.write(data.dropFirst(123_456))
        #expect(try second.commit() == digest)
    }

    @Test func concurrentIngestOfTheSameBlob() async throws {
        let dir = TempDirectory("store")
        let path = dir.path
        _ = try LocalStore(path: path)
        let data = SampleImages.pseudoRandom(seed: "concurrent", count: 2_000_000)
        let digest = Digest.sha256(of: data)
        let results = try await withThrowingTaskGroup(of: Digest.self) { group in
            for i in 0..<8 {
                group.addTask {
                    let store = try LocalStore(path: path)
                    let session = try store.beginIngest(expected: digest, size: Int64(data.count), resume: true, source: "writer \(i)")
                    var offset = 0
                    while offset < data.count {
                        let end = min(offset + 65_536, data.count)
                        try session.write(data[offset..<end])
                        offset = end
                    }
                    return try session.commit()
                }
            }
            return try await group.reduce(into: [Digest]()) { $0.append($1) }
        }
        #expect(results.count == 8 && results.allSatisfy { $0 == digest })
        let store = try LocalStore(path: path)
        #expect(try store.readBlob(digest, limit: 4 << 20) == data)
        #expect(try store.allBlobs().count == 1)
    }
}

@Suite struct TagAndGarbageTests {
    func sampleStore(_ dir: TempDirectory, count: Int = 2) throws -> (LocalStore, [Reference]) {
        let store = try LocalStore(path: dir.path)
        var options = SampleImages.Options()
        options.count = count
        let refs = try SampleImages(store: store).generate(options)
        return (store, refs)
    }

    @Test func tagAddsANameWithoutNewBlobs() throws {
        let dir = TempDirectory("store")
        let (store, refs) = try sampleStore(dir)
        let before = try store.allBlobs()
        try store.tag(source: refs[0].familiarDescription, target: try Reference(parsing: "localhost:5000/copy:2"))
        #expect(try store.allBlobs() == before)
        let copy = try store.findOne("localhost:5000/copy:2")
        #expect(copy.id == (try store.findOne(refs[0].description)).id)
    }

    @Test func removeKeepsSharedBaseUntilTheLastUser() throws {
        let dir = TempDirectory("store")
        let (store, refs) = try sampleStore(dir)
        let first = try store.findOne(refs[0].description)
        let second = try store.findOne(refs[1].description)
        let base = first.manifest.layers[0].digest
        #expect(second.manifest.layers[0].digest == base, "sample images share their base layer")
        let output = try store.remove([refs[0].description], force: false)
        #expect(output.first == "Untagged: sample/app-1:1.0")
        #expect(store.hasBlob(base))
        #expect(!store.hasBlob(first.manifest.layers[1].digest))
        #expect(!store.hasBlob(first.id))
        _ = try store.remove([refs[1].description], force: false)
        #expect(try store.allBlobs().isEmpty)
    }

    @Test func removeByIDWithSeveralNamesNeedsForce() throws {
        let dir = TempDirectory("store")
        let (store, refs) = try sampleStore(dir, count: 1)
        try store.tag(source: refs[0].description, target: try Reference(parsing: "other/name:1"))
        let id = try store.findOne(refs[0].description).id.shortID
        #expect(throws: StoreError.self) { try store.remove([id], force: false) }
        #expect(try store.images().count == 2)
        let output = try store.remove([id], force: true)
        #expect(output.filter { $0.hasPrefix("Untagged") }.count == 2)
        #expect(try store.images().isEmpty)
    }

    @Test func diskUsageCountsSharedBlobsOnce() throws {
        let dir = TempDirectory("store")
        let (store, _) = try sampleStore(dir, count: 3)
        let usage = try store.diskUsage()
        let blobs = try store.allBlobs()
        #expect(usage.totalBytes == blobs.values.reduce(0, +))
        #expect(usage.unreferencedBytes == 0)
        #expect(usage.perImage.count == 3)
        let base = try store.images()[0].manifest.layers[0]
        // SIZE is unpacked, as Docker counts it: the file bytes GNU tar lists in the layer.
        let listing = try runProcess("/usr/bin/tar", ["-tvzf", store.blobPath(base.digest)]).stdout
        let fileBytes = listing.split(separator: "\n").filter { $0.hasPrefix("-") }
            .compactMap { Int64($0.split(separator: " ", omittingEmptySubsequences: true)[2]) }.reduce(0, +)
        #expect(fileBytes > 0 && store.unpackedSizes().size(of: base) == fileBytes)
        for p in usage.perImage {
            #expect(p.sharedSize == fileBytes)
            #expect(p.size == p.sharedSize + p.uniqueSize)
            #expect(p.compressedSize == p.image.manifest.layers.reduce(0) { $0 + $1.size })
        }
        #expect(usage.unpackedBytes == usage.perImage[0].sharedSize + usage.perImage.reduce(0) { $0 + $1.uniqueSize })
    }

    /// A layer that claims far more than it stores (1 GiB of zeros in ~1 MB of gzip) is not
    /// inflated to the end for a listing: it counts its stored size (a full count would say
    /// 1 GiB), measured once.
    @Test func aCompressionBombCountsItsStoredSize() throws {
        let dir = TempDirectory("bomb")
        let store = try LocalStore(path: dir.file("store"))
        #expect(try runProcess("/usr/bin/truncate", ["-s", "1G", dir.file("zeros")]).status == 0)
        #expect(try runProcess("/usr/bin/tar", ["-I", "gzip -1", "-cf", dir.file("bomb.tgz"), "-C", dir.path, "zeros"]).status == 0)
        let data = try Data(contentsOf: URL(fileURLWithPath: dir.file("bomb.tgz")))
        let digest = try store.ingest(data, source: "test")
        let layer = Descriptor(mediaType: .ociLayerGzip, digest: digest, size: Int64(data.count))
        #expect(store.unpackedSizes().size(of: layer) == layer.size)
        let sizes = try String(contentsOfFile: dir.file("store/.airgap/unpacked-sizes.json"), encoding: .utf8)
        #expect(sizes.contains(digest.description), "the fallback is kept, so it is not measured again")
    }

    /// Messages name what the user gave, never this tool's temp files.
    @Test func diskErrorsNameTheUsersPath() {
        #expect(StoreError.posix(path: "/s/.airgap/ingest/abc", code: ENOSPC).description.contains("holding /s ("))
        #expect(StoreError.posix(path: "/o/b.tar.partial-42", code: ENOSPC).description.contains("holding /o/b.tar ("))
        #expect(StoreError.posix(path: "/o/i.json.tmp-42-77", code: EACCES).description.hasPrefix("cannot write /o/i.json:"))
        #expect(StoreError.posix(path: "/o/my.tmp-file.tar", code: EROFS).description.hasPrefix("cannot write /o/my.tmp-file.tar:"))
    }

    @Test func pruneRemovesUnreferencedBlobsAndAllWithFlag() throws {
        let dir = TempDirectory("store")
        let (store, _) = try sampleStore(dir, count: 2)
        let stray = try store.ingest(Data("left over from a crash".utf8), source: "stray")
        let dangling = try store.prune(all: false)
        #expect(dangling.reclaimed == 22)
        #expect(!store.hasBlob(stray))
        #expect(try store.images().count == 2)
        let all = try store.prune(all: true)
        #expect(all.removed.count == 2)
        #expect(try store.allBlobs().isEmpty)
    }

    @Test func tagNeverPointsAtMissingContent() throws {
        let dir = TempDirectory("store")
        let store = try LocalStore(path: dir.path)
        let manifest = ImageManifest(mediaType: .ociManifest,
                                     config: Descriptor(mediaType: .ociConfig, digest: Digest.sha256(of: Data("absent".utf8)), size: 6),
                                     layers: [])
        let data = try CanonicalJSON.encode(manifest)
        let digest = try store.ingest(data, source: "manifest")
        #expect(throws: StoreError.self) {
            try store.setTag(try Reference(parsing: "x:1"), to: Descriptor(mediaType: .ociManifest, digest: digest, size: Int64(data.count)))
        }
        #expect(try store.entries().isEmpty)
    }
}

/// The temporary file a bundle's header documents wait in between being encoded and written.
@Suite struct SpillFileTests {
    @Test(arguments: [true, false]) func piecesComeBackAsWrittenAndNoNameIsLeft(nameless: Bool) throws {
        let dir = TempDirectory("spill")
        let spill = try SpillFile(in: dir.path, nameless: nameless)
        let first = try spill.append { write in try write(Data("one".utf8)); try write(Data(repeating: 7, count: 3 << 20)) }
        let second = try spill.append { write in try write(Data("two".utf8)) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
        #expect(first.size == 3 + 3 << 20 && second.offset == first.size)
        #expect(first.digest == Digest.sha256(of: Data("one".utf8) + Data(repeating: 7, count: 3 << 20)))
        var back = Data()
        try spill.read(second) { back.append(contentsOf: $0) }
        #expect(back == Data("two".utf8))
        back = Data()
        try spill.read(first) { back.append(contentsOf: $0) }
        #expect(back.count == first.size && Digest.sha256(of: back) == first.digest)
    }

    /// Bytes changed behind the writer's back (another process of the same user, a failing disk)
    /// are caught when read back, before the tar is finished.
    @Test func bytesChangedAfterWritingAreRefused() throws {
        let dir = TempDirectory("spill")
        let spill = try SpillFile(in: dir.path)
        let piece = try spill.append { write in try write(Data("{\"images\":[]}".utf8)) }
        #expect(pwrite(spill.fd, "X", 1, 3) == 1)
        let error = #expect(throws: ContentError.self) { try spill.read(piece) { _ in } }
        #expect(error?.message.contains("changed between being written and being read back") == true)
    }

    /// A plan's documents past its memory budget live in the spill: they come back as kept, and a
    /// byte changed on the disk in between is refused by digest, not handed on.
    @Test func planDocumentsInASpillFileComeBackOrAreRefused() throws {
        let dir = TempDirectory("spill")
        let spill = try SpillFile(in: dir.path)
        var documents = PlanDocuments(spill: spill)
        documents.memoryBudget = 0
        let manifests = (0..<50).map { Data("{\"schemaVersion\":2,\"n\":\($0)}".utf8) }
        for data in manifests { try documents.keep(data, for: Digest.sha256(of: data)) }
        #expect(spill.size == Int64(manifests.reduce(0) { $0 + $1.count }), "every document went to the file")
        for data in manifests { #expect(try documents.bytes(Digest.sha256(of: data)) == data) }
        #expect(pwrite(spill.fd, "X", 1, 5) == 1)
        let error = #expect(throws: ContentError.self) { try documents.bytes(Digest.sha256(of: manifests[0])) }
        #expect(error?.message.contains("changed between being written and being read back") == true)
        #expect(try documents.bytes(Digest.sha256(of: manifests[1])) == manifests[1], "the rest of the file is still good")
    }
}

/// Only a resumable ingest uses the per-digest partial file; any other ingest's temp file is its
/// own, so one a killed run left is removed when the store is next opened, not kept for a week.
@Suite struct IngestTempFileTests {
    @Test func onlyAResumableIngestKeepsAPartialFile() throws {
        let dir = TempDirectory("ingest-temp")
        let store = try LocalStore(path: dir.path)
        let data = Data(repeating: 1, count: 1000)
        let digest = Digest.sha256(of: data)
        let ingest = store.root + "/.airgap/ingest"
        let plain = try store.beginIngest(expected: digest, size: 1000, source: "test")
        try plain.write(data.prefix(10))
        #expect(try FileManager.default.contentsOfDirectory(atPath: ingest).allSatisfy { $0.hasPrefix("tmp-") })
        plain.abandon()
        let resumable = try store.beginIngest(expected: digest, size: 1000, resume: true, source: "test")
        try resumable.write(data.prefix(10))
        #expect(try FileManager.default.contentsOfDirectory(atPath: ingest).contains { $0.hasSuffix(".partial") })
        resumable.abandon(keepForResume: true)
    }
}

/// What a killed run left in `.airgap/ingest` goes when the store is next opened, but not a temp
/// file younger than a minute: its creator may not have locked it yet (an `image ls` during a
/// load once removed a staged blob's temp file that way).
@Suite struct AbandonedTempFileTests {
    @Test func onlyTempFilesOlderThanAMinuteAreCollected() throws {
        let dir = TempDirectory("abandoned")
        let store = try LocalStore(path: dir.path)
        let young = store.root + "/.airgap/ingest/tmp-1-young"
        let old = store.root + "/.airgap/ingest/tmp-1-old"
        let oldStage = store.root + "/.airgap/ingest/stage-1-old"
        for path in [young, old] { #expect(FileManager.default.createFile(atPath: path, contents: Data("x".utf8))) }
        try FileManager.default.createDirectory(atPath: oldStage, withIntermediateDirectories: false)
        let twoMinutesAgo = Date().addingTimeInterval(-120)
        for path in [old, oldStage] { try FileManager.default.setAttributes([.modificationDate: twoMinutesAgo], ofItemAtPath: path) }
        _ = try LocalStore(path: dir.path)
        #expect(FileManager.default.fileExists(atPath: young))
        #expect(!FileManager.default.fileExists(atPath: old))
        #expect(!FileManager.default.fileExists(atPath: oldStage))
    }
}
