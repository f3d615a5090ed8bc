import AirgapBundle
import AirgapImageSet
import AirgapOCI
import AirgapRegistry
import AirgapStore
import AirgapTar
import enum Crypto.Curve25519
import Foundation

/// `airgap-export bundle`: resolve → pull into the store (reusing what is there) → write the bundle.
public struct BundleExporter {
    public struct Options {
        public var output: String
        public var signingKey: Curve25519.Signing.PrivateKey?
        public var receipt: (Receipt, sha256: String)?
        public var splitSize: Int64?
        public init(output: String, signingKey: Curve25519.Signing.PrivateKey?, receipt: (Receipt, sha256: String)? = nil, splitSize: Int64? = nil) {
            self.output = output; self.signingKey = signingKey; self.receipt = receipt; self.splitSize = splitSize
        }
    }

    public struct Summary: Sendable {
        public var images: Int
        public var blobs: Int
        public var uniqueBytes: Int64
        public var bytesSavedByDedup: Int64
        public var leftOutBlobs: Int
        public var bundleBytes: Int64
        public var volumes: VolumeList
    }

    public let store: LocalStore
    public let events: TransferEvents
    public init(store: LocalStore, events: @escaping TransferEvents = { _ in }) { self.store = store; self.events = events }

    /// Pulls the set into the store and writes the bundle.
    public func export(_ set: ImageSet, client: RegistryClient, options: Options) async throws -> Summary {
        let requests = set.images.map { entry in
            PullRequest(reference: entry.reference,
                        platforms: entry.platforms ?? set.platforms,
                        allPlatforms: entry.platforms == nil ? set.allPlatforms : entry.allPlatforms,
                        storeName: entry.insideName,
                        origin: "\(set.path):\(entry.line)")
        }
        let resolved = try await ImagePuller(client: client, store: store, events: events).pull(requests)
        let plan = try makePlan(resolved, set: set, receipt: options.receipt)
        return try write(plan, options: options)
    }

    /// Decides every entry and blob of the bundle.
    public func makePlan(_ resolved: [ResolvedImage], set: ImageSet?, receipt: (Receipt, sha256: String)?) throws -> (BundlePlan, perImageBytes: Int64) {
        var indexEntries: [Descriptor] = []
        var dockerEntries: [JSONValue] = []
        var images: [BundleMetadata.Image] = []
        var blobs: [Digest: BundleMetadata.Blob] = [:]
        var perImageBytes: Int64 = 0
        let held = Set(receipt?.0.blobs ?? [])

        func addBlob(_ d: Descriptor) { blobs[d.digest] = .init(digest: d.digest, size: d.size, mediaType: d.mediaType) }

        for image in resolved {
            var top = image.top
            var original: Digest?
            let allChildren: Bool
            if image.top.mediaType.isIndex {
                let index = try ImageIndex.decode(try store.readBlob(image.top.digest))
                let imageChildren = index.manifests.filter { $0.mediaType.isImageManifest }
                allChildren = imageChildren.count == image.images.count
                if allChildren {
                    addBlob(image.top) // kept byte for byte
                } else if image.images.count == 1 {
                    // One platform: the platform's own manifest, with the registry's digest.
                    top = image.images[0].manifest
                    top.platform = image.images[0].platform
                    original = image.top.digest
                } else {
                    // A subset: a new, filtered index (new digest), recording where it came from.
                    var filtered = index
                    filtered.manifests = index.manifests.filter { d in image.images.contains { $0.manifest.digest == d.digest } }
                    var annotations = index.annotations ?? [:]
                    annotations["io.airgap.original-index-digest"] = image.top.digest.description
                    filtered.annotations = annotations
                    let data = try CanonicalJSON.encode(filtered)
                    let digest = try store.ingest(data, source: "filtered index for \(image.name)")
                    top = Descriptor(mediaType: image.top.mediaType, digest: digest, size: Int64(data.count))
                    original = image.top.digest
                    addBlob(top)
                }
            } else { allChildren = true }
            _ = allChildren

            var platforms: [BundleMetadata.PlatformImage] = []
            for chosen in image.images {
                addBlob(chosen.manifest)
                perImageBytes += chosen.manifest.size
                for blob in chosen.blobs {
                    perImageBytes += blob.size
                    addBlob(blob)
                }
                let config = chosen.blobs.first!
                let configData = try store.readBlob(config.digest)
                let platform = chosen.platform ?? (try? ImageConfig.decode(configData).platform) ?? Platform(os: "unknown", architecture: "unknown")
                platforms.append(.init(platform: platform.description, manifest: chosen.manifest.digest, config: config.digest))
            }
            var entry = Descriptor(mediaType: top.mediaType, digest: top.digest, size: top.size, platform: top.platform)
            entry.annotations = [Descriptor.refNameAnnotation: image.name.description, Descriptor.containerdNameAnnotation: image.name.description]
            indexEntries.append(entry)
            images.append(.init(reference: image.name.description, source: image.request.reference.description, digest: top.digest,
                                mediaType: top.mediaType, size: top.size, originalIndexDigest: original, platforms: platforms))

            // Docker archive view: one entry per image, for its first chosen platform.
            let first = image.images[0]
            var docker: [String: JSONValue] = [
                "Config": .string("blobs/sha256/\(first.blobs[0].digest.encoded)"),
                "Layers": .array(first.blobs.dropFirst().map { .string("blobs/sha256/\($0.digest.encoded)") }),
            ]
            docker["RepoTags"] = image.name.tag != nil ? .array([.string(image.name.withDigest(nil).familiarDescription)]) : .null
            dockerEntries.append(.object(docker))
        }

        // --since: configs and layers the inside holds stay out; manifests always travel (small, and
        // needed to check structure before anything is loaded).
        var carried: [BundleMetadata.Blob] = []
        var required: [BundleMetadata.Blob] = []
        for blob in blobs.values.sorted(by: { $0.digest < $1.digest }) {
            if held.contains(blob.digest) && !blob.mediaType.isManifest { required.append(blob) } else { carried.append(blob) }
        }
        var source: BundleMetadata.SourceManifest?
        if let set { source = .init(name: (set.path as NSString).lastPathComponent, sha256: Digest.sha256(of: set.data).encoded) }
        let metadata = BundleMetadata(tool: .init(name: "airgap", version: BundleExporter.toolVersion), created: try BundleTime.now(),
                                      manifest: source, images: images,
                                      blobs: carried, requiredOnInside: required, since: receipt?.sha256)
        let plan = BundlePlan(metadata: metadata, ociIndex: try CanonicalJSON.encode(ImageIndex(mediaType: .ociIndex, manifests: indexEntries)),
                              dockerManifest: try CanonicalJSON.encode(dockerEntries))
        return (plan, perImageBytes)
    }

