import AirgapContent
import AirgapOCI
import Foundation
import Testing

/// containers/image's manifest fixtures (Debian's golang-github-containers-image-dev, installed by
/// scripts/install-deps.sh): every one is either walked or refused with a sentence, never a crash.
@Suite struct ContainersImageFixtureTests {
    static let directory = "/usr/share/gocode/src/github.com/containers/image/manifest/fixtures"
    static var available: Bool { FileManager.default.fileExists(atPath: directory) }
    static var required: Bool { ProcessInfo.processInfo.environment["AIRGAP_REQUIRE_REGISTRIES"] == "1" }

    func walk(_ name: String) throws -> ImageGraph {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(Self.directory)/\(name)"))
        let type = detectManifestMediaType(data) ?? .ociManifest
        let root = Descriptor(mediaType: type, digest: Digest.sha256(of: data), size: Int64(data.count))
        return try GraphWalk.run(GraphWalk(root: root, subject: name, allowAbsent: true)) { $0.digest == root.digest ? data : nil }
    }

    @Test func everyFixtureIsWalkedOrRefusedInWords() throws {
        guard Self.available else {
            if Self.required { Issue.record("\(Self.directory) is missing; run scripts/install-deps.sh") }
            return
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.directory).filter { $0.hasSuffix(".json") }
        #expect(names.count >= 20)
        for name in names.sorted() {
            do { _ = try walk(name) } catch let error as ContentError {
                #expect(!error.message.isEmpty && !error.message.contains("Swift."), "\(name): \(error)")
            } catch {
                Issue.record("\(name): not a ContentError: \(error)")
            }
        }
    }

    @Test func whatRealProducersWriteIsRead() throws {
        guard Self.available else { return }
        for name in ["v2s2.manifest.json", "ociv1.manifest.json", "ociv1.zstd.manifest.json", "v2s2.nondistributable.manifest.json"] {
            let graph = try walk(name)
            #expect(graph.images.count == 1 && !graph.blobs.isEmpty, "\(name)")
        }
        for name in ["v2list.manifest.json", "ociv1.image.index.json"] {
            let graph = try walk(name)
            #expect(graph.images.isEmpty && graph.absent.count >= 2, "\(name): an index whose children are elsewhere")
        }
        for name in ["v2s1.manifest.json", "v2s1-unsigned.manifest.json", "schema2-to-schema1-by-docker.json"] {
            do { _ = try walk(name); Issue.record("\(name) accepted") } catch let error as ContentError {
                #expect(error.kind == .unsupported && error.message.contains("schema 1"), "\(name): \(error)")
            }
        }
    }
}
