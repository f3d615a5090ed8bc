import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

/// The documents that grow with the number of images are encoded a piece at a time
/// (`CanonicalJSON.encodeLarge`); they must be byte for byte what the whole-document encoder
/// writes, or bundles would stop being reproducible across versions.
struct LargeJSONTests {
    func expectSame(_ value: some Encodable, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        for pretty in [false, true] {
            let whole = try CanonicalJSON.encode(value, pretty: pretty)
            let pieces = try CanonicalJSON.encodeLarge(value, pretty: pretty)
            #expect(pieces == whole, "\(what) (pretty: \(pretty)):\n\(String(decoding: pieces.prefix(600), as: UTF8.self))\n---\n\(String(decoding: whole.prefix(600), as: UTF8.self))",
                    sourceLocation: sourceLocation)
        }
    }

    @Test func theDocumentsOfARealBundleEncodeToTheSameBytes() async throws {
        let bundle = try await InProcessBundle(count: 5)
        let entry = { (name: String) throws -> Data in Data(try runProcess("tar", ["xOf", bundle.path, name]).stdout.utf8) }
        let metadata = try JSONDecoder().decode(BundleMetadata.self, from: try entry("airgap/bundle.json"))
        try expectSame(metadata, "bundle.json")
        #expect(try CanonicalJSON.encodeLarge(metadata, pretty: true) == (try entry("airgap/bundle.json")), "as written in the bundle")
        try expectSame(try JSONDecoder().decode(ImageIndex.self, from: try entry("index.json")), "index.json")
        try expectSame(try JSONDecoder().decode([JSONValue].self, from: try entry("manifest.json")), "manifest.json")
    }

    @Test func emptyArraysNilFieldsAndEscapesEncodeToTheSameBytes() async throws {
        let digest = Digest.sha256(of: Data("x".utf8))
        var image = BundleMetadata.Image(reference: "reg.example/a/b:1 \"quoted\" / slash \u{e9} \n line", source: "docker.io/library/httpd:2.4",
                                         digest: digest, mediaType: .ociIndex, size: 42, originalIndexDigest: nil, platforms: [])
        image.attachedTo = "tab\there"
        let full = BundleMetadata(tool: .init(name: "airgap", version: "0.1.0"), created: "2026-01-01T00:00:00Z",
                                  manifest: .init(name: "images.yaml", sha256: digest.encoded), images: [image, image],
                                  blobs: [.init(digest: digest, size: 1, mediaType: .ociLayer)], requiredOnInside: [], since: "abc", sinceRegistry: "reg:5000/p")
        try expectSame(full, "every field")
        let sparse = BundleMetadata(tool: .init(name: "airgap", version: "0.1.0"), created: nil, manifest: nil, images: [], blobs: [], requiredOnInside: [], since: nil)
        try expectSame(sparse, "empty arrays and nil fields")
        try expectSame([JSONValue](), "an empty array")
        try expectSame([JSONValue.object(["b": .array([]), "a": .null, "c": .object([:])]), .string("x")], "mixed elements")
        try expectSame(ImageIndex(mediaType: .ociIndex, manifests: []), "an empty index")
        // Keys whose order depends on the comparison (case, digits): the encoder's own order is used.
        struct Awkward: Encodable { var B = [1, 2]; var a = "x"; var item10 = [["k": 1]]; var item9 = 9; var Zeta: String? = "z"; var _u = [String]() }
        try expectSame(Awkward(), "keys in the encoder's order")
    }

    @Test func generatedListsEncodeAsTheListsWouldAndMustBeFieldsOfTheDocument() throws {
        let digest = Digest.sha256(of: Data("x".utf8))
        let images = (0..<3).map { BundleMetadata.Image(reference: "reg.example/a:\($0)", source: "reg.example/a:\($0)", digest: digest,
                                                        mediaType: .ociManifest, size: Int64($0), originalIndexDigest: nil, platforms: []) }
        let blobs = [BundleMetadata.Blob(digest: digest, size: 1, mediaType: .ociLayer)]
        let full = BundleMetadata(tool: .init(name: "airgap", version: "0.1.0"), created: nil, manifest: nil, images: images, blobs: blobs, requiredOnInside: [], since: nil)
        var empty = full
        empty.images = []; empty.blobs = []
        for pretty in [false, true] {
            var out = Data()
            try CanonicalJSON.encodeLarge(empty, pretty: pretty, generating: ["images": GeneratedElements(count: 3) { images[$0] }, "blobs": blobs]) { out.append($0) }
            #expect(out == (try CanonicalJSON.encode(full, pretty: pretty)))
            out = Data()
            try CanonicalJSON.encodeLarge(empty, pretty: pretty, generating: ["images": GeneratedElements(count: 0) { images[$0] }]) { out.append($0) }
            #expect(out == (try CanonicalJSON.encode(empty, pretty: pretty)), "none generated: the document's own empty list")
        }
        #expect(throws: EncodingError.self) { try CanonicalJSON.encodeLarge(empty, generating: ["imagez": blobs]) { _ in } }
        #expect(throws: EncodingError.self) { try CanonicalJSON.encodeLarge([1, 2], generating: ["images": blobs]) { _ in } }
    }
}

/// `sinceRegistry` goes into a mount request's query (`from=`): only a registry and a repository
/// path a reference may have are used, whatever the (signed) metadata says.
struct SinceRegistryTests {
    @Test func onlyAReferencePathIsMountedFrom() async throws {
        let bundle = try await InProcessBundle(count: 1)
        var read = try await bundle.reader().read()
        #expect(read.ok)
        let blob = read.metadata!.blobs[0]
        read.metadata!.requiredOnInside = [blob]
        let name = try Reference(parsing: "127.0.0.1:5000/team/app:1")
        let layer = Descriptor(mediaType: blob.mediaType, digest: blob.digest, size: blob.size)
        for (given, expected) in [("127.0.0.1:5000/first", "127.0.0.1:5000/first/team/app"), ("127.0.0.1:5000", "127.0.0.1:5000/team/app")] {
            read.metadata!.sinceRegistry = given
            let origin = VerifiedBundle(read)!.mountOrigin(layer, in: name)
            #expect(origin.map { "\($0.registry)/\($0.repository)" } == expected, "\(given)")
        }
        for hostile in ["127.0.0.1:5000/x&from=other", "127.0.0.1:5000/x?mount=sha256:00", "127.0.0.1:5000/../x", "127.0.0.1:5000/X Y", "/x"] {
            read.metadata!.sinceRegistry = hostile
            #expect(VerifiedBundle(read)!.mountOrigin(layer, in: name) == nil, "\(hostile)")
        }
        // An unsigned bundle (accepted with --allow-unsigned) does not choose where to mount from.
        read.metadata!.sinceRegistry = "127.0.0.1:5000/first"
        let signature = read.signature
        read.signature = .unsigned
        #expect(VerifiedBundle(read)!.mountOrigin(layer, in: name) == nil)
        read.signature = signature
        // A blob the bundle carries is never mounted from the receipt's prefix.
        read.metadata!.sinceRegistry = "127.0.0.1:5000/first"
        read.metadata!.requiredOnInside = []
        #expect(VerifiedBundle(read)!.mountOrigin(layer, in: name) == nil)
    }
}
