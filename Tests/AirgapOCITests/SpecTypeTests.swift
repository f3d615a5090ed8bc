import AirgapOCI
import Foundation
import Testing

@Suite struct DigestTests {
    @Test func sha256OfKnownInput() {
        #expect(Digest.sha256(of: Data("abc".utf8)).description
            == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func parsesSha512AndRejectsBadHex() throws {
        let d = try Digest(parsing: "sha512:" + String(repeating: "0", count: 128))
        #expect(d.algorithm == .sha512)
        #expect(throws: OCIError.self) { try Digest(parsing: "sha256:" + String(repeating: "A", count: 64)) }
        #expect(throws: OCIError.self) { try Digest(parsing: "sha256:" + String(repeating: "0", count: 63)) }
        #expect(throws: OCIError.self) { try Digest(parsing: "sha256:../../etc/passwd" + String(repeating: "0", count: 47)) }
    }

    @Test func streamingHasherMatchesOneShot() {
        let data = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        var hasher = DigestHasher()
        hasher.update(data.prefix(12345))
        hasher.update(data.dropFirst(12345))
        #expect(hasher.finalize() == Digest.sha256(of: data))
        #expect(hasher.byteCount == 100_000)
    }
}

/// Digests are held as 32 bytes and spelled on demand: what they say, how they order and how
/// they hash must be exactly what the text would give.
@Suite struct CompactDigestTests {
    @Test func spellingOrderAndEqualityAreTheText() throws {
        var generator = SystemRandomNumberGenerator()
        let texts = (0..<400).map { n -> String in
            // Shared prefixes too, so that the order is decided in every word.
            let prefix = String(repeating: "ab", count: n % 33)
            let rest = (0..<(64 - prefix.count)).map { _ in "0123456789abcdef".randomElement(using: &generator)! }
            return "sha256:" + prefix + String(rest)
        } + ["sha256:" + String(repeating: "0", count: 64), "sha256:" + String(repeating: "f", count: 64),
             "sha512:" + String(repeating: "0", count: 128), "sha512:" + String(repeating: "e", count: 127) + "f"]
        let digests = try texts.map { try Digest(parsing: $0) }
        #expect(digests.map(\.description) == texts)
        #expect(digests.map(\.encoded) == texts.map { String($0.split(separator: ":")[1]) })
        #expect(digests.sorted().map(\.description) == texts.sorted())
        #expect(Set(digests).count == Set(texts).count)
        #expect(try Digest(parsing: texts[5]) == digests[5])
        #expect(try Digest(parsing: texts[5]).hashValue == digests[5].hashValue)
        #expect(digests[0].shortID == String(texts[0].dropFirst(7).prefix(12)))
    }

    @Test func aHashAndItsParsedSpellingAreOneDigest() throws {
        let data = Data("the same bytes".utf8)
        let hashed = Digest.sha256(of: data)
        let parsed = try Digest(parsing: hashed.description)
        #expect(hashed == parsed)
        let decoded = try JSONDecoder().decode([Digest].self, from: JSONEncoder().encode([hashed]))
        #expect(decoded == [hashed])
    }
}

/// Timestamps are read and written without Foundation's ISO 8601 formatter (it loads ICU's
/// calendar data): the same text and the same instants as that formatter, and no more lenient.
@Suite struct RFC3339Tests {
    @Test func writesWhatTheFoundationFormatterWrote() {
        let foundation = ISO8601DateFormatter()
        foundation.formatOptions = [.withInternetDateTime]
        foundation.timeZone = TimeZone(identifier: "UTC")
        var generator = SystemRandomNumberGenerator()
        for seconds in [Int64(0), 951_782_400, 1_700_000_000, 4_102_444_799] + (0..<300).map({ _ in Int64.random(in: 0...4_102_444_799, using: &generator) }) {
            let text = RFC3339.format(seconds)
            #expect(text == foundation.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))))
            #expect(RFC3339.parse(text) == Date(timeIntervalSince1970: TimeInterval(seconds)))
        }
    }

