import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapSignatures
import AirgapStore
import Foundation

/// The checksum audit report (schema `airgap-audit/v1`, documented in docs/audit-report.md).
/// It never holds credentials: only digests, sizes, names and results.
public struct AuditReport: Codable, Sendable {
    public struct FileEntry: Codable, Sendable { public var path: String; public var size: Int64; public var sha256: String }
    public struct Signature: Codable, Sendable { public var status: String; public var signerFingerprint: String? }
    public struct PlatformEntry: Codable, Sendable {
        public var platform: String; public var manifest: String; public var config: String; public var created: String?; public var size: Int64
    }
    public struct ImageEntry: Codable, Sendable {
        public var reference: String; public var digest: String; public var mediaType: String
        public var originalIndexDigest: String?; public var platforms: [PlatformEntry]; public var size: Int64
        /// With image keys: the image's signature check (`signed by sha256:…`, or why not).
        public var signatureCheck: String?
        public var attachments: [AttachmentEntry]?
    }
    /// A signature, attestation, SBOM or referrers index carried with an image.
    public struct AttachmentEntry: Codable, Sendable {
        public var reference: String; public var kind: String; public var digest: String; public var mediaType: String
        /// The manifest it is attached to.
        public var subject: String
        /// What it carries: its layers' media types, or a referrers index's artifact types.
        public var contents: [String]
        /// Signatures, with image keys: `verified` or why not, and the key that verified it.
        public var verification: String?
        public var keyFingerprint: String?
    }
    public struct BlobEntry: Codable, Sendable { public var digest: String; public var size: Int64; public var mediaType: String; public var result: String }

    public var schema = "airgap-audit/v1"
    public var tool: String
    public var generatedAt: String
    public var host: String
    /// What was audited: the bundle itself, or the store / registry it was loaded into.
    public var target: String
    public var result: String
    public var bundleFiles: [FileEntry]
    public var signature: Signature
    public var findings: [Finding]
    public var images: [ImageEntry]
    public var blobs: [BlobEntry]

    public var passed: Bool { result == "PASS" }

    /// Builds the report from a read of the bundle; with `store`, every blob is also checked (present
    /// and re-hashed) in that store.
    public static func make(_ read: BundleReadResult, store: LocalStore? = nil, imageKeys: [ImageKey] = [],
                            events: @escaping TransferEvents = { _ in }) -> AuditReport {
        var findings = read.findings
        let metadata = read.metadata
        // Re-hashing the store is a pass of its own, reported a blob at a time.
        if let store {
            events(.passStarted("the store \(store.root)", bytes: ((metadata?.blobs ?? []) + (metadata?.requiredOnInside ?? [])).reduce(0) { $0 + $1.size }))
        }
        defer { if store != nil { events(.passFinished) } }
        let storeCheck = { (store: LocalStore, digest: Digest, size: Int64, findings: inout [Finding]) -> String in
            defer { events(.passProgress(bytes: size)) }
            return Self.storeCheck(store, digest, size, &findings)
        }
        let entryOK = Dictionary(read.entries.map { ($0.name, $0.ok) }, uniquingKeysWith: { a, b in a && b })
        var blobs: [BlobEntry] = []
        for blob in (metadata?.blobs ?? []) {
            var result = entryOK["blobs/sha256/\(blob.digest.encoded)"].map { $0 ? "ok" : "mismatch" } ?? "missing"
            if let store, result == "ok" { result = storeCheck(store, blob.digest, blob.size, &findings) }
            blobs.append(.init(digest: blob.digest.description, size: blob.size, mediaType: blob.mediaType.rawValue, result: result))
        }
        for blob in (metadata?.requiredOnInside ?? []) {
            let result = store.map { storeCheck($0, blob.digest, blob.size, &findings) } ?? "required-on-inside"
            blobs.append(.init(digest: blob.digest.description, size: blob.size, mediaType: blob.mediaType.rawValue, result: result))
        }
        var images: [ImageEntry] = []
        let sizes = Dictionary(((metadata?.blobs ?? []) + (metadata?.requiredOnInside ?? [])).map { ($0.digest, $0) }, uniquingKeysWith: { a, _ in a })
        for image in metadata?.images ?? [] {
            var platforms: [PlatformEntry] = []
            for p in image.platforms {
                let created = read.documents[p.config].flatMap { try? ImageConfig.decode($0).created }
                var size: Int64 = sizes[p.manifest]?.size ?? 0
                if let data = read.documents[p.manifest], let manifest = try? ImageManifest.decode(data) {
                    size += manifest.blobs.reduce(0) { $0 + $1.size }
                }
                platforms.append(.init(platform: p.platform, manifest: p.manifest.description, config: p.config.description, created: created, size: size))
            }
            var entry = ImageEntry(reference: image.reference, digest: image.digest.description, mediaType: image.mediaType.rawValue,
                                   originalIndexDigest: image.originalIndexDigest?.description, platforms: platforms,
                                   size: platforms.reduce(0) { $0 + $1.size })
            var attachments = (image.attachments ?? []).map { attachmentEntry($0, of: image, read: read, keys: imageKeys) }
            for signature in image.lookasideSignatures ?? [] {
                attachments.append(lookasideEntry(signature, of: image, read: read, keys: imageKeys))
            }
            if !attachments.isEmpty { entry.attachments = attachments }
            images.append(entry)
        }
        if !imageKeys.isEmpty, read.ok {
            for checked in (try? BundleSignatures.check(read, keys: imageKeys)) ?? [] {
                if let i = images.firstIndex(where: { $0.reference == checked.image }) { images[i].signatureCheck = checked.outcome.description }
                if !checked.outcome.isVerified {
                    findings.append(Finding(entry: "index.json", problem: "the image \(checked.image) fails the signature check: \(checked.outcome)"))
                }
            }
        }
        let fingerprint: String? = { if case .valid(let f) = read.signature { return f }; return nil }()
        let formatter = ISO8601DateFormatter()
        return AuditReport(tool: "airgap \(BundleMetadata.toolVersion)", generatedAt: formatter.string(from: Date()),
                           host: ProcessInfo.processInfo.hostName,
                           target: store.map { "store \($0.root)" } ?? "bundle",
                           result: findings.isEmpty ? "PASS" : "FAIL",
                           bundleFiles: read.fileHashes.map { .init(path: $0.path, size: $0.size, sha256: $0.sha256) },
                           signature: .init(status: read.signature.description, signerFingerprint: fingerprint),
                           findings: findings, images: images, blobs: blobs)
    }

