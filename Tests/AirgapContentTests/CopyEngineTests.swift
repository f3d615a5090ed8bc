import AirgapContent
import AirgapOCI
import Foundation
import Testing

let amd64 = Platform(os: "linux", architecture: "amd64")
let arm64 = Platform(os: "linux", architecture: "arm64")
let s390x = Platform(os: "linux", architecture: "s390x")

@Suite struct PlatformPolicyTests {
    func threePlatforms() throws -> (FakeSource, Reference, [Descriptor], Descriptor) {
        let source = FakeSource()
        let base = source.blob(Data("base".utf8))
        let images = try [amd64, arm64, s390x].map { try source.image($0, layers: ["app-\($0.architecture)"], shared: base) }
        let index = try source.index(Array(zip(images, [amd64, arm64, s390x])))
        return (source, try source.tag("reg.example/team/app:1", index), images, index)
    }

    @Test func onePlatformOfAnIndexIsThatPlatformsManifest() async throws {
        let (source, ref, images, index) = try threePlatforms()
        let plan = try await CopyPlanner(source: source).plan([CopyRequest(reference: ref, platforms: [arm64])])
        let image = try #require(plan.images.first)
        #expect(image.top.digest == images[1].digest && image.top.platform == arm64)
        #expect(image.originalIndexDigest == index.digest)
        #expect(image.manifests.map(\.digest) == [images[1].digest])
        #expect((try plan.documents.bytes(index.digest)) == nil, "the index itself does not travel")
        #expect(plan.blobs.count == 3) // config, base, app
    }

