import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapSignatures
import AirgapStore
import AirgapTar
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
    public struct BlobEntry: Codable, Sendable {
        public var digest: String; public var size: Int64; public var mediaType: String; public var result: String
        /// The images that need this blob (a damaged base layer breaks every one of them).
        public var images: [String]?
    }
    public struct SourceManifestEntry: Codable, Sendable { public var name: String; public var sha256: String }

    public var schema = "airgap-audit/v1"
    public var tool: String
    public var generatedAt: String
    public var host: String
    /// What was audited: the bundle itself, or the store / registry it was loaded into.
    public var target: String
    public var result: String
    /// The image manifest the bundle was made from (its file name and sha256), as signed.
    public var sourceManifest: SourceManifestEntry?
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
        let users = blobUsers(read)
        var blobs: [BlobEntry] = []
        for blob in (metadata?.blobs ?? []) {
            var result = entryOK["blobs/sha256/\(blob.digest.encoded)"].map { $0 ? "ok" : "mismatch" } ?? "missing"
            if let store, result == "ok" { result = storeCheck(store, blob.digest, blob.size, &findings) }
            blobs.append(.init(digest: blob.digest.description, size: blob.size, mediaType: blob.mediaType.rawValue, result: result, images: users[blob.digest]))
        }
        for blob in (metadata?.requiredOnInside ?? []) {
            let result = store.map { storeCheck($0, blob.digest, blob.size, &findings) } ?? "required-on-inside"
            blobs.append(.init(digest: blob.digest.description, size: blob.size, mediaType: blob.mediaType.rawValue, result: result, images: users[blob.digest]))
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
                           sourceManifest: metadata?.manifest.map { .init(name: $0.name, sha256: $0.sha256) },
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

    /// Blob → the images (references, in bundle order) whose graph holds it: the one graph walk over
    /// the documents the verified read kept, from each image's top digest.
    static func blobUsers(_ read: BundleReadResult) -> [Digest: [String]] {
        var users: [Digest: [String]] = [:]
        for image in read.metadata?.images ?? [] {
            let top = Descriptor(mediaType: image.mediaType, digest: image.digest, size: image.size)
            guard let graph = try? GraphWalk.run(GraphWalk(root: top, subject: image.reference, allowAbsent: true), load: { read.documents[$0.digest] }) else { continue }
            var digests: [Digest] = []
            var seen = Set<Digest>()
            for d in graph.manifests.map(\.digest) + graph.blobs.map(\.digest) where seen.insert(d).inserted { digests.append(d) }
            for d in digests { users[d, default: []].append(image.reference) }
        }
        return users
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
        if let m = sourceManifest { out.append("Source manifest: \(m.name) (sha256 \(m.sha256))") }
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
        out.append("  total: \(blobs.count) blobs, \(blobs.reduce(Int64(0)) { $0 + $1.size }) bytes (\(ByteCount.human(blobs.reduce(0) { $0 + $1.size }))): \(resultCounts)")
        if !brokenImages.isEmpty { out.append("Broken images (\(brokenImages.count) of \(images.count)): \(brokenImages.joined(separator: ", "))") }
        if !findings.isEmpty {
            out.append("")
            out.append("Findings (\(findings.count)):")
            let usedBy = Dictionary(blobs.map { ($0.digest, $0.images ?? []) }, uniquingKeysWith: { a, _ in a })
            for f in findings {
                let broken = Naming.digest(ofBlobPath: f.entry).flatMap { usedBy[$0.description] } ?? []
                out.append("  \(f)" + (broken.isEmpty ? "" : " (breaks \(broken.joined(separator: ", ")))"))
            }
        }
        // Every line may quote what a bundle holds (unsigned ones are read too): never raw to a terminal.
        return out.map(EscapedText.escape).joined(separator: "\n") + "\n"
    }

    /// One self-contained page (no scripts, no external resources) an auditor reads at a glance:
    /// the verdict and who signed first, then findings with the images each one breaks, then the
    /// bundle files, images (index digests above their platforms) and blobs (with the images that
    /// use them), human sizes with totals. Fits 1280 px: long digests wrap inside their column.
    /// `8 ok, 2 mismatch`: how many blobs had each result.
    var resultCounts: String {
        Dictionary(grouping: blobs, by: \.result).map { "\($0.value.count) \($0.key)" }.sorted().joined(separator: ", ")
    }

    /// The images a blob that failed its check belongs to, in report order.
    public var brokenImages: [String] {
        let broken = Set(blobs.filter { !["ok", "required-on-inside"].contains($0.result) }.flatMap { $0.images ?? [] })
        return images.map(\.reference).filter { broken.contains($0) }
    }

    public func html() -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        func size(_ bytes: Int64) -> String { "<span title=\"\(bytes) bytes\">\(ByteCount.human(bytes))</span>" }
        func mono(_ s: String) -> String { "<span class=\"mono\">\(esc(s))</span>" }
        func list(_ items: [String]) -> String { items.map(esc).joined(separator: "<br>") }
        // The vendor prefix is the same on every row; the full type stays in the tooltip.
        func type(_ mediaType: String) -> String {
            var short = mediaType
            for prefix in ["application/vnd.oci.image.", "application/vnd.docker.distribution.", "application/vnd.docker.container.image.", "application/vnd.docker.image.rootfs."] where short.hasPrefix(prefix) {
                short.removeFirst(prefix.count)
            }
            return "<span title=\"\(esc(mediaType))\">\(esc(short))</span>"
        }
        let ok = passed
        let usedBy = Dictionary(blobs.map { ($0.digest, $0.images ?? []) }, uniquingKeysWith: { a, _ in a })
        var h = """
        <!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
        <title>airgap audit — \(esc(result))</title>
        <style>
        *{box-sizing:border-box}
        body{font:14px/1.4 system-ui,sans-serif;color:#222;margin:0 auto;padding:20px 24px;max-width:1280px}
        h1{font-size:22px;margin:0 0 12px} h2{font-size:17px;margin:24px 0 6px}
        table{border-collapse:collapse;width:100%;table-layout:fixed}
        th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top;font-size:13px;overflow-wrap:anywhere}
        th{background:#f3f3f3} td.num,th.num{text-align:right;white-space:nowrap}
        .mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
        tr.image td{background:#f8f8f8;font-weight:600} tr.total td{font-weight:600;border-top:2px solid #888}
        .pass{color:#176f2c;font-weight:bold} .fail{color:#b00020;font-weight:bold} tr.bad td{background:#fde7ea;color:#b00020}
        .summary{border:2px solid \(ok ? "#176f2c" : "#b00020");padding:10px 14px;border-radius:6px}
        .summary table td{border:none;padding:1px 8px 1px 0} .summary table{table-layout:auto}
        @media print{
          body{max-width:none;padding:0;font-size:11px} th,td{font-size:10px} .mono{font-size:9px}
          h2{break-after:avoid} tr{break-inside:avoid} thead{display:table-header-group}
          tr.bad td,tr.image td,th{-webkit-print-color-adjust:exact;print-color-adjust:exact}
        }
        </style></head><body>
        <h1>Checksum audit: <span class="\(ok ? "pass" : "fail")">\(esc(result))</span></h1>
        <div class="summary"><table>
        """
        let signer = signature.signerFingerprint.map { "valid, signed by the key \(mono($0))" } ?? esc(signature.status)
        var summary: [(String, String)] = [("Signature", signer), ("Target", esc(target))]
        if let manifest = sourceManifest { summary.append(("Source manifest", "\(esc(manifest.name)) (sha256 \(mono(manifest.sha256)))")) }
        let carried = blobs.filter { $0.result != "required-on-inside" }
        summary.append(("Contents", "\(images.count) image\(images.count == 1 ? "" : "s"), \(blobs.count) blobs, \(size(carried.reduce(0) { $0 + $1.size })) carried"
                        + (carried.count == blobs.count ? "" : ", \(blobs.count - carried.count) required on the inside")))
        summary.append(("Findings", findings.isEmpty ? "none" : "<span class=\"fail\">\(findings.count)</span>"))
        let broken = brokenImages
        if !broken.isEmpty { summary.append(("Broken images", "<span class=\"fail\">\(broken.count) of \(images.count)</span>: \(list(broken))")) }
        summary.append(("Report", "\(esc(tool)), \(esc(generatedAt)), on \(esc(host))"))
        for (key, value) in summary { h += "<tr><td>\(key)</td><td>\(value)</td></tr>" }
        h += "</table></div>\n"
        if !findings.isEmpty {
            // The volume column only for split bundles, where a finding names one.
            let volumes = findings.contains { $0.volume != nil }
            h += "<h2>Findings</h2><table><colgroup><col style=\"width:34%\">\(volumes ? "<col style=\"width:12%\">" : "")<col><col style=\"width:24%\"></colgroup>"
            h += "<thead><tr><th>Entry</th>\(volumes ? "<th>Volume</th>" : "")<th>Problem</th><th>Images it breaks</th></tr></thead>"
            for f in findings {
                let broken = Naming.digest(ofBlobPath: f.entry).flatMap { usedBy[$0.description] } ?? []
                h += "<tr class=\"bad\"><td>\(mono(f.entry))</td>\(volumes ? "<td>\(esc(f.volume ?? ""))</td>" : "")<td>\(esc(f.problem))</td><td>\(list(broken))</td></tr>"
            }
            h += "</table>\n"
        }
        h += "<h2>Bundle files</h2><table><colgroup><col style=\"width:36%\"><col style=\"width:10%\"><col></colgroup>"
        h += "<thead><tr><th>File</th><th class=\"num\">Size</th><th>SHA-256</th></tr></thead>"
        for f in bundleFiles { h += "<tr><td>\(esc(f.path))</td><td class=\"num\">\(size(f.size))</td><td>\(mono(f.sha256))</td></tr>" }
        if bundleFiles.count > 1 {
            h += "<tr class=\"total\"><td>\(bundleFiles.count) volumes</td><td class=\"num\">\(size(bundleFiles.reduce(0) { $0 + $1.size }))</td><td></td></tr>"
        }
        h += "</table>\n"
        h += "<h2>Images</h2><table><colgroup><col style=\"width:13%\"><col style=\"width:33%\"><col style=\"width:33%\"><col style=\"width:12%\"><col style=\"width:9%\"></colgroup>"
        h += "<thead><tr><th>Platform</th><th>Manifest</th><th>Config</th><th>Created</th><th class=\"num\">Size</th></tr></thead>"
        for i in images {
            let kind = i.mediaType.contains("index") || i.mediaType.contains("manifest.list") ? "index" : "manifest"
            // A single manifest's digest is on its platform row below; an index's is shown here.
            let repeated = kind == "manifest" && i.platforms.count == 1 && i.platforms[0].manifest == i.digest
            var details: [String] = repeated ? [] : ["\(kind) \(mono(i.digest))"]
            if let original = i.originalIndexDigest, original != i.digest { details.append("chosen from the index \(mono(original))") }
            if let check = i.signatureCheck { details.append("signature check: \(esc(check))") }
            let head = esc(i.reference) + (broken.contains(i.reference) ? " <span class=\"fail\">broken</span>" : "")
                + (details.isEmpty ? "" : "<br><span style=\"font-weight:normal\">\(details.joined(separator: "<br>"))</span>")
            h += "<tr class=\"image\"><td colspan=\"4\">\(head)</td><td class=\"num\">\(size(i.size))</td></tr>"
            for p in i.platforms {
                h += "<tr><td>\(esc(p.platform))</td><td>\(mono(p.manifest))</td><td>\(mono(p.config))</td><td>\(esc((p.created ?? "").replacingOccurrences(of: "T", with: " ")))</td><td class=\"num\">\(size(p.size))</td></tr>"
            }
        }
        h += "<tr class=\"total\"><td colspan=\"4\">\(images.count) image\(images.count == 1 ? "" : "s") (sizes count shared layers in each image)</td><td class=\"num\">\(size(images.reduce(0) { $0 + $1.size }))</td></tr></table>\n"
        let withAttachments = images.filter { !($0.attachments ?? []).isEmpty }
        if !withAttachments.isEmpty {
            h += "<h2>Signatures, attestations, SBOMs and referrers</h2><table><colgroup><col style=\"width:17%\"><col style=\"width:9%\"><col style=\"width:26%\"><col style=\"width:16%\"><col style=\"width:14%\"><col style=\"width:18%\"></colgroup>"
            h += "<thead><tr><th>Image</th><th>Kind</th><th>Digest</th><th>Contents</th><th>Verification</th><th>Key</th></tr></thead>"
            for i in withAttachments {
                for a in i.attachments ?? [] {
                    let bad = a.verification.map { $0 != "verified" } ?? false
                    h += "<tr\(bad ? " class=\"bad\"" : "")><td>\(esc(i.reference))</td><td>\(esc(a.kind))</td><td>\(mono(a.digest))<br>of \(mono(a.subject))</td><td>\(list(a.contents))</td><td>\(esc(a.verification ?? ""))</td><td>\(mono(a.keyFingerprint ?? ""))</td></tr>"
                }
            }
            h += "</table>\n"
        }
        h += "<h2>Blobs</h2><table><colgroup><col style=\"width:40%\"><col style=\"width:8%\"><col style=\"width:16%\"><col style=\"width:10%\"><col style=\"width:26%\"></colgroup>"
        h += "<thead><tr><th>Digest</th><th class=\"num\">Size</th><th>Media type</th><th>Result</th><th>Used by</th></tr></thead>"
        for b in blobs {
            h += "<tr\(b.result == "ok" || b.result == "required-on-inside" ? "" : " class=\"bad\"")><td>\(mono(b.digest))</td><td class=\"num\">\(size(b.size))</td><td>\(type(b.mediaType))</td><td>\(esc(b.result))</td><td>\(list(b.images ?? []))</td></tr>"
        }
        h += "<tr class=\"total\"><td>\(blobs.count) blobs: \(esc(resultCounts))</td><td class=\"num\">\(size(blobs.reduce(0) { $0 + $1.size }))</td><td colspan=\"3\"></td></tr>"
        return h + "</table></body></html>\n"
    }
}