    static func attachmentEntry(_ attachment: BundleMetadata.Attachment, of image: BundleMetadata.Image, read: BundleReadResult,
                                keys: [ImageKey]) -> AttachmentEntry {
        let data = read.documents[attachment.digest]
        var mediaType = "", contents: [String] = []
        if let data, let manifest = try? ImageManifest.decode(data) {
            mediaType = manifest.mediaType?.rawValue ?? MediaType.ociManifest.rawValue
            contents = manifest.layers.map(\.mediaType.rawValue)
        } else if let data, let index = try? ImageIndex.decode(data) {
            mediaType = index.mediaType?.rawValue ?? MediaType.ociIndex.rawValue
            contents = index.manifests.map { $0.artifactType ?? $0.mediaType.rawValue }
        }
        var entry = AttachmentEntry(reference: attachment.reference, kind: attachment.kind.rawValue, digest: attachment.digest.description,
                                    mediaType: mediaType, subject: attachment.subject.description, contents: contents)
        if attachment.kind == .signature, !keys.isEmpty, let data, let repository = try? Reference(parsing: image.reference) {
            var payloads: [Digest: Data] = [:]
            for payload in CosignVerifier.payloads(of: [data]) { payloads[payload.digest] = read.documents[payload.digest] }
            let outcome = CosignVerifier(keys: keys).check(subjects: [attachment.subject], repository: repository, signatures: [data], payloads: payloads)
            entry.verification = outcome.isVerified ? "verified" : outcome.description
            if case .verified(let key, _) = outcome { entry.keyFingerprint = key }
        }
        return entry
    }

    /// A simple-signing signature from a lookaside store, checked with the OpenPGP keys given.
    static func lookasideEntry(_ signature: BundleMetadata.LookasideSignature, of image: BundleMetadata.Image, read: BundleReadResult,
                               keys: [ImageKey]) -> AttachmentEntry {
        var entry = AttachmentEntry(reference: "lookaside", kind: "simple-signing", digest: signature.digest.description,
                                    mediaType: CopyPlan.lookasideSignatureType.rawValue, subject: signature.subject.description, contents: [])
        if keys.contains(where: { $0.kind == .openPGP }), let data = read.documents[signature.digest], let reference = try? Reference(parsing: image.reference) {
            let outcome = (try? SimpleSigningVerifier(keys: keys).check(subjects: [signature.subject], reference: reference, signatures: [data]))
                ?? .malformed("gpgv could not be run")
            entry.verification = outcome.isVerified ? "verified" : outcome.description
            if case .verified(let key, _) = outcome { entry.keyFingerprint = key }
        }
        return entry
    }