    @Test func aSubsetIsAFilteredIndexThatNamesItsOrigin() async throws {
        let (source, ref, images, index) = try threePlatforms()
        let plan = try await CopyPlanner(source: source).plan([CopyRequest(reference: ref, platforms: [amd64, s390x])])
        let image = try #require(plan.images.first)
        #expect(image.top.mediaType == .ociIndex && image.top.digest != index.digest)
        let filtered = try ImageIndex.decode(try #require((try plan.documents.bytes(image.top.digest))))
        #expect(filtered.manifests.map(\.digest) == [images[0].digest, images[2].digest])
        #expect(filtered.annotations?[CopyPlanner.originalIndexAnnotation] == index.digest.description)
        #expect(image.manifests.last?.digest == image.top.digest, "children first, the index last")
        #expect(Set(plan.blobs.map(\.descriptor.digest)).count == plan.blobs.count, "the shared base once")
        #expect(plan.blobs.count == 5)
    }

    @Test func everyPlatformKeepsTheIndexByteForByte() async throws {
        let (source, ref, _, index) = try threePlatforms()
        let plan = try await CopyPlanner(source: source).plan([CopyRequest(reference: ref, allPlatforms: true)])
        #expect(plan.images[0].top == index)
        #expect((try plan.documents.bytes(index.digest)) == source.documents[index.digest])
    }

    @Test func aMissingPlatformNamesWhatIsOffered() async throws {
        let (source, ref, _, _) = try threePlatforms()
        await #expect(throws: ContentError.self) {
            try await CopyPlanner(source: source).plan([CopyRequest(reference: ref, platforms: [Platform(os: "windows", architecture: "amd64")])])
        }
        do { _ = try await CopyPlanner(source: source).plan([CopyRequest(reference: ref, platforms: [Platform(os: "windows", architecture: "amd64")], origin: "images.yaml:3")]) }
        catch { #expect("\(error)".hasPrefix("images.yaml:3: ") && "\(error)".contains("offers linux/amd64, linux/arm64, linux/s390x")) }
    }

    @Test func aTagPinnedByDigestIsNamedByItsTag() async throws {
        let source = FakeSource()
        let image = try source.image(amd64, layers: ["x"])
        source.tags["reg.example/app@\(image.digest)"] = image
        let ref = try Reference(parsing: "reg.example/app:2.4@\(image.digest)")
        source.tags[ref.description] = image
        let plan = try await CopyPlanner(source: source).plan([CopyRequest(reference: ref)])
        #expect(plan.images[0].name.description == "reg.example/app:2.4")
        #expect(Naming.repoTag(plan.images[0].name) == "reg.example/app:2.4")
    }
}

@Suite struct RealInputTests {
    @Test func layersNullIsAZeroLayerImage() async throws {
        let source = FakeSource()
        let config = source.blob(Data(#"{"architecture":"amd64","os":"linux"}"#.utf8), .ociConfig)
        let bytes = Data(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(config.digest)","size":\#(config.size)},"layers":null}"#.utf8)
        let manifest = source.document(bytes, .ociManifest)
        let ref = try source.tag("reg.example/empty:1", manifest)
        let plan = try await CopyPlanner(source: source).plan([CopyRequest(reference: ref)])
        #expect(plan.images[0].platforms[0].layers.isEmpty)
        #expect((try plan.documents.bytes(manifest.digest)) == bytes, "the bytes travel as they are, null included")
        let sink = MemorySink()
        try await CopyEngine(source: source, sink: sink).run(plan)
        #expect(sink.names?.first?.1.digest == manifest.digest)
    }

    @Test func schemaOneGetsASentenceOfItsOwn() async throws {
        let source = FakeSource()
        let bytes = Data(#"{"schemaVersion":1,"name":"old","tag":"1","fsLayers":[],"history":[]}"#.utf8)
        let old = source.document(bytes, .dockerSchema1Signed)
        let ref = try source.tag("reg.example/old:1", old)
        do { _ = try await CopyPlanner(source: source).plan([CopyRequest(reference: ref)]); Issue.record("schema 1 accepted") }
        catch let error as ContentError {
            #expect(error.kind == .unsupported && error.message.contains("schema 1") && error.message.contains("skopeo copy --format v2s2"))
        }
        let index = try source.index([(old, amd64)])
        let listRef = try source.tag("reg.example/oldlist:1", Descriptor(mediaType: .ociIndex, digest: index.digest, size: index.size))
        var entries = try ImageIndex.decode(source.documents[index.digest]!)
        entries.manifests[0].mediaType = .dockerSchema1Signed
        let list = source.document(try CanonicalJSON.encode(entries), .dockerManifestList)
        source.tags[listRef.description] = list
        do { _ = try await CopyPlanner(source: source).plan([CopyRequest(reference: listRef)]); Issue.record("index of schema 1 accepted") }
        catch let error as ContentError { #expect(error.message.contains("schema 1") && !error.message.contains("offers )")) }
    }

    @Test func sharedChildrenComeBeforeEveryIndexThatNamesThem() async throws {
        let source = FakeSource()
        let x = try source.image(amd64, layers: ["x"]), y = try source.image(arm64, layers: ["y"])
        let a = try source.index([(x, amd64)]), b = try source.index([(x, amd64), (y, arm64)])
        let root = try source.index([(a, amd64), (b, arm64)])
        let graph = try GraphWalk.run(GraphWalk(root: root, subject: "r")) { source.documents[$0.digest] }
        let order = graph.manifests.map(\.digest)
        func at(_ d: Descriptor) -> Int { order.firstIndex(of: d.digest)! }
        #expect(order.count == 5 && order.last == root.digest)
        #expect(at(x) < at(a) && at(x) < at(b) && at(y) < at(b))
    }

    @Test func anIndexNamingOneManifestManyTimesIsReadOnce() async throws {
        let source = FakeSource()
        let image = try source.image(amd64, layers: ["x"])
        let index = try source.index(Array(repeating: (image, amd64), count: 4000))
        var reads = 0
        let graph = try GraphWalk.run(GraphWalk(root: index, subject: "dup")) { d in reads += 1; return source.documents[d.digest] }
        #expect(reads == 2 && graph.images.count == 1)
        var limits = GraphLimits()
        limits.documentBytes = 1 << 10
        #expect(throws: ContentError.self) { try GraphWalk.run(GraphWalk(root: index, subject: "big", limits: limits)) { source.documents[$0.digest] } }
    }

    @Test func anIndexWithEntriesThatAreNotPlatformImagesIsFilteredNotKeptWhole() async throws {
        let source = FakeSource()
        let images = try [amd64, arm64].map { try source.image($0, layers: [$0.architecture]) }
        let nested = try source.index([(images[0], amd64)])
        var entries = try ImageIndex.decode(source.documents[try source.index(Array(zip(images, [amd64, arm64]))).digest]!).manifests
        entries.append(Descriptor(mediaType: .ociIndex, digest: nested.digest, size: nested.size))
        let top = source.document(try CanonicalJSON.encode(ImageIndex(mediaType: .ociIndex, manifests: entries)), .ociIndex)
        let ref = try source.tag("reg.example/mixed:1", top)
        let plan = try await CopyPlanner(source: source).plan([CopyRequest(reference: ref, allPlatforms: true)])
        #expect(plan.images[0].top.digest != top.digest, "an entry that was not walked would be missing at the destination")
        let written = try ImageIndex.decode(try #require((try plan.documents.bytes(plan.images[0].top.digest))))
        #expect(written.manifests.map(\.digest) == images.map(\.digest))
    }

    @Test func nestingAndSizeLimitsHold() async throws {
        let source = FakeSource()
        var top = try source.image(amd64, layers: ["x"])
        for _ in 0..<10 { top = try source.index([(top, amd64)]) }
        let ref = try source.tag("reg.example/deep:1", top)
        await #expect(throws: ContentError.self) { try await CopyPlanner(source: source).plan([CopyRequest(reference: ref, allPlatforms: true)]) }
        var limits = GraphLimits()
        limits.documentSize = 10
        var walk = GraphWalk(root: top, subject: "big", limits: limits)
        #expect(throws: ContentError.self) { _ = try walk.next() }
        _ = walk
    }
}

@Suite struct CopyEngineTests {
    func twoImages() throws -> (FakeSource, [Reference]) {
        let source = FakeSource()
        let base = source.blob(Data(repeating: 7, count: 100))
        let refs = try (1...2).map { i in try source.tag("reg.example/app-\(i):1", try source.image(amd64, layers: ["layer \(i)"], shared: base)) }
        return (source, refs)
    }

    @Test func eachBlobMovesOnceThenDocumentsThenNames() async throws {
        let (source, refs) = try twoImages()
        let plan = try await CopyPlanner(source: source).plan(refs.map { CopyRequest(reference: $0) })
        let sink = MemorySink()
        try await CopyEngine(source: source, sink: sink).run(plan)
        #expect(Set(source.blobReads).count == source.blobReads.count, "no blob read twice")
        // Configs were read while planning (the platform) and travel from memory.
        #expect(source.blobReads.count == 3)
        #expect(sink.blobs.count == 5)
        #expect(sink.documents.count == 2)
        #expect(sink.names?.map(\.0) == refs)
    }

    @Test func whatTheReceiptHoldsIsNeverRead() async throws {
        let (source, refs) = try twoImages()
        let first = try await CopyPlanner(source: source).plan([CopyRequest(reference: refs[0])])
        let held = Set(first.blobs.map(\.descriptor.digest))
        let (blobReadsBefore, documentReadsBefore) = (source.blobReads.count, source.documentReads.count)
        let delta = try await CopyPlanner(source: source, held: held).plan(refs.map { CopyRequest(reference: $0) })
        let sink = MemorySink(order: .digestOrder)
        try await CopyEngine(source: source, sink: sink).run(delta)
        // The delta reads none of what the receipt holds, neither while planning nor while copying.
        let newReads = Set(source.blobReads.dropFirst(blobReadsBefore) + source.documentReads.dropFirst(documentReadsBefore))
        #expect(newReads.isDisjoint(with: held), "read \(newReads.intersection(held))")
        for digest in held { #expect(sink.blobs[digest] == nil) }
        #expect(Set(delta.leftOut.map(\.digest)) == held)
        #expect(sink.blobs.count == 2 + 2, "app-2's config and layer, and both manifests")
    }

    @Test func aDamagedBlobIsNeverHandedOnWhole() async throws {
        let (source, refs) = try twoImages()
        let plan = try await CopyPlanner(source: source).plan([CopyRequest(reference: refs[0])])
        let victim = plan.blobs.first { $0.descriptor.size == 100 }!.descriptor
        source.damaged = [victim.digest]
        for order in [SinkOrder.concurrent(2), .digestOrder] {
            let sink = MemorySink(order: order)
            await #expect(throws: ContentError.self) { try await CopyEngine(source: source, sink: sink).run(plan) }
            #expect(sink.aborted && sink.names == nil)
            #expect(sink.blobs[victim.digest] == nil)
            if let forwarded = sink.forwardedBeforeFailure[victim.digest] { #expect(forwarded < Int(victim.size)) }
        }
    }

    @Test func anOrderedSinkGetsEverythingOnceInDigestOrder() async throws {
        let (source, refs) = try twoImages()
        let plan = try await CopyPlanner(source: source).plan(refs.map { CopyRequest(reference: $0) })
        let sink = MemorySink(order: .digestOrder)
        try await CopyEngine(source: source, sink: sink).run(plan)
        #expect(sink.writeOrder == sink.writeOrder.sorted())
        #expect(sink.writeOrder == plan.digestOrder.map(\.digest))
        #expect(sink.writeOrder.count == 7) // 2 manifests, 2 configs, base, 2 app layers
    }

    @Test func configsPastTheBudgetAreReadAgainWhenCopied() async throws {
        let (source, refs) = try twoImages()
        var planner = CopyPlanner(source: source)
        planner.configBudget = 0
        let plan = try await planner.plan(refs.map { CopyRequest(reference: $0) })
        #expect(plan.images.allSatisfy { $0.platforms[0].platform == amd64 }, "the platform still comes from the config")
        #expect(plan.images.allSatisfy { !plan.documents.contains($0.platforms[0].config.digest) }, "but its bytes are not kept")
        let sink = MemorySink()
        try await CopyEngine(source: source, sink: sink).run(plan)
        #expect(sink.blobs.count == 5)
    }

    @Test func heldBlobsAreSkippedAtTheSink() async throws {
        let (source, refs) = try twoImages()
        let plan = try await CopyPlanner(source: source).plan(refs.map { CopyRequest(reference: $0) })
        let sink = MemorySink()
        sink.held = Set(plan.blobs.map(\.descriptor.digest))
        let before = source.blobReads.count
        final class Skipped: @unchecked Sendable { let lock = NSLock(); var listed: [Digest: Bool] = [:] }
        let skipped = Skipped()
        try await CopyEngine(source: source, sink: sink, events: { event in
            if case .blobSkipped(let digest, _, let listed) = event { skipped.lock.withLock { skipped.listed[digest] = listed } }
        }).run(plan)
        #expect(source.blobReads.count == before && sink.blobs.isEmpty)
        // Docker says "already exists" of layers only: a held config or manifest is only counted.
        #expect(skipped.listed.count == Set(plan.blobs.map(\.descriptor.digest)).count)
        for blob in plan.blobs {
            let d = blob.descriptor
            #expect(skipped.listed[d.digest] == !(d.mediaType.isManifest || d.mediaType.isImageConfig), "\(d.mediaType)")
        }
    }
}

@Suite struct VerifierTests {
    @Test func theCompletingChunkIsCheckedBeforeItIsHandedOn() throws {
        let data = Data(repeating: 1, count: 10)
        var verifier = BlobVerifier(Descriptor(mediaType: .ociLayer, digest: Digest.sha256(of: Data(repeating: 2, count: 10)), size: 10), source: "x")
        var forwarded = 0
        try data.prefix(6).withUnsafeBytes { try verifier.update($0) { forwarded += $0.count } }
        #expect(throws: ContentError.self) { try data.suffix(4).withUnsafeBytes { try verifier.update($0) { forwarded += $0.count } } }
        #expect(forwarded == 6)
    }

    @Test func anOverrunIsRefusedAtOnce() throws {
        var verifier = BlobVerifier(expected: nil, size: 4, source: "x")
        #expect(throws: ContentError.self) { try Data(count: 5).withUnsafeBytes { try verifier.update($0) } }
    }

    @Test func largeChunksHashTheSameAsSmallOnes() throws {
        let data = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        var big = BlobVerifier(expected: nil, size: nil, source: "x"), small = BlobVerifier(expected: nil, size: nil, source: "x")
        var copy = Data()
        try data.withUnsafeBytes { try big.update($0) { copy.append(contentsOf: $0) } }
        for start in stride(from: 0, to: data.count, by: 4096) {
            try data[start..<min(start + 4096, data.count)].withUnsafeBytes { try small.update($0) }
        }
        #expect(try big.finish() == (try small.finish()) && copy == data)
    }
}

/// A spill in memory whose bytes a test can change behind the plan's back.
final class MemorySpill: DocumentSpill, @unchecked Sendable {
    private let lock = NSLock()
    var bytes = Data()
    var directory: String { "the test's spill" }
    func append(_ data: Data) throws -> Int64 {
        lock.withLock { defer { bytes.append(data) }; return Int64(bytes.count) }
    }
    func read(offset: Int64, size: Int) throws -> Data {
        lock.withLock { Data(bytes[Int(offset)..<Int(offset) + size]) }
    }
}

@Suite struct PlanDocumentsTests {
    @Test func documentsPastTheBudgetGoToTheSpillAndCopyTheSame() async throws {
        let (source, refs) = try CopyEngineTests().twoImages()
        let requests = refs.map { CopyRequest(reference: $0) }
        let held = try await CopyPlanner(source: source).plan(requests)
        let spill = MemorySpill()
        var planner = CopyPlanner(source: source)
        planner.documentSpill = spill
        planner.documentMemory = 0
        let plan = try await planner.plan(requests)
        #expect(plan.documents.count == held.documents.count && !spill.bytes.isEmpty, "every document went to the spill")
        let inMemory = MemorySink(), spilled = MemorySink()
        try await CopyEngine(source: source, sink: inMemory).run(held)
        try await CopyEngine(source: source, sink: spilled).run(plan)
        #expect(spilled.blobs == inMemory.blobs && spilled.documents == inMemory.documents && !spilled.documents.isEmpty)
    }

    @Test func aSpillChangedBehindThePlansBackIsRefusedAndNothingCommits() async throws {
        let (source, refs) = try CopyEngineTests().twoImages()
        let spill = MemorySpill()
        var planner = CopyPlanner(source: source)
        planner.documentSpill = spill
        planner.documentMemory = 0
        let plan = try await planner.plan(refs.map { CopyRequest(reference: $0) })
        spill.bytes[spill.bytes.count / 2] ^= 0x20
        let sink = MemorySink()
        await #expect(throws: ContentError.self) { try await CopyEngine(source: source, sink: sink).run(plan) }
        #expect(sink.aborted && sink.names == nil)
    }

    @Test func plansSharingASpillMergeByPlaceNotByCopy() throws {
        let spill = MemorySpill()
        var first = PlanDocuments(spill: spill), second = PlanDocuments(spill: spill)
        first.memoryBudget = 0; second.memoryBudget = 0
        let a = Data("{\"a\":1}".utf8), b = Data("{\"b\":2}".utf8)
        try first.keep(a, for: Digest.sha256(of: a))
        try second.keep(b, for: Digest.sha256(of: b))
        let written = spill.bytes.count
        try first.merge(second)
        #expect(spill.bytes.count == written, "nothing appended twice")
        #expect(try first.bytes(Digest.sha256(of: b)) == b && first.count == 2)
        var other = PlanDocuments(spill: MemorySpill())
        other.memoryBudget = 0
        try other.merge(second)
        #expect(try other.bytes(Digest.sha256(of: b)) == b, "another file: read back and kept again")
    }

    @Test func theFirstBytesKeptForADigestStay() throws {
        var documents = PlanDocuments(spill: MemorySpill())
        documents.memoryBudget = 4
        let a = Data("{\"a\":1}".utf8), d = Digest.sha256(of: a)
        try documents.keep(a, for: d)
        try documents.keep(Data("other".utf8), for: d)
        #expect(try documents.bytes(d) == a && documents.count == 1)
        #expect(try documents.bytes(Digest.sha256(of: Data("absent".utf8))) == nil)
    }
}
