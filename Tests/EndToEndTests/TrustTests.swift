import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

/// Pinned signers and rollback refusal, through the built binaries against the real registry.
@Suite(.enabled(if: TestRegistries.available && toolAvailable("skopeo")), .serialized)
struct TrustTests {
    @Test func trustedSignersReplaceKeyAndCanBeRemoved() throws {
        let f = try BundleFixture()
        try f.expectOK(try f.makeBundle())
        let store = f.dir.file("in")
        // No key and nobody trusted: a usage error that says what to do.
        let bare = try f.importer(["verify", f.bundle], store: store)
        #expect(bare.status == 2 && bare.stderr.contains("trust add"), "\(bare.stderr)")
        let added = try f.importer(["trust", "add", f.pub], store: store)
        #expect(added.status == 0 && added.stdout.contains("Trusted: sha256:"), "\(added.stderr)")
        let fingerprint = String(added.stdout.split(separator: " ")[1])
        #expect(try f.importer(["trust", "ls"], store: store).stdout.contains(fingerprint))
        let verified = try f.importer(["verify", f.bundle], store: store)
        #expect(verified.status == 0 && verified.stdout.contains("valid (signer \(fingerprint))"), "\(verified.stdout)\(verified.stderr)")
        try f.expectOK(try f.importer(["load", f.bundle], store: store))
        // A bundle by another signer is refused by the trusted set.
        try f.expectOK(try f.exporter(["keygen", "--output-prefix", f.dir.file("stranger")]))
        try f.expectOK(try f.exporter(["bundle", "-f", f.manifest, "-o", f.dir.file("stranger.tar"), "--key", f.dir.file("stranger.key")]))
        let stranger = try f.importer(["verify", f.dir.file("stranger.tar")], store: store)
        #expect(stranger.status == 3 && stranger.stderr.contains("trusted signer"), "\(stranger.stderr)")
        // Removed by a prefix of its fingerprint: back to needing a key.
        try f.expectOK(try f.importer(["trust", "rm", String(fingerprint.prefix(24))], store: store))
        #expect(try f.importer(["verify", f.bundle], store: store).status == 2)
    }

    @Test func anOlderBundleCannotMoveTagsBack() throws {
        let f = try BundleFixture()
        let store = f.dir.file("in")
        // The older bundle: app-1:1.0 as it is now, signed at T1.
        try f.expectOK(try f.makeBundle(output: f.dir.file("old.tar"), created: 1_700_000_000))
        // The tag moves on the outside (app-2's content under app-1:1.0); the newer bundle carries that, at T2.
        let moved = try runProcess("skopeo", ["copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                                              "docker://\(f.source)/app-2:1.0", "docker://\(f.source)/app-1:1.0"])
        #expect(moved.status == 0, "\(moved.stderr)")
        try f.expectOK(try f.makeBundle(output: f.dir.file("new.tar"), created: 1_800_000_000))
        try f.expectOK(try f.importer(["load", f.dir.file("new.tar"), "--key", f.pub], store: store))
        let before = try storeListing(f, store)
        // Replaying the older genuine bundle would point app-1:1.0 back: refused, nothing written.
        let replay = try f.importer(["load", f.dir.file("old.tar"), "--key", f.pub], store: store)
        #expect(replay.status == 3, "\(replay.stderr)")
        #expect(replay.stderr.contains("rollback") && replay.stderr.contains("app-1:1.0")
                && replay.stderr.contains("2027-01-15T08:00:00Z") && replay.stderr.contains("2023-11-14T22:13:20Z"), "\(replay.stderr)")
        #expect(try storeListing(f, store) == before)
        // Loading the newer one again is fine; the older one with --allow-rollback is what the operator asked for.
        try f.expectOK(try f.importer(["load", f.dir.file("new.tar"), "--key", f.pub], store: store))
        try f.expectOK(try f.importer(["load", f.dir.file("old.tar"), "--key", f.pub, "--allow-rollback"], store: store))

        // The same for a push target.
        let prefix = TestRegistries.uniqueRepository("rollback")
        let target = "\(f.registries.plain)/\(prefix)"
        let pushStore = f.dir.file("pusher")
        try f.expectOK(try f.importer(["push", f.dir.file("new.tar"), "--key", f.pub, "--to", target], store: pushStore))
        let digestBefore = try runProcess("skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://\(target)/\(f.repo)/app-1:1.0"]).stdout
        let pushBack = try f.importer(["push", f.dir.file("old.tar"), "--key", f.pub, "--to", target], store: pushStore)
        #expect(pushBack.status == 3 && pushBack.stderr.contains("rollback"), "\(pushBack.stderr)")
        #expect(try runProcess("skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://\(target)/\(f.repo)/app-1:1.0"]).stdout == digestBefore)

        // And for copy, which reads bundles too: the same history, the same refusal.
        let copyStore = f.dir.file("copier")
        try f.expectOK(try f.importer(["copy", "bundle:\(f.dir.file("new.tar"))", "--key", f.pub, "store:"], store: copyStore))
        let listed = try storeListing(f, copyStore)
        let copyBack = try f.importer(["copy", "bundle:\(f.dir.file("old.tar"))", "--key", f.pub, "store:"], store: copyStore)
        #expect(copyBack.status == 3 && copyBack.stderr.contains("rollback"), "\(copyBack.stderr)")
        #expect(try storeListing(f, copyStore) == listed)
        try f.expectOK(try f.importer(["copy", "bundle:\(f.dir.file("old.tar"))", "--key", f.pub, "--allow-rollback", "store:"], store: copyStore))
    }
}
