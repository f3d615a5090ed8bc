import AirgapContent
import AirgapOCI
import Foundation

/// `airgap/bundle.json`: what the bundle holds, written before any blob so one pass can verify.
/// No host names, and one time (`created`, from `SOURCE_DATE_EPOCH` when set): the same inputs
/// give the same bytes.
public struct BundleMetadata: Codable, Sendable, Equatable {
    /// 2: the canonical tar encoding and the signed creation time.
    public static let currentFormat = 2
    public static let toolVersion = "0.1.0"
    public static let entryName = "airgap/bundle.json"
    public static let checksumsName = "airgap/SHA256SUMS"
    public static let signatureName = "airgap/SHA256SUMS.sig"

    public struct Tool: Codable, Sendable, Equatable {
        public var name: String
        public var version: String
        public init(name: String, version: String) { self.name = name; self.version = version }
    }
    public struct SourceManifest: Codable, Sendable, Equatable {
        public var name: String
        public var sha256: String
        public init(name: String, sha256: String) { self.name = name; self.sha256 = sha256 }
    }

    public struct PlatformImage: Codable, Sendable, Equatable {
        public var platform: String
        public var manifest: Digest
        public var config: Digest
        public init(platform: String, manifest: Digest, config: Digest) { self.platform = platform; self.manifest = manifest; self.config = config }
    }

    public struct Image: Codable, Sendable, Equatable {
        /// Full reference the image gets inside (`org.opencontainers.image.ref.name`).
        public var reference: String
        /// Where it was pulled from (differs when a digest-pinned image gets an inside tag).
        public var source: String
        /// Digest of the top manifest or index written to index.json.
        public var digest: Digest
        public var mediaType: MediaType
        public var size: Int64
        /// The registry's index digest when a platform subset was written as a new, filtered index.
        public var originalIndexDigest: Digest?
        public var platforms: [PlatformImage]
        /// Signatures, attestations, SBOMs and referrers carried with this image (each is also an
        /// image of its own in `images`, under its tag).
        public var attachments: [Attachment]?
        /// On an attachment's own entry: the image it is listed under.
        public var attachedTo: String?
        /// containers' simple-signing (GPG) signatures of its manifests, from a lookaside store.
        public var lookasideSignatures: [LookasideSignature]?
        /// On a build context's own entry: what it builds and the images it pulls, pinned (a copy
        /// of its manifest's annotations, for people; the inside reads the manifest).
        public var context: BuildContextArtifact?
        public init(reference: String, source: String, digest: Digest, mediaType: MediaType, size: Int64,
                    originalIndexDigest: Digest?, platforms: [PlatformImage]) {
            self.reference = reference; self.source = source; self.digest = digest; self.mediaType = mediaType
            self.size = size; self.originalIndexDigest = originalIndexDigest; self.platforms = platforms
        }
    }

    /// The images an engine can load (what the Docker view lists): not attachments, and not
    /// artifacts, whose config is no image config.
    public var engineImages: [Image] {
        let types = Dictionary((blobs + requiredOnInside).map { ($0.digest, $0.mediaType) }, uniquingKeysWith: { a, _ in a })
        return images.filter { image in
            image.attachedTo == nil && (image.platforms.first.map { types[$0.config]?.isImageConfig ?? false } ?? false)
        }
    }

    /// A lookaside signature carried as a blob.
    public struct LookasideSignature: Codable, Sendable, Equatable {
        /// The manifest it signs.
        public var subject: Digest
        /// The blob holding the signature's bytes.
        public var digest: Digest
        public var size: Int64
        public init(subject: Digest, digest: Digest, size: Int64) { self.subject = subject; self.digest = digest; self.size = size }
    }

    /// One attachment under its image.
    public struct Attachment: Codable, Sendable, Equatable {
        /// Its full reference inside (`REPO:sha256-<hex>.sig`).
        public var reference: String
        public var kind: AttachmentKind
        /// The manifest (or index) it is attached to: the image's top or one of its platforms'
        /// manifests, or another attachment (a signature of an SBOM).
        public var subject: Digest
        /// Its own top manifest or index.
        public var digest: Digest
        public init(reference: String, kind: AttachmentKind, subject: Digest, digest: Digest) {
            self.reference = reference; self.kind = kind; self.subject = subject; self.digest = digest
        }
    }

    public struct Blob: Codable, Sendable, Equatable {
        public var digest: Digest
        public var size: Int64
        public var mediaType: MediaType
        public init(digest: Digest, size: Int64, mediaType: MediaType) { self.digest = digest; self.size = size; self.mediaType = mediaType }
    }

    public var formatVersion: Int
    public var tool: Tool
    /// When the bundle was made (RFC 3339, UTC): signed, so the inside can refuse rollbacks.
    public var created: String?
    public var manifest: SourceManifest?
    public var images: [Image]
    /// Blobs carried in the bundle, sorted by digest.
    public var blobs: [Blob]
    /// Blobs left out because the receipt said the inside holds them (`--since`).
    public var requiredOnInside: [Blob]
    /// The receipt used for `--since`, by sha256.
    public var since: String?
    /// The registry and prefix (`HOST[:PORT][/PREFIX]`) a `receipt --registry` described: where
    /// the left-out blobs are, so a push to another prefix can mount them from there.
    public var sinceRegistry: String?

    public init(tool: Tool, created: String?, manifest: SourceManifest?, images: [Image], blobs: [Blob], requiredOnInside: [Blob], since: String?,
                sinceRegistry: String? = nil) {
        formatVersion = Self.currentFormat
        self.tool = tool; self.created = created; self.manifest = manifest; self.images = images
        self.blobs = blobs; self.requiredOnInside = requiredOnInside; self.since = since; self.sinceRegistry = sinceRegistry
    }
}

/// The volume list of a split bundle: `FILE.volumes.json`, signed in `FILE.volumes.json.sig`.
/// Written after the volumes (their hashes are known only then), so it is a sidecar.
public struct VolumeList: Codable, Sendable, Equatable {
    public struct Volume: Codable, Sendable, Equatable {
        public var name: String
        public var size: Int64
        public var sha256: String
    }
    public var formatVersion = 1
    /// sha256 and size of the concatenated bundle (`cat FILE.* > FILE`).
    public var bundleSHA256: String
    public var bundleSize: Int64
    public var splitSize: Int64
    public var volumes: [Volume]
}
