import AirgapContent
import AirgapOCI
import AirgapServe
import AirgapTestSupport
import Foundation
import Testing

/// Documents in memory, blobs in files: what a verified bundle or the store looks like to serve.
final class FileBackedSource: ContentSource, @unchecked Sendable {
    let dir = TempDirectory("serve-source")
    var documents: [Digest: Data] = [:]
    var blobFiles: [Digest: String] = [:]
    var description: String { "the test source" }

    func resolve(_ reference: Reference) async throws -> (Descriptor, Data) { throw ContentError(.missing, "unused") }
    func document(_ descriptor: Descriptor, in repository: Reference) async throws -> Data? { documents[descriptor.digest] }
    func copyBlob(_ descriptor: Descriptor, in repository: Reference, into writer: any BlobWriter,
                  progress: @escaping @Sendable (Int64) -> Void) async throws { throw ContentError(.missing, "unused") }
    func fileSegments(_ descriptor: Descriptor) -> FileSegments? {
        blobFiles[descriptor.digest].map { FileSegments.whole($0, size: descriptor.size) }
    }

    @discardableResult
    func blob(_ bytes: Data, _ mediaType: MediaType = .ociLayerGzip) throws -> Descriptor {
        let d = Descriptor(mediaType: mediaType, digest: Digest.sha256(of: bytes), size: Int64(bytes.count))
        let path = dir.file(d.digest.encoded)
        try bytes.write(to: URL(fileURLWithPath: path))
        blobFiles[d.digest] = path
        return d
    }

    func document(_ value: some Encodable, _ mediaType: MediaType) throws -> Descriptor {
        let bytes = try CanonicalJSON.encode(value)
        let d = Descriptor(mediaType: mediaType, digest: Digest.sha256(of: bytes), size: Int64(bytes.count))
        documents[d.digest] = bytes
        // A registry serves a manifest's bytes as a blob too.
        try blob(bytes, mediaType)
        return d
    }

    func image(_ label: String, layerBytes: Int = 3000) throws -> (Descriptor, ImageManifest) {
        let config = try blob(Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"author":"\#(label)"}"#.utf8), .ociConfig)
        let layer = try blob(Data((0..<layerBytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ label.count) }))
        let manifest = ImageManifest(mediaType: .ociManifest, config: config, layers: [layer])
        return (try document(manifest, .ociManifest), manifest)
    }
}

struct ServeFixture {
    let source = FileBackedSource()
    let api: RegistryAPI
    let app: Descriptor
    let manifest: ImageManifest
    let signature: Descriptor

    init() async throws {
        let (app, manifest) = try source.image("app")
        var tags: [(Reference, Descriptor)] = [(try Reference(parsing: "docker.io/library/app:1.0"), app)]
        for n in 0..<5 { tags.append((try Reference(parsing: "docker.io/library/app:v\(n)"), app)) }
        let (other, _) = try source.image("other")
        tags.append((try Reference(parsing: "quay.io/team/other:2"), other))
        // An artifact whose subject is the app's manifest (a signature, an SBOM).
        let empty = try source.blob(Data("{}".utf8), MediaType("application/vnd.oci.empty.v1+json"))
        var sig = ImageManifest(mediaType: .ociManifest, config: empty, layers: [try source.blob(Data("sig".utf8), MediaType("application/vnd.dev.cosign.simplesigning.v1+json"))])
        sig.artifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
        sig.subject = app
        let signature = try source.document(sig, .ociManifest)
        tags.append((try Reference(parsing: "docker.io/library/app:sha256-\(app.digest.encoded).sig"), signature))
        let content = try await ServedContent.build(source: source, names: tags, prefix: "", host: "127.0.0.1:5000")
        api = RegistryAPI(content: content)
        self.app = app
        self.manifest = manifest
        self.signature = signature
    }

    func get(_ target: String, method: String = "GET", range: String? = nil) async -> (Int, [String: String], Data) {
        let response = await api.respond(to: APIRequest(method: method, target: target, range: range))
        switch response {
        case .bytes(let status, let headers, let body):
            return (status, Dictionary(headers, uniquingKeysWith: { a, _ in a }), body)
        case .blob(let status, let headers, let segments, let digest, let range):
            var body = Data()
            if method == "GET" {
                let chunks = try! FileSegments.Chunks(segments, expected: digest, range: range)
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 16)
                defer { buffer.deallocate() }
                while let n = try! chunks.next(into: buffer) { body.append(contentsOf: buffer[..<n]) }
            }
            return (status, Dictionary(headers, uniquingKeysWith: { a, _ in a }), body)
        }
    }

    static func errorCode(_ body: Data) -> String? {
        let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any]
        return ((object?["errors"] as? [[String: Any]])?.first?["code"]) as? String
    }
}

