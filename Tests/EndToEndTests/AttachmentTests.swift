import AirgapOCI
import AirgapTestSupport
import Foundation
import Testing

/// Signatures, SBOMs and referrers travel with their images: cosign-format signatures and an OCI
/// 1.1 SBOM referrer (with a signature of its own) written into distribution 2.8 by
/// scripts/cosign-fixture.py, exported, loaded, pushed and served.
@Suite(.enabled(if: TestRegistries.available && toolAvailable("skopeo")), .serialized)
struct AttachmentTests {
    struct Attached: Decodable { var subject: String; var signature: String; var sbom: String; var referrersIndex: String; var sbomSignature: String }

    static func fixture(_ f: BundleFixture) throws -> Attached {
        let script = packageRoot + "/scripts/cosign-fixture.py"
        try f.expectOK(try runProcess("/usr/bin/python3", [script, "keygen", f.dir.path]))
        let attached = try runProcess("/usr/bin/python3", [script, "attach", f.registries.plain, "\(f.repo)/app-1", "1.0", f.dir.file("cosign.key")])
        try f.expectOK(attached)
        return try JSONDecoder().decode(Attached.self, from: Data(attached.stdout.utf8))
    }

    static func tag(_ digest: String, _ suffix: String = "") -> String { digest.replacingOccurrences(of: ":", with: "-") + suffix }

    @Test func signaturesAndReferrersAreCarriedLoadedPushedAndServed() throws {
        let f = try BundleFixture()
        let a = try Self.fixture(f)
        try f.expectOK(try f.makeBundle())
        try f.expectOK(try f.importer(["verify", f.bundle, "--key", f.pub], store: f.dir.file("in")))

        // bundle.json lists them under their image; index.json names them by their tags.
        let metadata = try runProcess("tar", ["xOf", f.bundle, "airgap/bundle.json"]).stdout
        let object = try JSONSerialization.jsonObject(with: Data(metadata.utf8)) as! [String: Any]
        let images = object["images"] as! [[String: Any]]
        let app1 = images.first { ($0["reference"] as? String) == "\(f.source)/app-1:1.0" }!
        let attachments = (app1["attachments"] as? [[String: Any]]) ?? []
        let kinds = attachments.map { "\($0["kind"]!) \($0["subject"]!) \($0["digest"]!)" }.sorted()
        #expect(kinds == ["referrers \(a.subject) \(a.referrersIndex)", "signature \(a.sbom) \(a.sbomSignature)", "signature \(a.subject) \(a.signature)"].sorted(),
                "\(kinds)")
        #expect(images.contains { ($0["reference"] as? String) == "\(f.source)/app-1:\(Self.tag(a.subject, ".sig"))" && ($0["attachedTo"] as? String) == "\(f.source)/app-1:1.0" })
        // The Docker view lists images an engine can load, never the attachments.
        let dockerView = try runProcess("tar", ["xOf", f.bundle, "manifest.json"]).stdout
        #expect(!dockerView.contains(".sig") && dockerView.contains("app-1:1.0"))
        let other = images.first { ($0["reference"] as? String) == "\(f.source)/app-2:1.0" }!
        #expect(other["attachments"] == nil)

        // load: the store holds them by tag, so they can be pushed and served from it too.
        let store = f.dir.file("in")
        try f.expectOK(try f.importer(["load", f.bundle, "--key", f.pub], store: store))
        let listed = try f.importer(["image", "ls", "-a"], store: store).stdout
        #expect(listed.contains(Self.tag(a.subject, ".sig")) && listed.contains(Self.tag(a.sbom, ".sig")), "\(listed)")
        // Without -a, as Docker hides intermediate images, the attachments stay out of the list.
        #expect(!(try f.importer(["images"], store: store).stdout.contains(".sig")))