    static func storeCheck(_ store: LocalStore, _ digest: Digest, _ size: Int64, _ findings: inout [Finding]) -> String {
        guard store.hasBlob(digest, size: size) else {
            findings.append(Finding(entry: "store blob \(digest)", problem: "missing from the store"))
            return "missing-in-store"
        }
        do {
            try store.verifyBlob(Descriptor(mediaType: .ociLayer, digest: digest, size: size))
            return "ok"
        } catch {
            findings.append(Finding(entry: "store blob \(digest)", problem: "does not match its digest in the store"))
            return "mismatch-in-store"
        }
    }

    /// Checks what was pushed: every image's manifests and blobs are in the registry under the
    /// rewritten names, each blob fetched and re-hashed.
    public mutating func checkRegistry(_ read: BundleReadResult, client: RegistryClient, target: PushTarget) async throws {
        self.target = "registry \(target)"
        guard let index = read.index else { return }
        var results: [String: String] = [:]
        for entry in index.manifests {
            guard let name = entry.refName.flatMap({ try? Reference(parsing: $0) }) else { continue }
            let destination = target.rewrite(name)
            if let tag = destination.tag {
                let served = try? await client.fetchManifest(destination, selector: tag)
                if served?.digest != entry.digest {
                    findings.append(Finding(entry: destination.description, problem: served == nil ? "not in the registry" : "the tag points at \(served!.digest), not \(entry.digest)"))
                }
            }
            // The one graph walk, over the documents the verified bundle holds.
            guard let graph = try? GraphWalk.run(GraphWalk(root: entry, subject: destination.familiarDescription, allowAbsent: true), load: { read.documents[$0.digest] }) else { continue }
            for image in graph.images {
                let served = try? await client.fetchManifest(destination, selector: image.descriptor.digest.description)
                results[image.descriptor.digest.description] = served?.digest == image.descriptor.digest ? "ok" : "missing-in-registry"
                for blob in image.manifest.blobs where results[blob.digest.description] != "ok" {
                    results[blob.digest.description] = try await client.blobMatches(destination, blob) ? "ok" : "missing-in-registry"
                }
            }
        }
        for i in blobs.indices {
            guard let registryResult = results[blobs[i].digest] else { continue }
            if blobs[i].result == "ok" || blobs[i].result == "required-on-inside" { blobs[i].result = registryResult }
            if registryResult != "ok" { findings.append(Finding(entry: "registry blob \(blobs[i].digest)", problem: "missing or different in \(target)")) }
        }
        result = findings.isEmpty ? "PASS" : "FAIL"
    }

    // MARK: renderings

    public func json() throws -> Data { try CanonicalJSON.encode(self, pretty: true) }

