import AirgapOCI
import Foundation

/// Checks containers' simple-signing signatures (containers-signature(5), `skopeo copy
/// --sign-by`): an OpenPGP signed message, checked by the system's `gpgv` against the OpenPGP
/// keys given, whose JSON names the manifest digest (`critical.image.docker-manifest-digest`) and
/// the reference it was signed for (`critical.identity.docker-reference`, with its tag).
public struct SimpleSigningVerifier: Sendable {
    public static let payloadType = "atomic container signature"
    public let keys: [ImageKey]
    public init(keys: [ImageKey]) { self.keys = keys.filter { $0.kind == .openPGP } }

    public func check(subjects: [Digest], reference: Reference, signatures: [Data]) throws -> SignatureOutcome {
        guard !keys.isEmpty else { return signatures.isEmpty ? .unsigned : .otherKey(count: signatures.count) }
        guard !signatures.isEmpty else { return .unsigned }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("airgap-gpgv-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keyring = dir + "/keyring.gpg"
        try keys.reduce(into: Data()) { $0.append($1.der) }.write(to: URL(fileURLWithPath: keyring))
        var best = SignatureOutcome.unsigned
        for (n, signature) in signatures.enumerated() {
            let file = dir + "/signature-\(n)", payloadFile = dir + "/payload-\(n)"
            try signature.write(to: URL(fileURLWithPath: file))
            guard let fingerprint = try Self.gpgv(keyring: keyring, signature: file, output: payloadFile),
                  keys.contains(where: { $0.primaryFingerprints.contains(fingerprint) }),
                  let payload = FileManager.default.contents(atPath: payloadFile) else {
                if best.rank < SignatureOutcome.otherKey(count: 0).rank { best = .otherKey(count: n + 1) }
                continue
            }
            let outcome = Self.claims(payload, subjects: subjects, reference: reference, key: "openpgp:" + fingerprint, signature: Digest.sha256(of: signature))
            if outcome.rank > best.rank { best = outcome }
            if best.isVerified { return best }
        }
        if case .otherKey = best { return .otherKey(count: signatures.count) }
        return best
    }

    /// Runs gpgv; the primary key fingerprint of a good signature (from its VALIDSIG status line), or nil.
    static func gpgv(keyring: String, signature: String, output: String) throws -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/gpgv")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gpgv") else {
            throw SignatureError("gpgv is not installed (Debian: apt-get install gpgv); it checks containers' GPG signatures")
        }
        process.arguments = ["--keyring", keyring, "--status-fd", "1", "--output", output, signature]
        let status = Pipe()
        process.standardOutput = status
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: status.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return goodSignature(status: text)
    }

    /// gpgv exits 0 for a signature by an expired or revoked key too (and says so only in its
    /// status lines), which containers' signedBy refuses: a good signature is a GOODSIG with its
    /// VALIDSIG and none of the lines that take it back. Returns the primary key's fingerprint.
    public static func goodSignature(status text: String) -> String? {
        let lines = text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let refusals: Set<String> = ["EXPKEYSIG", "REVKEYSIG", "EXPSIG", "BADSIG", "ERRSIG", "NO_PUBKEY", "KEYREVOKED", "KEYEXPIRED"]
        guard !lines.contains(where: { $0.count > 1 && $0[0] == "[GNUPG:]" && refusals.contains($0[1]) }),
              lines.contains(where: { $0.count > 1 && $0[0] == "[GNUPG:]" && $0[1] == "GOODSIG" }),
              let valid = lines.first(where: { $0.count > 2 && $0[0] == "[GNUPG:]" && $0[1] == "VALIDSIG" }) else { return nil }
        // [GNUPG:] VALIDSIG <signing key fpr> <date> <timestamp> <expires> <version> <reserved> <pk algo> <hash algo> <class> <primary key fpr>
        return valid.last
    }

    static func claims(_ payload: Data, subjects: [Digest], reference: Reference, key: String, signature: Digest) -> SignatureOutcome {
        let claims: SigningClaims
        switch SigningClaims.parse(payload, type: payloadType, subjects: subjects) {
        case .failure(let outcome): return outcome
        case .success(let parsed): claims = parsed
        }
        // containers/image's default (matchRepoDigestOrExact): the same repository, and the same
        // tag when the image is named by one.
        guard let signed = try? Reference(parsing: claims.identity), CosignVerifier.sameRepository(claims.identity, reference),
              reference.tag == nil || signed.tag == reference.tag else {
            return .identityMismatch(claimed: claims.identity)
        }
        return .verified(key: key, signature: signature)
    }
}