    @Test func readsFractionsAndOffsetsAndRefusesWhatIsNoDate() {
        #expect(RFC3339.parse("2024-01-02T03:04:05.123456789Z")?.timeIntervalSince1970 == 1_704_164_645.123456789)
        #expect(RFC3339.parse("2024-01-02T04:04:05+01:00") == RFC3339.parse("2024-01-02T03:04:05Z"))
        #expect(RFC3339.parse("2024-01-02T02:34:05-00:30") == RFC3339.parse("2024-01-02T03:04:05Z"))
        for bad in ["", "2024-02-30T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:60Z",
                    "2024-01-01T00:00:00", "2024-01-01T00:00:00Zjunk", "2024-01-01 00:00:00Z", "2024-01-01T00:00:00.Z",
                    "2024-01-01T00:00:00+0100", "２０２４-01-01T00:00:00Z", "2024-1-01T00:00:00Z"] {
            #expect(RFC3339.parse(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct DescriptorBoxTests {
    /// The optional fields live in a shared box: a copy changed must not change the original.
    @Test func copiesStayIndependentAndTheFieldsCount() throws {
        var a = Descriptor(mediaType: .ociManifest, digest: Digest.sha256(of: Data("m".utf8)), size: 1,
                           annotations: ["k": "v"], platform: Platform(os: "linux", architecture: "amd64"))
        let original = a
        var b = a
        b.annotations?["k"] = "changed"
        b.platform = nil
        #expect(a == original)
        #expect(a.annotations == ["k": "v"] && a.platform?.architecture == "amd64")
        #expect(b.annotations == ["k": "changed"] && b.platform == nil)
        #expect(a != b)
        #expect(Set([a, b, original]).count == 2)
        a.annotations = nil
        a.platform = nil
        #expect(a == Descriptor(mediaType: .ociManifest, digest: a.digest, size: 1))
        b.artifactType = "application/x"
        b.urls = ["https://example.invalid/x"]
        let again = try JSONDecoder().decode(Descriptor.self, from: JSONEncoder().encode(b))
        #expect(again == b)
    }
}

@Suite struct PlatformTests {
    @Test func parsesAndNormalises() throws {
        let p = try Platform(parsing: "linux/arm64")
        #expect(p.normalized.variant == "v8")
        #expect(try Platform(parsing: "linux/aarch64").normalized.architecture == "arm64")
        #expect(throws: OCIError.self) { try Platform(parsing: "linux") }
        #expect(throws: OCIError.self) { try Platform(parsing: "linux//v7") }
    }

    @Test func variantMatching() throws {
        let arm64 = Platform(os: "linux", architecture: "arm64", variant: "v8")
        #expect(try Platform(parsing: "linux/arm64").matches(arm64))
        #expect(try Platform(parsing: "linux/arm64").matches(Platform(os: "linux", architecture: "arm64")))
        #expect(!(try Platform(parsing: "linux/amd64").matches(arm64)))
        let candidates = [Platform(os: "linux", architecture: "arm", variant: "v6"), Platform(os: "linux", architecture: "arm", variant: "v7")]
        #expect(try Platform(parsing: "linux/arm/v7").bestMatch(in: candidates) == 1)
        #expect(try Platform(parsing: "linux/arm/v7").bestMatch(in: [candidates[0]]) == 0)
        #expect(try Platform(parsing: "linux/arm/v6").bestMatch(in: [candidates[1]]) == nil)
    }
}

@Suite struct DocumentTests {
    @Test func unknownDescriptorFieldsSurviveARoundTrip() throws {
        let json = #"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:\#(String(repeating: "c", count: 64))","size":7,"x-vendor":{"k":[1,2]},"data":"e30="}"#
        let d = try JSONDecoder().decode(Descriptor.self, from: Data(json.utf8))
        #expect(d.unknownFields["x-vendor"] == .object(["k": .array([.int(1), .int(2)])]))
        let again = try JSONDecoder().decode(Descriptor.self, from: try CanonicalJSON.encode(d))
        #expect(again == d)
    }

    @Test func decodesDockerManifestListAndOCIManifest() throws {
        let list = #"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:\#(String(repeating: "1", count: 64))","size":527,"platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}"#
        let index = try ImageIndex.decode(Data(list.utf8))
        #expect(index.manifests[0].platform?.variant == "v7")
        #expect(detectManifestMediaType(Data(list.utf8)) == .dockerManifestList)
        let bad = #"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]}"#
        do { _ = try ImageManifest.decode(Data(bad.utf8)); Issue.record("accepted a bad digest") }
        catch { #expect("\(error)".contains("config")) }
    }

    @Test func configHistoryAndDiffIDs() throws {
        let json = #"{"architecture":"amd64","os":"linux","created":"2024-05-01T10:20:30.123456789Z","rootfs":{"type":"layers","diff_ids":["sha256:\#(String(repeating: "2", count: 64))"]},"history":[{"created_by":"/bin/sh -c #(nop) CMD [\"sh\"]","empty_layer":true}]}"#
        let config = try ImageConfig.decode(Data(json.utf8))
        #expect(config.rootfs.diffIDs.count == 1)
        #expect(config.history[0].emptyLayer == true)
        #expect(config.createdDate != nil)
    }
}