/// The distribution spec's pull and content-discovery workflows, rewritten from the spec as tests
/// of the routing (the conformance suite itself cannot be built offline).
@Suite struct RegistryAPITests {
    @Test func baseEndpointAnswersWithTheAPIVersion() async throws {
        let f = try await ServeFixture()
        let (status, headers, body) = await f.get("/v2/")
        #expect(status == 200 && headers["Docker-Distribution-API-Version"] == "registry/2.0" && body == Data("{}".utf8))
        #expect(await f.get("/v2").0 == 200)
        #expect(await f.get("/v1/_ping").0 == 404)
    }

    @Test func manifestsByTagAndDigestCarryTheirTypeAndDigest() async throws {
        let f = try await ServeFixture()
        for reference in ["1.0", f.app.digest.description] {
            let (status, headers, body) = await f.get("/v2/library/app/manifests/\(reference)")
            #expect(status == 200)
            #expect(headers["Content-Type"] == MediaType.ociManifest.rawValue)
            #expect(headers["Docker-Content-Digest"] == f.app.digest.description)
            #expect(Digest.sha256(of: body) == f.app.digest && headers["Content-Length"] == "\(body.count)")
            let (headStatus, headHeaders, headBody) = await f.get("/v2/library/app/manifests/\(reference)", method: "HEAD")
            #expect(headStatus == 200 && headBody.isEmpty && headHeaders["Content-Length"] == "\(f.app.size)")
            #expect(headHeaders["Docker-Content-Digest"] == f.app.digest.description)
        }
        // Names as push --to would lay them out: the registry dropped, the path kept.
        #expect(await f.get("/v2/team/other/manifests/2").0 == 200)
        // A digest %-encoded in the path is the same digest.
        #expect(await f.get("/v2/library/app/manifests/sha256%3A\(f.app.digest.encoded)").0 == 200)
    }

    @Test func missingThingsAre404WithTheSpecsCodes() async throws {
        let f = try await ServeFixture()
        let cases: [(String, Int, String)] = [
            ("/v2/library/app/manifests/nope", 404, "MANIFEST_UNKNOWN"),
            ("/v2/library/app/manifests/sha256:\(String(repeating: "0", count: 64))", 404, "MANIFEST_UNKNOWN"),
            ("/v2/library/nope/manifests/1.0", 404, "NAME_UNKNOWN"),
            ("/v2/library/app/blobs/sha256:\(String(repeating: "0", count: 64))", 404, "BLOB_UNKNOWN"),
            ("/v2/library/app/manifests/sha256:xyz", 400, "DIGEST_INVALID"),
            ("/v2/library/app/blobs/notadigest", 400, "DIGEST_INVALID"),
            ("/v2/library/nope/tags/list", 404, "NAME_UNKNOWN"),
            // A blob of another repository is not served under this one (as distribution does).
            ("/v2/team/other/blobs/\(f.manifest.layers[0].digest)", 404, "BLOB_UNKNOWN"),
        ]
        for (target, status, code) in cases {
            for method in ["GET", "HEAD"] {
                let (got, headers, body) = await f.get(target, method: method)
                #expect(got == status, "\(method) \(target)")
                if method == "GET" {
                    #expect(ServeFixture.errorCode(body) == code, "\(target): \(String(decoding: body, as: UTF8.self))")
                    #expect(headers["Content-Type"] == "application/json")
                } else {
                    #expect(body.isEmpty)
                }
            }
        }
    }