        // push: the signature verifies there (an independent verifier: Python's cryptography),
        // and the referrers tag lists the SBOM for clients of a registry without the API.
        let inside = f.registries.plain
        try f.expectOK(try f.importer(["push", f.bundle, "--key", f.pub, "--to", "\(inside)/inside"], store: store))
        let pushedRepo = "inside/\(f.repo)/app-1"
        let checked = try runProcess("/usr/bin/python3", [packageRoot + "/scripts/cosign-fixture.py", "verify", inside, pushedRepo, "1.0", f.dir.file("cosign.pub")])
        #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
        let fallback = try curl(["--fail", "-H", "Accept: application/vnd.oci.image.index.v1+json", "http://\(inside)/v2/\(pushedRepo)/manifests/\(Self.tag(a.subject))"])
        #expect(fallback.stdout.contains(a.sbom), "\(fallback.stdout)\(fallback.stderr)")
        #expect(try rawDigest("\(inside)/\(pushedRepo):\(Self.tag(a.sbom, ".sig"))") == String(a.sbomSignature.dropFirst(7)))

        // load --into docker: the engine gets the images (the Docker view leaves attachments out).
        if let engine = DockerEngine() {
            let load = try runProcess(builtBinary("airgap-import"), ["load", f.bundle, "--key", f.pub, "--into", "docker"],
                                      environment: ["DOCKER_HOST": "unix://\(engine.socket)"])
            #expect(load.status == 0, "\(load.stderr)")
            let images = try runProcess("docker", ["-H", "unix://\(engine.socket)", "images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout
            #expect(images.contains("\(f.source)/app-1:1.0") && !images.contains(".sig"), "\(images)")
        }

        // serve: the tags, and the referrers API answered from the subjects the bundle holds.
        let serve = try ServeProcess([f.bundle, "--key", f.pub], store: f.dir.file("serve-store"))
        #expect(serve.listening, "\(serve.out)\(serve.err)")
        guard serve.listening else { return }
        let referrers = try curl(["--fail", "http://\(serve.address)/v2/\(f.repo)/app-1/referrers/\(a.subject)"])
        #expect(referrers.stdout.contains(a.sbom) && referrers.stdout.contains("application/spdx+json"), "\(referrers.stdout)\(referrers.stderr)")
        #expect(try rawDigest("\(serve.address)/\(f.repo)/app-1:\(Self.tag(a.subject, ".sig"))") == String(a.signature.dropFirst(7)))
        #expect(serve.stop() == 0)
    }

    /// `referrers: false` leaves them out; an export from a registry with the referrers API (our
    /// own serve) finds the referrers through it and carries them as the referrers tag's index.
    @Test func referrersFalseLeavesThemOutAndTheAPIIsUsedWhereThereIsOne() throws {
        let f = try BundleFixture()
        let a = try Self.fixture(f)
        try Data("""
        apiVersion: airgap/v1
        kind: ImageSet
        referrers: false
        images:
          - \(f.source)/app-1:1.0
        """.utf8).write(to: URL(fileURLWithPath: f.manifest))
        try f.expectOK(try f.makeBundle())
        #expect(!(try f.tarEntries(f.bundle)).isEmpty)
        let without = try runProcess("tar", ["xOf", f.bundle, "airgap/bundle.json"]).stdout
        #expect(!without.contains("attachments") && !without.contains(".sig"))

        // A first bundle with everything, loaded into a store that is then served (serve has the
        // referrers API). In the store (an OCI layout) the referrers tag's entry is replaced by a
        // plain tag of the SBOM itself: only the API can tell what refers to the image.
        try Data("""
        apiVersion: airgap/v1
        kind: ImageSet
        images:
          - \(f.source)/app-1:1.0
        """.utf8).write(to: URL(fileURLWithPath: f.manifest))
        try f.expectOK(try f.makeBundle())
        let store = f.dir.file("in")
        try f.expectOK(try f.importer(["load", f.bundle, "--key", f.pub], store: store))
        let edit = """
        import json, sys
        path, tag, sbom = sys.argv[1:4]
        index = json.load(open(path))
        for entry in index["manifests"]:
            name = entry.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
            if name.endswith(":" + tag):
                referrers = json.load(open(path.replace("index.json", "blobs/sha256/" + entry["digest"][7:])))
                entry.update({k: v for k, v in referrers["manifests"][0].items() if k in ("mediaType", "digest", "size")})
                entry["annotations"]["org.opencontainers.image.ref.name"] = name[: -len(tag)] + "sbom"
        json.dump(index, open(path, "w"))
        """
        try f.expectOK(try runProcess("/usr/bin/python3", ["-c", edit, store + "/index.json", Self.tag(a.subject), a.sbom]))
        let serve = try ServeProcess([], store: store)
        #expect(serve.listening, "\(serve.out)\(serve.err)")
        guard serve.listening else { return }
        try Data("""
        apiVersion: airgap/v1
        kind: ImageSet
        images:
          - \(serve.address)/\(f.repo)/app-1:1.0
        """.utf8).write(to: URL(fileURLWithPath: f.manifest))
        let second = f.dir.file("second.tar")
        try f.expectOK(try f.makeBundle(output: second))
        let metadata = try runProcess("tar", ["xOf", second, "airgap/bundle.json"]).stdout
        let images = (try JSONSerialization.jsonObject(with: Data(metadata.utf8)) as! [String: Any])["images"] as! [[String: Any]]
        let kinds = images.flatMap { ($0["attachments"] as? [[String: Any]] ?? []).map { "\($0["kind"]!) \($0["reference"]!)" } }
        #expect(kinds.contains("referrers \(serve.address)/\(f.repo)/app-1:\(Self.tag(a.subject))"), "\(kinds)")
        #expect(try f.tarEntries(second).contains("blobs/sha256/\(a.sbom.dropFirst(7))"), "the SBOM the API named travels")
        let listed = try runProcess("/bin/sh", ["-c", "tar xOf '\(second)' index.json"]).stdout
        #expect(listed.contains("app-1:\(Self.tag(a.subject))"))
        #expect(serve.stop() == 0)
    }

    /// `--image-key` and `verify: {key:}`: only images signed with the key are carried; what fails
    /// is named with its reason (exit 3) and no bundle is written.
    @Test func exportCarriesOnlyImagesSignedWithTheKey() throws {
        let f = try BundleFixture()
        let a = try Self.fixture(f)
        let pub = f.dir.file("cosign.pub")
        func bundle(_ yaml: String, _ extra: [String] = []) throws -> ProcessResult {
            try Data("apiVersion: airgap/v1\nkind: ImageSet\n\(yaml)".utf8).write(to: URL(fileURLWithPath: f.manifest))
            try? FileManager.default.removeItem(atPath: f.bundle)
            return try f.makeBundle(extra)
        }
        let signed = try bundle("images:\n  - \(f.source)/app-1:1.0\n", ["--image-key", pub])
        #expect(signed.status == 0, "\(signed.stderr)")
        #expect(signed.stderr.contains("signed by sha256:"), "\(signed.stderr)")
        let perImage = try bundle("images:\n  - ref: \(f.source)/app-1:1.0\n    verify: {key: cosign.pub}\n  - \(f.source)/app-2:1.0\n")
        #expect(perImage.status == 0, "a key on one image leaves the others alone: \(perImage.stderr)")

        let unsigned = try bundle("verify: {key: cosign.pub}\nimages:\n  - \(f.source)/app-1:1.0\n  - \(f.source)/app-2:1.0\n")
        #expect(unsigned.status == 3 && unsigned.stderr.contains("images.yaml:6: \(f.source)/app-2:1.0 is not carried: unsigned"), "\(unsigned.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.bundle))

        try FileManager.default.createDirectory(atPath: f.dir.file("other"), withIntermediateDirectories: true)
        try f.expectOK(try runProcess("/usr/bin/python3", [packageRoot + "/scripts/cosign-fixture.py", "keygen", f.dir.file("other")]))
        let otherKey = try bundle("images:\n  - \(f.source)/app-1:1.0\n", ["--image-key", f.dir.file("other/cosign.pub")])
        #expect(otherKey.status == 3 && otherKey.stderr.contains("not by a key given"), "\(otherKey.stderr)")

        // app-1's signature put up as app-2's: signed by the key, but over another digest.
        let app2 = try runProcess("/bin/sh", ["-c", "skopeo inspect --raw --tls-verify=false docker://\(f.source)/app-2:1.0 | sha256sum"]).stdout.prefix(64)
        try f.expectOK(try runProcess("skopeo", ["copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
                                                 "docker://\(f.source)/app-1:\(Self.tag(a.subject, ".sig"))", "docker://\(f.source)/app-2:sha256-\(app2).sig"]))
        let replayed = try bundle("images:\n  - \(f.source)/app-2:1.0\n", ["--image-key", pub])
        #expect(replayed.status == 3 && replayed.stderr.contains("digest mismatch"), "\(replayed.stderr)")

        // The image and its signature copied to another repository: the signature names the first.
        for tag in ["1.0", Self.tag(a.subject, ".sig")] {
            try f.expectOK(try runProcess("skopeo", ["copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
                                                     "docker://\(f.source)/app-1:\(tag)", "docker://\(f.registries.plain)/\(f.repo)/moved:\(tag)"]))
        }
        let moved = try bundle("images:\n  - \(f.registries.plain)/\(f.repo)/moved:1.0\n", ["--image-key", pub])
        #expect(moved.status == 3 && moved.stderr.contains("identity mismatch"), "\(moved.stderr)")
    }

    /// Inside, `--image-key` checks every image's signature from the bundle's bytes before
    /// anything is loaded, pushed, handed to an engine or served.
    @Test func theInsideChecksImageSignaturesBeforeAnythingHappens() throws {
        let f = try BundleFixture()
        let a = try Self.fixture(f)
        try Data("apiVersion: airgap/v1\nkind: ImageSet\nimages:\n  - \(f.source)/app-1:1.0\n".utf8).write(to: URL(fileURLWithPath: f.manifest))
        try f.expectOK(try f.makeBundle())
        try FileManager.default.createDirectory(atPath: f.dir.file("other"), withIntermediateDirectories: true)
        try f.expectOK(try runProcess("/usr/bin/python3", [packageRoot + "/scripts/cosign-fixture.py", "keygen", f.dir.file("other")]))
        let good = f.dir.file("cosign.pub"), other = f.dir.file("other/cosign.pub")
        let store = f.dir.file("in")

        let verified = try f.importer(["verify", f.bundle, "--key", f.pub, "--image-key", good], store: store)
        #expect(verified.status == 0 && verified.stderr.contains("Image signature: \(f.source)/app-1:1.0: signed by sha256:"), "\(verified.stderr)")
        let wrong = try f.importer(["verify", f.bundle, "--key", f.pub, "--image-key", other], store: store)
        #expect(wrong.status == 3 && wrong.stderr.contains("not by a key given"), "\(wrong.stderr)")

        // The audit shows each attachment, and each signature's check with the key that verified it.
        let audit = try f.importer(["audit", f.bundle, "--key", f.pub, "--image-key", good, "--format", "json"], store: store)
        #expect(audit.status == 0, "\(audit.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(audit.stdout.utf8)) as! [String: Any]
        let image = (report["images"] as! [[String: Any]]).first { ($0["reference"] as? String) == "\(f.source)/app-1:1.0" }!
        let attachments = image["attachments"] as! [[String: Any]]
        let signature = attachments.first { ($0["kind"] as? String) == "signature" && ($0["subject"] as? String) == a.subject }!
        #expect(signature["verification"] as? String == "verified" && (signature["keyFingerprint"] as? String)?.hasPrefix("sha256:") == true, "\(signature)")
        #expect((signature["contents"] as? [String]) == ["application/vnd.dev.cosign.simplesigning.v1+json"])
        let referrers = attachments.first { ($0["kind"] as? String) == "referrers" }!
        #expect((referrers["contents"] as? [String]) == ["application/spdx+json"])
        #expect((image["signatureCheck"] as? String)?.hasPrefix("signed by sha256:") == true)
        for format in ["text", "csv", "html"] {
            let out = try f.importer(["audit", f.bundle, "--key", f.pub, "--image-key", good, "--format", format], store: store)
            #expect(out.status == 0 && out.stdout.contains(a.signature) && out.stdout.contains("verified"), "\(format): \(out.stdout)")
        }
        let failedAudit = try f.importer(["audit", f.bundle, "--key", f.pub, "--image-key", other, "--format", "text"], store: store)
        #expect(failedAudit.status == 3 && failedAudit.stdout.contains("FAIL") && failedAudit.stdout.contains("not by a key given"), "\(failedAudit.stdout)")

        let refused = try f.importer(["load", f.bundle, "--key", f.pub, "--image-key", other], store: store)
        #expect(refused.status == 3 && refused.stderr.contains("nothing was loaded"), "\(refused.stderr)")
        let listed = try f.importer(["image", "ls", "-q"], store: store)
        #expect(listed.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "a refused load left images: \(listed.stdout)")
        try f.expectOK(try f.importer(["load", f.bundle, "--key", f.pub, "--image-key", good], store: store))

        let target = "\(f.registries.plain)/signed-\(f.repo)"
        let pushRefused = try f.importer(["push", f.bundle, "--key", f.pub, "--image-key", other, "--to", target], store: store)
        #expect(pushRefused.status == 3 && pushRefused.stderr.contains("nothing was pushed"), "\(pushRefused.stderr)")
        let absent = try curl(["-o", "/dev/null", "-w", "%{http_code}", "http://\(f.registries.plain)/v2/signed-\(f.repo)/\(f.repo)/app-1/manifests/1.0"])
        #expect(absent.stdout == "404", "\(absent.stdout)")
        try f.expectOK(try f.importer(["push", f.bundle, "--key", f.pub, "--image-key", good, "--to", target], store: store))

        let serveRefused = try ServeProcess([f.bundle, "--key", f.pub, "--image-key", other], store: store)
        #expect(!serveRefused.listening && serveRefused.stop() == 3, "\(serveRefused.err)")
        let serving = try ServeProcess([f.bundle, "--key", f.pub, "--image-key", good], store: store)
        #expect(serving.listening, "\(serving.err)")
        #expect(serving.stop() == 0)

        if let engine = DockerEngine() {
            let load = try runProcess(builtBinary("airgap-import"), ["load", f.bundle, "--key", f.pub, "--image-key", other, "--into", "docker"],
                                      environment: ["DOCKER_HOST": "unix://\(engine.socket)"])
            #expect(load.status == 3, "\(load.stderr)")
            let images = try runProcess("docker", ["-H", "unix://\(engine.socket)", "images", "-q"]).stdout
            #expect(images.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "the engine got images: \(images)")
        }
    }

    /// OCI artifacts that are no images (a Helm chart; an artifactType with no layers) are listed
    /// like images and carried, loaded, pushed and served byte for byte; engines get only images.
    @Test func artifactsTravelByteForByte() throws {
        let f = try BundleFixture()
        let script = packageRoot + "/scripts/cosign-fixture.py"
        let made = try runProcess("/usr/bin/python3", [script, "artifacts", f.registries.plain, f.repo])
        try f.expectOK(made)
        let digests = try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as! [String: String]
        try Data("apiVersion: airgap/v1\nkind: ImageSet\nimages:\n  - \(f.source)/chart:0.1.0\n  - \(f.source)/module:1\n  - \(f.source)/app-1:1.0\n"
            .utf8).write(to: URL(fileURLWithPath: f.manifest))
        try f.expectOK(try f.makeBundle())
        try f.expectOK(try f.importer(["verify", f.bundle, "--key", f.pub], store: f.dir.file("in")))
        let dockerView = try runProcess("tar", ["xOf", f.bundle, "manifest.json"]).stdout
        #expect(dockerView.contains("app-1:1.0") && !dockerView.contains("chart") && !dockerView.contains("module"), "\(dockerView)")

        let store = f.dir.file("in")
        try f.expectOK(try f.importer(["load", f.bundle, "--key", f.pub], store: store))
        let listed = try f.importer(["image", "ls"], store: store).stdout
        #expect(listed.contains("\(f.source)/chart") && listed.contains("\(f.source)/module"), "\(listed)")

        let inside = "\(f.registries.plain)/art-\(f.repo)"
        try f.expectOK(try f.importer(["push", f.bundle, "--key", f.pub, "--to", inside], store: store))
        for (name, tag, key) in [("chart", "0.1.0", "chart"), ("module", "1", "module")] {
            #expect("sha256:" + (try rawDigest("\(inside)/\(f.repo)/\(name):\(tag)")) == digests[key])
        }
        let serve = try ServeProcess([f.bundle, "--key", f.pub], store: f.dir.file("serve-store"))
        #expect(serve.listening, "\(serve.err)")
        if serve.listening {
            #expect("sha256:" + (try rawDigest("\(serve.address)/\(f.repo)/chart:0.1.0")) == digests["chart"])
            let layers = try curl(["--fail", "-H", "Accept: application/vnd.oci.image.manifest.v1+json", "http://\(serve.address)/v2/\(f.repo)/module/manifests/1"])
            #expect(layers.stdout.contains("\"layers\":[]") && layers.stdout.contains("application/vnd.example.module.v1"), "\(layers.stdout)")
            #expect(serve.stop() == 0)
        }
        if let engine = DockerEngine() {
            let load = try runProcess(builtBinary("airgap-import"), ["load", f.bundle, "--key", f.pub, "--into", "docker"],
                                      environment: ["DOCKER_HOST": "unix://\(engine.socket)"])
            #expect(load.status == 0, "the engine takes the images and is not asked for the artifacts: \(load.stderr)")
        }
    }

    /// containers' simple signing, judged by the real peer: skopeo signs an image with GPG into a
    /// lookaside store; the signature crosses in the bundle; push writes it to the inside's
    /// lookaside under the new name; the inside's skopeo, with a signedBy policy and
    /// remapIdentity, accepts the pushed image and refuses the unsigned one.
    @Test(.enabled(if: toolAvailable("gpg"))) func simpleSigningSignaturesCrossAndTheInsidePolicyAcceptsThem() throws {
        let f = try BundleFixture()
        let gnupg = f.dir.file("gnupg")
        try FileManager.default.createDirectory(atPath: gnupg, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let env = ["GNUPGHOME": gnupg]
        try f.expectOK(try runProcess("gpg", ["--batch", "--passphrase", "", "--quick-gen-key", "airgap test <test@airgap.invalid>", "rsa2048", "sign", "never"], environment: env))
        let listing = try runProcess("gpg", ["--list-keys", "--with-colons"], environment: env).stdout
        let fingerprint = try #require(listing.split(separator: "\n").first { $0.hasPrefix("fpr:") }?.split(separator: ":", omittingEmptySubsequences: false)[9])
        let publicKey = f.dir.file("signer.gpg")
        try f.expectOK(try runProcess("/bin/sh", ["-c", "gpg --export \(fingerprint) > '\(publicKey)'"], environment: env))

        let registry = f.registries.plain
        func registriesD(_ name: String, scope: String, store: String) throws -> String {
            let dir = f.dir.file(name)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Data("docker:\n  \(scope):\n    lookaside: file://\(store)\n".utf8).write(to: URL(fileURLWithPath: dir + "/airgap-test.yaml"))
            return dir
        }
        let outside = try registriesD("outside.d", scope: "\(registry)/\(f.repo)", store: f.dir.file("outside-sigstore"))
        let signed = try runProcess("skopeo", ["copy", "--sign-by", String(fingerprint), "--registries.d", outside, "--src-tls-verify=false", "--dest-tls-verify=false",
                                               "docker://\(f.source)/app-1:1.0", "docker://\(f.source)/app-1:1.0"], environment: env)
        try f.expectOK(signed)

        try Data("apiVersion: airgap/v1\nkind: ImageSet\nimages:\n  - \(f.source)/app-1:1.0\n  - \(f.source)/app-2:1.0\n".utf8).write(to: URL(fileURLWithPath: f.manifest))
        try f.expectOK(try f.makeBundle(["--registries.d", outside]))
        let metadata = try runProcess("tar", ["xOf", f.bundle, "airgap/bundle.json"]).stdout
        let images = (try JSONSerialization.jsonObject(with: Data(metadata.utf8)) as! [String: Any])["images"] as! [[String: Any]]
        let app1 = images.first { ($0["reference"] as? String) == "\(f.source)/app-1:1.0" }!
        #expect((app1["lookasideSignatures"] as? [[String: Any]])?.count == 1, "\(app1)")

        let mirror = "mirror-\(f.repo)"
        let inside = try registriesD("inside.d", scope: "\(registry)/\(mirror)", store: f.dir.file("inside-sigstore"))
        let pushed = try f.importer(["push", f.bundle, "--key", f.pub, "--to", "\(registry)/\(mirror)", "--registries.d", inside], store: f.dir.file("in"))
        #expect(pushed.status == 0 && pushed.stderr.contains("1 written"), "\(pushed.stderr)")

        /// What the inside's skopeo makes of `SCOPE/REPO/NAME:1.0` under a signedBy policy for SCOPE
        /// whose names are remapped to the registry the images were signed in.
        func judged(_ name: String, scope: String, registriesD: String) throws -> ProcessResult {
            let policy = f.dir.file("policy-\(name).json")
            try Data("""
            {"default": [{"type": "reject"}], "transports": {"docker": {"\(scope)": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "\(publicKey)",
              "signedIdentity": {"type": "remapIdentity", "prefix": "\(scope)", "signedPrefix": "\(registry)"}}]},
              "oci": {"": [{"type": "insecureAcceptAnything"}]}}}
            """.utf8).write(to: URL(fileURLWithPath: policy))
            let out = f.dir.file("judged-\(UUID().uuidString)")
            let skopeo = try runProcess("skopeo", ["--policy", policy, "--registries.d", registriesD, "copy", "--remove-signatures", "--src-tls-verify=false",
                                                   "docker://\(scope)/\(f.repo)/\(name):1.0", "oci:\(out):x"])
            guard toolAvailable("podman") else { return skopeo }
            // podman judges alike: the same policy, and registries.d where containers/image looks for it under HOME.
            let home = f.dir.file("home-\(UUID().uuidString)")
            try FileManager.default.createDirectory(atPath: home + "/.config/containers", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: registriesD, toPath: home + "/.config/containers/registries.d")
            let short = f.dir.file("p\(name.suffix(1))\(scope.count % 10)")  // podman wants a runroot under 50 characters
            let podman = try runProcess("podman", ["--root", short + "/storage", "--runroot", short + "/run", "--storage-driver", "vfs",
                                                   "--events-backend", "none", "--cgroup-manager", "cgroupfs", "pull", "--signature-policy", policy,
                                                   "--tls-verify=false", "\(scope)/\(f.repo)/\(name):1.0"], environment: ["HOME": home])
            #expect((podman.status == 0) == (skopeo.status == 0), "podman and skopeo judge \(name) differently: \(podman.stderr) / \(skopeo.stderr)")
            return skopeo
        }
        func insideCopy(_ name: String) throws -> ProcessResult { try judged(name, scope: "\(registry)/\(mirror)", registriesD: inside) }
        let accepted = try insideCopy("app-1")
        #expect(accepted.status == 0, "the inside's policy refused the mirrored, signed image: \(accepted.stderr)")
        let refused = try insideCopy("app-2")
        #expect(refused.status != 0 && refused.stderr.contains("signature"), "an unsigned image passed a signedBy policy: \(refused.stderr)")
        // A second push adds nothing: the signature is there already.
        let again = try f.importer(["push", f.bundle, "--key", f.pub, "--to", "\(registry)/\(mirror)", "--registries.d", inside], store: f.dir.file("in"))
        #expect(again.status == 0 && again.stderr.contains("0 written to the lookaside store, 1 already there"), "\(again.stderr)")

        // --image-key with the OpenPGP key (binary or armored): gpgv checks the carried signatures.
        let store = f.dir.file("in")
        let unsignedToo = try f.importer(["verify", f.bundle, "--key", f.pub, "--image-key", publicKey], store: store)
        #expect(unsignedToo.status == 3 && unsignedToo.stderr.contains("app-2:1.0: unsigned"), "\(unsignedToo.stderr)")
        let refusedExport = try f.exporter(["bundle", "-f", f.manifest, "-o", f.dir.file("never.tar"), "--key", f.key, "--registries.d", outside, "--image-key", publicKey])
        #expect(refusedExport.status == 3 && refusedExport.stderr.contains("app-2:1.0 is not carried: unsigned"), "\(refusedExport.stderr)")
        try Data("apiVersion: airgap/v1\nkind: ImageSet\nimages:\n  - \(f.source)/app-1:1.0\n".utf8).write(to: URL(fileURLWithPath: f.manifest))
        let only = f.dir.file("signed-only.tar")
        let exported = try f.exporter(["bundle", "-f", f.manifest, "-o", only, "--key", f.key, "--registries.d", outside, "--image-key", publicKey])
        #expect(exported.status == 0 && exported.stderr.contains("signed by openpgp:\(fingerprint)"), "\(exported.stderr)")
        let armored = f.dir.file("signer.asc")
        try f.expectOK(try runProcess("/bin/sh", ["-c", "gpg --armor --export \(fingerprint) > '\(armored)'"], environment: env))
        let inside2 = try f.importer(["verify", only, "--key", f.pub, "--image-key", armored], store: store)
        #expect(inside2.status == 0 && inside2.stderr.contains("signed by openpgp:\(fingerprint)"), "\(inside2.stderr)")
        let audit = try f.importer(["audit", only, "--key", f.pub, "--image-key", publicKey, "--format", "json"], store: store)
        #expect(audit.status == 0 && audit.stdout.contains("\"simple-signing\"") && audit.stdout.contains("openpgp:\(fingerprint)"), "\(audit.stdout)")
        // A signature changed in the lookaside store on the outside no longer verifies.
        let sigFile = try #require(FileManager.default.enumerator(atPath: f.dir.file("outside-sigstore"))?.compactMap { $0 as? String }.first { $0.hasSuffix("signature-1") })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: f.dir.file("outside-sigstore/" + sigFile)))
        bytes[bytes.count - 10] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: f.dir.file("outside-sigstore/" + sigFile)))
        let tampered = try f.exporter(["bundle", "-f", f.manifest, "-o", f.dir.file("never.tar"), "--key", f.key, "--registries.d", outside, "--image-key", publicKey])
        #expect(tampered.status == 3 && tampered.stderr.contains("not by a key given"), "\(tampered.stderr)")

        // serve answers containers' lookaside protocol: the inside's skopeo, reading registries.d
        // from the written mirror configuration, accepts the served app-1 by its signature.
        let mirrorConfig = f.dir.file("serve-mirror")
        let serve = try ServeProcess([f.bundle, "--key", f.pub, "--mirror-config", mirrorConfig], store: f.dir.file("serve-store"))
        #expect(serve.listening, "\(serve.err)")
        guard serve.listening else { return }
        func servedCopy(_ name: String) throws -> ProcessResult {
            try judged(name, scope: serve.address, registriesD: mirrorConfig + "/containers/registries.d")
        }
        let servedAccepted = try servedCopy("app-1")
        #expect(servedAccepted.status == 0, "the policy refused the served, signed image: \(servedAccepted.stderr)")
        let servedRefused = try servedCopy("app-2")
        #expect(servedRefused.status != 0 && servedRefused.stderr.contains("signature"), "\(servedRefused.stderr)")
        #expect(serve.stop() == 0)
    }
}
