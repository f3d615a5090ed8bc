import AirgapContent
import AirgapOCI
import AirgapStore
import AirgapTar
import CShims
import enum Crypto.Curve25519
import Foundation

/// A bundle as a sink: the metadata, checksums and signature go first (every digest and size is in
/// the plan), then every manifest and blob once, in digest order, each streamed from its source
/// straight into its tar entry through a verifier. The files appear under their names only when
/// the whole bundle was written; a failed export leaves nothing that looks like a bundle.
public final class BundleSink: ContentSink, @unchecked Sendable {
    public struct Options {
        public var output: String
        public var signingKey: Curve25519.Signing.PrivateKey?
        public var splitSize: Int64?
        public var manifest: BundleMetadata.SourceManifest?
        /// sha256 of the receipt used for `--since`.
        public var since: String?
        /// The registry prefix that receipt described, if it described one.
        public var sinceRegistry: String?
        /// The signed creation time; nil: now (or `SOURCE_DATE_EPOCH`).
        public var created: String?
        public init(output: String, signingKey: Curve25519.Signing.PrivateKey?, splitSize: Int64? = nil,
                    manifest: BundleMetadata.SourceManifest? = nil, since: String? = nil, sinceRegistry: String? = nil, created: String? = nil) {
            self.output = output; self.signingKey = signingKey; self.splitSize = splitSize; self.manifest = manifest
            self.since = since; self.sinceRegistry = sinceRegistry; self.created = created
        }
    }

    /// An image archive (`image save`): the same layout without bundle metadata, to any byte sink.
    public struct Archive {
        public var sink: TarWriter.Sink
        /// Also write Docker's manifest.json (`--format docker`), not only the OCI layout.
        public var dockerView: Bool
        /// The file the sink writes, when it is one: its disk's free space is checked first.
        public var path: String?
        /// index.json and manifest.json at the end, after every blob: a reader cut off before it
        /// (an engine fed while a bundle is still being verified) holds blobs, but no image.
        public var namesLast: Bool
        public init(sink: @escaping TarWriter.Sink, dockerView: Bool, path: String? = nil, namesLast: Bool = false) {
            self.sink = sink; self.dockerView = dockerView; self.path = path; self.namesLast = namesLast
        }
        var temporaryDirectory: String { path.map { ($0 as NSString).deletingLastPathComponent } ?? NSTemporaryDirectory() }
    }

    public let options: Options
    let archive: Archive?
    private var volumes: VolumeWriter?
    private var tar: CanonicalTarWriter?
    /// After `begin`: what bundle.json lists, in numbers.
    public var summary: (images: Int, blobs: Int, uniqueBytes: Int64, leftOut: Int)? {
        counted.map { ($0.images, $0.blobs, $0.uniqueBytes, $0.leftOut) }
    }
    private var counted: BundleHeader.Summary?
    /// After `commit`: the files written.
    public private(set) var volumeList: VolumeList?

    public init(_ options: Options) { self.options = options; archive = nil }
    /// An archive sink: one tar that is an OCI layout and (with `dockerView`) a Docker archive.
    public init(archive: Archive) { self.archive = archive; options = Options(output: "the archive", signingKey: nil) }
    public var description: String { options.output }
    public var order: SinkOrder { .digestOrder }

    public func begin(_ copy: CopyPlan) async throws {
        // Planning left freed memory behind, and so does the header below: handed back, so that a
        // 10,000-image export's peak is what it holds, not what it once held.
        _ = airgap_release_free_memory()
        defer { _ = airgap_release_free_memory() }
        // Everything the tar holds is known now: a disk too small is said before a download.
        if let archive {
            if let path = archive.path { try FileIO.requireFreeSpace(BundleHeader.tarBytes(sizes: copy.digestOrder.lazy.map(\.size)), at: path, for: "the archive \(path)") }
            let tar = CanonicalTarWriter(sink: archive.sink)
            self.tar = tar
            if archive.namesLast {
                try tar.addFile("oci-layout", data: BundleHeader.ociLayout)
                return
            }
            let header = try BundleHeader(copy: copy, provenance: nil, dockerView: archive.dockerView, temporaryDirectory: archive.temporaryDirectory)
            try header.write(to: tar, signingKey: nil)
            return
        }
        let provenance = BundleHeader.Provenance(manifest: options.manifest, since: options.since, sinceRegistry: options.sinceRegistry,
                                                 created: try options.created ?? BundleTime.now())
        let header = try BundleHeader(copy: copy, provenance: provenance, dockerView: true,
                                      temporaryDirectory: (options.output as NSString).deletingLastPathComponent)
        // The header's own blob list gives the size (a second list of 40,000 was 6 MB at once).
        try FileIO.requireFreeSpace(header.summary.tarBytes, at: options.output, for: "the bundle \(options.output)")
        let volumes = try VolumeWriter(path: options.output, splitSize: options.splitSize)
        let tar = CanonicalTarWriter(sink: { try volumes.write($0) })
        self.volumes = volumes
        self.tar = tar
        try header.write(to: tar, signingKey: options.signingKey)
        counted = header.summary
    }

    public func holds(_ descriptor: Descriptor, for name: Reference) async throws -> Bool { false }

    public func blobWriter(_ descriptor: Descriptor, for name: Reference) async throws -> any BlobWriter {
        guard let tar else { throw ContentError(.missing, "the bundle was not begun") }
        try tar.beginFile(Naming.blobPath(descriptor.digest), size: descriptor.size)
        return TarEntryWriter(tar: tar, verifier: BlobVerifier(descriptor, source: "blob \(descriptor.digest) of \(name.familiarName)"))
    }

    public func commit(_ copy: CopyPlan) async throws {
        guard let tar else { throw ContentError(.missing, "the bundle was not begun") }
        if let archive, archive.namesLast {
            try BundleHeader(copy: copy, provenance: nil, dockerView: archive.dockerView, temporaryDirectory: archive.temporaryDirectory).writeNames(to: tar)
        }
        try tar.close()
        guard let volumes else { return }
        let list = try volumes.finish()
        if options.splitSize != nil {
            let data = try CanonicalJSON.encode(list, pretty: true)
            try FileIO.writeAtomically(data, to: options.output + ".volumes.json")
            if let key = options.signingKey {
                try FileIO.writeAtomically(try BundleKeys.sign(data, with: key), to: options.output + ".volumes.json.sig")
            }
        }
        Self.removeStaleOutputs(options.output, keeping: options.splitSize == nil ? 0 : list.volumes.count, signed: options.signingKey != nil)
        volumeList = list
    }

    public func abort() async {
        volumes?.discard()
    }

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
}

/// One blob's entry in a tar being written: bytes pass a verifier on their way in.
final class TarEntryWriter: BlobWriter, @unchecked Sendable {
    private let tar: CanonicalTarWriter
    private var verifier: BlobVerifier
    init(tar: CanonicalTarWriter, verifier: BlobVerifier) { self.tar = tar; self.verifier = verifier }
    var offset: Int64 { verifier.byteCount }
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        let tar = self.tar
        try verifier.update(bytes) { try tar.write($0) }
    }
    func restart() throws {
        // The bytes are already in the stream; a tar cannot take them back.
        throw ContentError(.unsupported, "the source ignored a Range request while resuming \(verifier.expected?.description ?? "a blob"), and a bundle being written cannot rewind; run the export again")
    }
    func commit() async throws -> Digest { try verifier.finish() }
    func abandon(keepForResume: Bool) async {}
}