    @Test func blobsWholeAndByRange() async throws {
        let f = try await ServeFixture()
        let layer = f.manifest.layers[0]
        let whole = try Data(contentsOf: URL(fileURLWithPath: f.source.blobFiles[layer.digest]!))
        let (status, headers, body) = await f.get("/v2/library/app/blobs/\(layer.digest)")
        #expect(status == 200 && body == whole && headers["Docker-Content-Digest"] == layer.digest.description)
        #expect(headers["Content-Length"] == "\(whole.count)" && headers["Accept-Ranges"] == "bytes")
        let ranges: [(String, Range<Int>)] = [("bytes=0-9", 0..<10), ("bytes=2990-", 2990..<3000), ("bytes=-7", 2993..<3000),
                                              ("bytes=1500-99999", 1500..<3000), ("bytes=1234-1234", 1234..<1235)]
        for (header, expected) in ranges {
            let (status, headers, body) = await f.get("/v2/library/app/blobs/\(layer.digest)", range: header)
            #expect(status == 206 && body == whole[expected], "\(header)")
            #expect(headers["Content-Range"] == "bytes \(expected.lowerBound)-\(expected.upperBound - 1)/3000", "\(header)")
            #expect(headers["Content-Length"] == "\(expected.count)")
        }
        let (unsatisfiable, h416, _) = await f.get("/v2/library/app/blobs/\(layer.digest)", range: "bytes=3000-")
        #expect(unsatisfiable == 416 && h416["Content-Range"] == "bytes */3000")
        // Ranges the server does not take (several, malformed) get the whole blob, as RFC 9110 allows.
        for header in ["bytes=0-1,5-6", "bytes=9-3", "items=0-1", "bytes=a-b"] {
            let (status, _, body) = await f.get("/v2/library/app/blobs/\(layer.digest)", range: header)
            #expect(status == 200 && body == whole, "\(header)")
        }
        // HEAD: the length, no body.
        let (headStatus, headHeaders, headBody) = await f.get("/v2/library/app/blobs/\(layer.digest)", method: "HEAD")
        #expect(headStatus == 200 && headBody.isEmpty && headHeaders["Content-Length"] == "3000")
        // A manifest is a blob too.
        #expect(await f.get("/v2/library/app/blobs/\(f.app.digest)").0 == 200)
    }

    @Test func tagsAndCatalogPageWithNAndLast() async throws {
        let f = try await ServeFixture()
        func tags(_ body: Data) -> [String] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])?["tags"] as? [String] ?? [] }
        let all = tags(await f.get("/v2/library/app/tags/list").2)
        #expect(all == ["1.0", "sha256-\(f.app.digest.encoded).sig", "v0", "v1", "v2", "v3", "v4"])
        var seen: [String] = []
        var target: String? = "/v2/library/app/tags/list?n=3"
        while let next = target {
            let (status, headers, body) = await f.get(next)
            #expect(status == 200)
            let page = tags(body)
            #expect(page.count <= 3)
            seen += page
            target = headers["Link"].flatMap { link in
                link.split(separator: ">").first.map { String($0.dropFirst()) }
            }
            #expect(headers["Link"] == nil || headers["Link"]!.hasSuffix("; rel=\"next\""))
        }
        #expect(seen == all)
        #expect(tags(await f.get("/v2/library/app/tags/list?last=v2").2) == ["v3", "v4"])
        #expect(tags(await f.get("/v2/library/app/tags/list?n=0").2) == [])
        let catalog = await f.get("/v2/_catalog?n=1")
        #expect(String(decoding: catalog.2, as: UTF8.self) == #"{"repositories":["library/app"]}"#)
        #expect(catalog.1["Link"] == "</v2/_catalog?n=1&last=library%2Fapp>; rel=\"next\"")
        let rest = await f.get("/v2/_catalog?n=1&last=library%2Fapp")
        #expect(String(decoding: rest.2, as: UTF8.self) == #"{"repositories":["team/other"]}"# && rest.1["Link"] == nil)
    }

    @Test func referrersListSubjectsArtifactsAndFilter() async throws {
        let f = try await ServeFixture()
        func listed(_ body: Data) throws -> [Descriptor] { try ImageIndex.decode(body).manifests }
        let (status, headers, body) = await f.get("/v2/library/app/referrers/\(f.app.digest)")
        #expect(status == 200 && headers["Content-Type"] == MediaType.ociIndex.rawValue)
        let all = try listed(body)
        #expect(all.map(\.digest) == [f.signature.digest])
        #expect(all.first?.artifactType == "application/vnd.dev.cosign.artifact.sig.v1+json")
        let (_, filteredHeaders, filtered) = await f.get("/v2/library/app/referrers/\(f.app.digest)?artifactType=application/vnd.dev.cosign.artifact.sig.v1%2Bjson")
        #expect(try listed(filtered).count == 1 && filteredHeaders["OCI-Filters-Applied"] == "artifactType")
        #expect(try listed(await f.get("/v2/library/app/referrers/\(f.app.digest)?artifactType=text/plain").2).isEmpty)
        // Never 404 for the referrers API: an unknown subject has none.
        let unknown = await f.get("/v2/library/app/referrers/sha256:\(String(repeating: "1", count: 64))")
        let none = try listed(unknown.2)
        #expect(unknown.0 == 200 && none.isEmpty)
        #expect(await f.get("/v2/library/app/referrers/sha256:12").0 == 400)
    }

    @Test func writesAreRefusedAsUnsupported() async throws {
        let f = try await ServeFixture()
        for (method, target) in [("PUT", "/v2/library/app/manifests/2.0"), ("DELETE", "/v2/library/app/manifests/1.0"),
                                 ("POST", "/v2/library/app/blobs/uploads/"), ("PATCH", "/v2/library/app/blobs/uploads/abc"),
                                 ("DELETE", "/v2/library/app/blobs/\(f.app.digest)"), ("GET", "/v2/library/app/blobs/uploads/abc")] {
            let (status, _, body) = await f.get(target, method: method)
            #expect(status == 405 && ServeFixture.errorCode(body) == "UNSUPPORTED", "\(method) \(target)")
        }
    }

    @Test func oneServedTagNamingTwoImagesIsRefused() async throws {
        let source = FileBackedSource()
        let (a, _) = try source.image("a")
        let (b, _) = try source.image("b")
        await #expect(throws: ContentError.self) {
            _ = try await ServedContent.build(source: source, names: [(try Reference(parsing: "docker.io/team/x:1"), a),
                                                                      (try Reference(parsing: "quay.io/team/x:1"), b)],
                                              prefix: "", host: "h")
        }
        // The same image under both names, or other tags: one served repository.
        let merged = try await ServedContent.build(source: source, names: [(try Reference(parsing: "docker.io/team/x:1"), a),
                                                                           (try Reference(parsing: "quay.io/team/x:1"), a),
                                                                           (try Reference(parsing: "quay.io/team/x:2"), b)],
                                                   prefix: "", host: "h")
        #expect(merged.repositories["team/x"]?.tags.count == 2 && merged.repositories["team/x"]?.origins.count == 2)
        let prefixed = try await ServedContent.build(source: source, names: [(try Reference(parsing: "docker.io/team/x:1"), a)], prefix: "mirror/site", host: "h")
        #expect(prefixed.repositories.keys.sorted() == ["mirror/site/team/x"])
    }
}

