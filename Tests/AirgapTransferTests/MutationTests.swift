import AirgapBundle
import AirgapImageSet
import AirgapContent
import AirgapOCI
import AirgapStore
import AirgapTar
import AirgapTestSupport
import AirgapTransfer
import Foundation
import Testing

/// Bounded random mutation runs over the parsers (not coverage-guided fuzzing): every input must
/// give a value or a thrown error, never a crash or a hang. Seeds are fixed so a failure repeats.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func mutate(_ data: Data, _ rng: inout SeededRandom) -> Data {
    var bytes = [UInt8](data)
    let interesting: [UInt8] = [0, 0xff, UInt8(ascii: "\""), UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "@"), UInt8(ascii: "."), 0x80]
    for _ in 0..<Int.random(in: 1...4, using: &rng) {
        guard !bytes.isEmpty else { bytes.append(interesting.randomElement(using: &rng)!); continue }
        let i = Int.random(in: 0..<bytes.count, using: &rng)
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
        case 1: bytes[i] = interesting.randomElement(using: &rng)!
        case 2: bytes.remove(at: i)
        default: bytes.insert(contentsOf: bytes[i..<min(bytes.count, i + 8)], at: i)
        }
    }
    return Data(bytes)
}

@Suite struct MutationTests {
    @Test func referenceParserNeverCrashes() async {
        var rng = SeededRandom(state: 1)
        let seeds = ["httpd", "localhost:5000/a/b:1", "quay.io/x/y@sha256:" + String(repeating: "a", count: 64), "[::1]:5000/app:tag"]
        var accepted = 0
        for i in 0..<20_000 {
            let input = String(decoding: mutate(Data(seeds[i % seeds.count].utf8), &rng), as: UTF8.self)
            if let r = try? Reference(parsing: input) {
                accepted += 1
                // Whatever parses must print a form that parses back to the same value.
                #expect((try? Reference(parsing: r.description)) == r, "\(input) → \(r.description)")
            }
        }
        #expect(accepted > 0)
    }

    @Test func documentDecodersNeverCrash() async throws {
        var rng = SeededRandom(state: 2)
        let digest = "sha256:" + String(repeating: "b", count: 64)
        let seeds = [
            #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(digest)","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"\#(digest)","size":5,"annotations":{"a":"b"}}]}"#,
            #"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(digest)","size":7,"platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}"#,
            #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["\#(digest)"]},"history":[{"created_by":"x","empty_layer":true}]}"#,
        ]
        for i in 0..<15_000 {
            let data = mutate(Data(seeds[i % seeds.count].utf8), &rng)
            _ = try? ImageManifest.decode(data)
            _ = try? ImageIndex.decode(data)
            _ = try? ImageConfig.decode(data)
            _ = detectManifestMediaType(data)
        }
    }

    @Test func imageSetParserNeverCrashes() async {
        var rng = SeededRandom(state: 3)
        let seed = "apiVersion: airgap/v1\nkind: ImageSet\nplatforms: [linux/amd64]\nimages:\n  - httpd:2.4\n  - ref: alpine@sha256:\(String(repeating: "c", count: 64))\n    tag: v1\n    platforms: [linux/arm64]\nregistries:\n  localhost:5000: {insecure: true}\n"
        for _ in 0..<3_000 {
            let text = String(decoding: mutate(Data(seed.utf8), &rng), as: UTF8.self)
            _ = try? ImageSet.parse(text, path: "fuzz.yaml")
        }
    }

    /// A valid archive, mutated: the loader either loads it or refuses it, and a refusal leaves the store as it was.
    @Test func archiveLoaderSurvivesMutatedArchives() async throws {
        let (archive, _, _) = try await savedArchive(count: 1)
        var rng = SeededRandom(state: 4)
        let dir = TempDirectory("mutate")
        let store = try LocalStore(path: dir.path)
        for _ in 0..<300 {
            var data = archive
            // Mutate the headers and JSON, where the interesting parsing is (the first 8 KiB).
            let head = mutate(data.prefix(8192), &rng)
            data.replaceSubrange(0..<min(8192, data.count), with: head)
            let before = try StoreSnapshot(store)
            do {
                _ = try await ArchiveLoader(store: store).load(source: DataSource(data), sourceName: "mutated.tar")
                _ = try store.prune(all: true)
            } catch {
                #expect(try StoreSnapshot(store) == before, "a refused archive changed the store: \(error)")
            }
        }
    }
}