    public static let toolVersion = "0.1.0"

    /// What an earlier export to the same name left and this one did not write: volumes past the
    /// new count, the other form (single file or volumes), a volume list or its old signature.
    /// Left in place, they would be read with, or instead of, the new bundle.
    static func removeStaleOutputs(_ output: String, keeping volumeCount: Int, signed: Bool) {
        // Every FILE.NNN past the count, gaps included (a volume lost on the way leaves one).
        let directory = (output as NSString).deletingLastPathComponent
        let base = (output as NSString).lastPathComponent
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? [] {
            guard name.hasPrefix(base + "."), let n = Int(name.dropFirst(base.count + 1)), name.count == base.count + 4, n > volumeCount else { continue }
            unlink(directory.isEmpty ? name : directory + "/" + name)
        }
        if volumeCount == 0 {
            unlink(output + ".volumes.json")
            unlink(output + ".volumes.json.sig")
        } else {
            if FileIO.fileSize(output) != nil { unlink(output) }
            if !signed { unlink(output + ".volumes.json.sig") }
        }
    }

    func write(_ planned: (BundlePlan, perImageBytes: Int64), options: Options) throws -> Summary {
        let (plan, perImageBytes) = planned
        let writer = try VolumeWriter(path: options.output, splitSize: options.splitSize)
        let volumes: VolumeList
        do {
            try BundleWriter(store: store).write(plan, signingKey: options.signingKey, to: { try writer.write($0) })
            volumes = try writer.finish()
        } catch {
            writer.discard()
            throw error
        }
        if options.splitSize != nil {
            let data = try CanonicalJSON.encode(volumes, pretty: true)
            try FileIO.writeAtomically(data, to: options.output + ".volumes.json")
            if let key = options.signingKey {
                try FileIO.writeAtomically(try BundleKeys.sign(data, with: key), to: options.output + ".volumes.json.sig")
            }
        }
        Self.removeStaleOutputs(options.output, keeping: options.splitSize == nil ? 0 : volumes.volumes.count, signed: options.signingKey != nil)
        let unique = plan.metadata.blobs.reduce(Int64(0)) { $0 + $1.size } + plan.metadata.requiredOnInside.reduce(Int64(0)) { $0 + $1.size }
        return Summary(images: plan.metadata.images.count, blobs: plan.metadata.blobs.count, uniqueBytes: unique,
                       bytesSavedByDedup: max(0, perImageBytes - unique), leftOutBlobs: plan.metadata.requiredOnInside.count,
                       bundleBytes: volumes.bundleSize, volumes: volumes)
    }
}