    public func csv() -> String {
        func field(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        // An attachment's own manifest gets what it is, for which image, and its signature check.
        var attached: [String: (String, AttachmentEntry)] = [:]
        for image in images { for a in image.attachments ?? [] { attached[a.digest] = (image.reference, a) } }
        var lines = ["digest,size,media_type,result,image,attachment_kind,verification,key_fingerprint"]
        for b in blobs {
            let a = attached[b.digest]
            lines.append([b.digest, "\(b.size)", b.mediaType, b.result, a?.0 ?? "", a?.1.kind ?? "", a?.1.verification ?? "", a?.1.keyFingerprint ?? ""]
                .map(field).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public func text() -> String {
        var out: [String] = []
        out.append("airgap checksum audit — \(result)")
        out.append("Tool: \(tool)   Generated: \(generatedAt)   Host: \(host)   Target: \(target)")
        out.append("Signature: \(signature.status)")
        for f in bundleFiles { out.append("Bundle file: \(f.path)  \(f.size) bytes  sha256 \(f.sha256)") }
        out.append("")
        out.append("Images (\(images.count)):")
        for image in images {
            out.append("  \(image.reference)  \(image.digest)")
            if let check = image.signatureCheck { out.append("    signature check: \(check)") }
            for p in image.platforms { out.append("    \(p.platform)  manifest \(p.manifest)  config \(p.config)  created \(p.created ?? "-")  \(p.size) bytes") }
            for a in image.attachments ?? [] {
                out.append("    \(a.kind)  \(a.digest)  of \(a.subject)  \(a.contents.joined(separator: ", "))"
                           + (a.verification.map { "  \($0)" } ?? "") + (a.keyFingerprint.map { " (key \($0))" } ?? ""))
            }
        }
        out.append("")
        out.append("Blobs (\(blobs.count)):")
        for b in blobs { out.append("  \(b.result.uppercased().padding(toLength: 8, withPad: " ", startingAt: 0)) \(b.digest)  \(b.size)  \(b.mediaType)") }
        if !findings.isEmpty {
            out.append("")
            out.append("Findings (\(findings.count)):")
            for f in findings { out.append("  \(f)") }
        }
        return out.joined(separator: "\n") + "\n"
    }

    public func html() -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        let ok = passed
        var h = """
        <!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>airgap audit — \(esc(result))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:2em;color:#222}
        table{border-collapse:collapse;margin:1em 0;width:100%}
        th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px}
        th{background:#f3f3f3} td.mono,span.mono{font-family:monospace}
        .pass{color:#176f2c;font-weight:bold} .fail{color:#b00020;font-weight:bold} tr.bad td{background:#fde7ea;color:#b00020}
        .summary{border:2px solid \(ok ? "#176f2c" : "#b00020");padding:1em;border-radius:6px}
        </style></head><body>
        <h1>Checksum audit: <span class="\(ok ? "pass" : "fail")">\(esc(result))</span></h1>
        <div class="summary"><p>Target: \(esc(target))<br>Signature: \(esc(signature.status))\(signature.signerFingerprint.map { "<br>Signer key fingerprint: <span class=\"mono\">\(esc($0))</span>" } ?? "")<br>
        Images: \(images.count) · Blobs: \(blobs.count) · Findings: \(findings.count)<br>
        Tool: \(esc(tool)) · Generated: \(esc(generatedAt)) · Host: \(esc(host))</p></div>
        """
        if !findings.isEmpty {
            h += "<h2>Findings</h2><table><tr><th>Entry</th><th>Volume</th><th>Problem</th></tr>"
            for f in findings { h += "<tr class=\"bad\"><td class=\"mono\">\(esc(f.entry))</td><td>\(esc(f.volume ?? ""))</td><td>\(esc(f.problem))</td></tr>" }
            h += "</table>"
        }
        h += "<h2>Bundle files</h2><table><tr><th>File</th><th>Size</th><th>SHA-256</th></tr>"
        for f in bundleFiles { h += "<tr><td>\(esc(f.path))</td><td>\(f.size)</td><td class=\"mono\">\(f.sha256)</td></tr>" }
        h += "</table><h2>Images</h2><table><tr><th>Reference</th><th>Platform</th><th>Manifest</th><th>Config</th><th>Created</th><th>Size</th></tr>"
        for i in images {
            for p in i.platforms {
                h += "<tr><td>\(esc(i.reference))</td><td>\(esc(p.platform))</td><td class=\"mono\">\(esc(p.manifest))</td><td class=\"mono\">\(esc(p.config))</td><td>\(esc(p.created ?? ""))</td><td>\(p.size)</td></tr>"
            }
        }
        let withAttachments = images.filter { !($0.attachments ?? []).isEmpty || $0.signatureCheck != nil }
        if !withAttachments.isEmpty {
            h += "</table><h2>Signatures, attestations, SBOMs and referrers</h2><table><tr><th>Image</th><th>Kind</th><th>Digest</th><th>Of</th><th>Contents</th><th>Verification</th><th>Key</th></tr>"
            for i in withAttachments {
                if let check = i.signatureCheck {
                    h += "<tr\(check.hasPrefix("signed by") ? "" : " class=\"bad\"")><td>\(esc(i.reference))</td><td>image signature</td><td class=\"mono\">\(esc(i.digest))</td><td></td><td></td><td>\(esc(check))</td><td></td></tr>"
                }
                for a in i.attachments ?? [] {
                    let bad = a.verification.map { $0 != "verified" } ?? false
                    h += "<tr\(bad ? " class=\"bad\"" : "")><td>\(esc(i.reference))</td><td>\(esc(a.kind))</td><td class=\"mono\">\(esc(a.digest))</td><td class=\"mono\">\(esc(a.subject))</td><td>\(esc(a.contents.joined(separator: ", ")))</td><td>\(esc(a.verification ?? ""))</td><td class=\"mono\">\(esc(a.keyFingerprint ?? ""))</td></tr>"
                }
            }
        }
        h += "</table><h2>Blobs</h2><table><tr><th>Digest</th><th>Size</th><th>Media type</th><th>Result</th></tr>"
        for b in blobs {
            h += "<tr\(b.result == "ok" || b.result == "required-on-inside" ? "" : " class=\"bad\"")><td class=\"mono\">\(esc(b.digest))</td><td>\(b.size)</td><td>\(esc(b.mediaType))</td><td>\(esc(b.result))</td></tr>"
        }
        return h + "</table></body></html>\n"
    }
}
