import AirgapContent
import AirgapOCI
import Foundation
import Testing

/// What is attached to an image is found at plan time and planned as images of their own, named
/// under the image's destination repository.
@Suite struct AttachmentFinderTests {
    /// app:1 with a cosign signature, an SBOM referrer (in the referrers tag's index) and a
    /// signature of that SBOM.
    func signedImage(referrersTag: Bool = true) throws -> (FakeSource, Reference, image: Descriptor, signature: Descriptor, sbom: Descriptor, sbomSignature: Descriptor) {
        let source = FakeSource()
        let image = try source.image(amd64, layers: ["app"])
        let ref = try source.tag("reg.example/team/app:1", image)
        func signature(of subject: Digest) throws -> Descriptor {
            let payload = source.blob(Data(#"{"critical":{"image":{"docker-manifest-digest":"\#(subject)"}}}"#.utf8), MediaType(rawValue: "application/vnd.dev.cosign.simplesigning.v1+json"))
            let config = source.blob(Data(#"{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}"#.utf8), .ociConfig)
            let d = source.document(try CanonicalJSON.encode(ImageManifest(mediaType: .ociManifest, config: config, layers: [payload])), .ociManifest)
            _ = try source.tag("reg.example/team/app:\(subject.algorithm.rawValue)-\(subject.encoded).sig", d)
            return d
        }
        let signatureOfImage = try signature(of: image.digest)
        let empty = source.blob(Data("{}".utf8), MediaType(rawValue: "application/vnd.oci.empty.v1+json"))
        let document = source.blob(Data(#"{"spdxVersion":"SPDX-2.3"}"#.utf8), MediaType(rawValue: "application/spdx+json"))
        var manifest = ImageManifest(mediaType: .ociManifest, config: empty, layers: [document])
        manifest.artifactType = "application/spdx+json"
        manifest.subject = image
        var sbom = source.document(try CanonicalJSON.encode(manifest), .ociManifest)
        sbom.artifactType = "application/spdx+json"
        if referrersTag {
            let index = source.document(try CanonicalJSON.encode(ImageIndex(mediaType: .ociIndex, manifests: [sbom])), .ociIndex)
            _ = try source.tag("reg.example/team/app:sha256-\(image.digest.encoded)", index)
        }
        return (source, ref, image, signatureOfImage, sbom, try signature(of: sbom.digest))
    }

    func planner(_ source: FakeSource) -> CopyPlanner {
        var planner = CopyPlanner(source: source)
        planner.attachments = AttachmentFinder(listing: source)
        return planner
    }

    @Test func attachmentsAreFoundByTagAndRecursivelyUnderTheDestinationName() async throws {
        let (source, ref, image, signature, sbom, sbomSignature) = try signedImage()
        var request = CopyRequest(reference: ref, name: try Reference(parsing: "inside.example/mirror/app:1"))
        request.attachments = true
        let plan = try await planner(source).plan([request])
        let names = plan.images.map(\.name.description)
        #expect(names == ["inside.example/mirror/app:1",
                          "inside.example/mirror/app:sha256-\(image.digest.encoded).sig",
                          "inside.example/mirror/app:sha256-\(image.digest.encoded)",
                          "inside.example/mirror/app:sha256-\(sbom.digest.encoded).sig"], "\(names)")
        let links = plan.images.compactMap(\.request.attachment)
        #expect(links.map(\.kind) == [.signature, .referrers, .signature])
        #expect(links.map(\.subject) == [image.digest, image.digest, sbom.digest])
        #expect(links.allSatisfy { $0.subjectName.description == "inside.example/mirror/app:1" }, "all listed under the image")
        #expect(plan.images[1].top.digest == signature.digest && plan.images[3].top.digest == sbomSignature.digest)
        // The SBOM travels inside the referrers index, with its blobs; each blob once.
        #expect(plan.images[2].manifests.map(\.digest).contains(sbom.digest))
        #expect(Set(plan.blobs.map(\.descriptor.digest)).count == plan.blobs.count)
    }

    @Test func withoutTheFlagNothingIsLookedFor() async throws {
        let (source, ref, _, _, _, _) = try signedImage()
        let plan = try await planner(source).plan([CopyRequest(reference: ref)])
        #expect(plan.images.count == 1)
    }

    /// A registry with the referrers API and no referrers tag: the API's answer becomes the
    /// referrers tag's index, in digest order whatever order the registry answered in.
    @Test func theReferrersAPIsAnswerBecomesTheReferrersTag() async throws {
        let (source, ref, image, _, sbom, _) = try signedImage(referrersTag: false)
        var other = sbom
        other.digest = Digest.sha256(of: Data("another".utf8))
        var second = ImageManifest(mediaType: .ociManifest, config: source.blob(Data("{}".utf8), MediaType(rawValue: "application/vnd.oci.empty.v1+json")),
                                   layers: [source.blob(Data("vex".utf8), MediaType(rawValue: "application/vnd.openvex+json"))])
        second.subject = image
        var vex = source.document(try CanonicalJSON.encode(second), .ociManifest)
        vex.artifactType = "application/vnd.openvex+json"
        let answer = ImageIndex(mediaType: .ociIndex, manifests: [sbom, vex].sorted { $0.digest > $1.digest })
        source.referrersAPI = [image.digest: try CanonicalJSON.encode(answer)]
        var request = CopyRequest(reference: ref)
        request.attachments = true
        let plan = try await planner(source).plan([request])
        let referrers = try #require(plan.images.first { $0.request.attachment?.kind == .referrers })
        #expect(referrers.name.tag == "sha256-\(image.digest.encoded)")
        let index = try ImageIndex.decode(try #require((try plan.documents.bytes(referrers.top.digest))))
        #expect(index.manifests.map(\.digest) == [sbom.digest, vex.digest].sorted())
        #expect(index.manifests.map(\.artifactType) == [sbom, vex].sorted { $0.digest < $1.digest }.map(\.artifactType))
    }

    /// A "signature" tag pointing at a big image is refused, not carried.
    @Test func anAttachmentTheSizeOfAnImageIsRefused() async throws {
        let source = FakeSource()
        let image = try source.image(amd64, layers: ["app"])
        let ref = try source.tag("reg.example/team/app:1", image)
        let config = source.blob(Data("{}".utf8), .ociConfig)
        let huge = Descriptor(mediaType: .ociLayer, digest: Digest.sha256(of: Data("huge".utf8)), size: 3 << 30)
        let big = source.document(try CanonicalJSON.encode(ImageManifest(mediaType: .ociManifest, config: config, layers: [huge])), .ociManifest)
        _ = try source.tag("reg.example/team/app:sha256-\(image.digest.encoded).sig", big)
        var request = CopyRequest(reference: ref)
        request.attachments = true
        await #expect(throws: ContentError.self) { _ = try await planner(source).plan([request]) }
        #expect(source.blobReads.isEmpty, "nothing was read of it")
    }
}