/// The attack the serve path must stand: the media change after the check.
@Suite struct VerifyingChunksTests {
    func read(_ chunks: FileSegments.Chunks, bufferSize: Int = 4096) throws -> Data {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        var out = Data()
        while let n = try chunks.next(into: buffer) { out.append(contentsOf: buffer[..<n]) }
        return out
    }

    @Test func aChangedBlobNeverArrivesWhole() throws {
        let dir = TempDirectory("chunks")
        let data = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let digest = Digest.sha256(of: data)
        let path = dir.file("blob")
        try data.write(to: URL(fileURLWithPath: path))
        let segments = FileSegments.whole(path, size: Int64(data.count))
        #expect(try read(FileSegments.Chunks(segments, expected: digest)) == data)
        #expect(try read(FileSegments.Chunks(segments, expected: digest, range: 10..<20)) == data[10..<20])

        // One byte near the end changes on the media: a whole read gets everything but the last
        // chunk, then an error; a range at the start is not handed out at all, because the call
        // that would return it first hashes the rest of the blob.
        var changed = data
        changed[99_990] ^= 0xff
        try changed.write(to: URL(fileURLWithPath: path))
        let whole = try FileSegments.Chunks(segments, expected: digest)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buffer.deallocate() }
        var delivered = 0
        #expect(throws: ContentError.self) { while let n = try whole.next(into: buffer) { delivered += n } }
        #expect(delivered < data.count)
        let start = try FileSegments.Chunks(segments, expected: digest, range: 0..<10)
        #expect(throws: ContentError.self) { _ = try start.next(into: buffer) }
        // Without an expected digest it only reads (used where the caller hashes itself).
        #expect(try read(FileSegments.Chunks(segments, expected: nil, range: 5..<9)) == changed[5..<9])
    }

    @Test func aFileRenamedOverAfterOpeningIsNotRead() throws {
        let dir = TempDirectory("chunks")
        let data = Data(repeating: 0x41, count: 50_000)
        let path = dir.file("volume")
        try data.write(to: URL(fileURLWithPath: path))
        let chunks = try FileSegments.Chunks(.whole(path, size: 50_000), expected: Digest.sha256(of: data))
        try Data(repeating: 0x42, count: 50_000).write(to: URL(fileURLWithPath: path), options: .atomic) // a new inode
        #expect(try read(chunks) == data)
    }

    @Test func aDeviceSwappedInIsRefused() throws {
        let dir = TempDirectory("chunks")
        let path = dir.file("volume")
        #expect(symlink("/dev/zero", path) == 0)
        #expect(throws: ContentError.self) { _ = try FileSegments.Chunks(.whole(path, size: 10), expected: nil) }
    }
}
