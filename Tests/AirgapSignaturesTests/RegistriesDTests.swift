import AirgapOCI
import AirgapSignatures
import Foundation
import Testing

/// registries.d as containers/image reads it: the most specific scope wins, the old key names
/// count, a scope set twice is an error, and signature paths are laid out as c/image lays them.
@Suite struct RegistriesDTests {
    func directory(_ files: [String: String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("registries.d-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }
        return dir
    }

    @Test func theMostSpecificScopeWinsThenDefaultDocker() throws {
        let dir = try directory([
            "a.yaml": "docker:\n  reg.example:\n    lookaside: file:///srv/host\n  reg.example/team:\n    sigstore: https://sigs.example/team\n",
            "b.yaml": "default-docker:\n  lookaside: file:///srv/default\n  lookaside-staging: file:///srv/staging\n",
            "ignored.txt": "docker: {nonsense",
        ])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try RegistriesD.load(directory: dir)
        #expect(config.entry(for: try Reference(parsing: "reg.example/team/app:1"))?.lookaside == "https://sigs.example/team")
        #expect(config.entry(for: try Reference(parsing: "reg.example/other/app"))?.lookaside == "file:///srv/host")
        let fallback = config.entry(for: try Reference(parsing: "elsewhere.example/x"))
        #expect(fallback?.lookaside == "file:///srv/default" && fallback?.staging == "file:///srv/staging")
        #expect(RegistriesD.directory(base: "file:///srv/host/", repository: try Reference(parsing: "reg.example/team/app:1"),
                                      digest: Digest.sha256(of: Data("m".utf8)))
                == "file:///srv/host/team/app@sha256=\(Digest.sha256(of: Data("m".utf8)).encoded)")
    }

    @Test func aScopeSetTwiceIsRefused() throws {
        let dir = try directory(["a.yaml": "docker:\n  reg.example:\n    lookaside: file:///a\n", "b.yaml": "docker:\n  reg.example:\n    lookaside: file:///b\n"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: SignatureError.self) { try RegistriesD.load(directory: dir) }
    }

    @Test func signaturesAreAddedOnceAndNeverReplaced() throws {
        let dir = try directory([:])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = dir + "/team/app@sha256=abc"
        #expect(try LookasideFiles.add([Data("one".utf8), Data("two".utf8)], directory: store) == 2)
        #expect(try LookasideFiles.add([Data("two".utf8), Data("three".utf8)], directory: store) == 1)
        #expect(try LookasideFiles.read(directory: store) == [Data("one".utf8), Data("two".utf8), Data("three".utf8)])
        try FileManager.default.createDirectory(atPath: store + "/signature-4", withIntermediateDirectories: true)
        #expect(try LookasideFiles.read(directory: store).count == 3, "a directory is no signature, and ends the list")
    }
}
