#if canImport(Glibc)
import Glibc
#endif
import AirgapContent
import AirgapOCI
import AirgapStore
import AirgapTar
import enum Crypto.Curve25519
import Foundation

/// One problem found in a bundle, naming the entry (and volume) at fault.
public struct Finding: Codable, Sendable, Equatable, CustomStringConvertible {
    public var entry: String
    public var volume: String?
    public var problem: String
    public init(entry: String, volume: String? = nil, problem: String) { self.entry = entry; self.volume = volume; self.problem = problem }
    public var description: String { "\(entry)\(volume.map { " (in \($0))" } ?? ""): \(problem)" }
}

/// A bundle entry as read: the sha256 computed over its bytes and whether it matched SHA256SUMS.
public struct ReadEntry: Codable, Sendable {
    public var size: Int64
    /// Most entries are blobs that matched: the name and the sha256 are then one digest, kept as
    /// such (40,000 entries of a 10,000-image bundle, two strings each as text).
    private enum Stored: Sendable {
        case matchedBlob(Digest)
        case other(name: String, digest: Digest?, ok: Bool)
    }
    private var stored: Stored

    public var name: String {
        switch stored {
        case .matchedBlob(let digest): Naming.blobPath(digest)
        case .other(let name, _, _): name
        }
    }
    var digest: Digest? {
        switch stored {
        case .matchedBlob(let digest): digest
        case .other(_, let digest, _): digest
        }
    }
    public var sha256: String { digest?.encoded ?? "" }
    public var ok: Bool {
        switch stored {
        case .matchedBlob: true
        case .other(_, _, let ok): ok
        }
    }

    public init(name: String, size: Int64, sha256: String, ok: Bool) {
        self.init(name: name, size: size, digest: try? Digest(algorithm: .sha256, encoded: sha256), ok: ok)
    }
    init(name: String, size: Int64, digest: Digest?, ok: Bool) {
        self.size = size
        if ok, let digest, name.utf8.count == 77, name.hasPrefix("blobs/sha256/"), Naming.digest(ofBlobPath: name) == digest {
            stored = .matchedBlob(digest)
        } else {
            stored = .other(name: name, digest: digest, ok: ok)
        }
    }
    /// The entry's hash as found later (hashed on the other core).
    mutating func settle(_ actual: Digest, ok: Bool) { self = ReadEntry(name: name, size: size, digest: actual, ok: ok) }

    enum CodingKeys: String, CodingKey { case name, size, sha256, ok }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), size: try c.decode(Int64.self, forKey: .size),
                  sha256: try c.decode(String.self, forKey: .sha256), ok: try c.decode(Bool.self, forKey: .ok))
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(size, forKey: .size)
        try c.encode(sha256, forKey: .sha256)
        try c.encode(ok, forKey: .ok)
    }
}

public enum SignatureStatus: Sendable, Equatable {
    case valid(fingerprint: String)
    case invalid
    case unsigned
    case notChecked
    public var description: String {
        switch self {
        case .valid(let f): "valid (signer \(f))"
        case .invalid: "INVALID"
        case .unsigned: "unsigned"
        case .notChecked: "not checked"
        }
    }
}

/// The files a bundle is in: one file, or volumes `FILE.001`, `FILE.002`, … with their signed list.
public struct BundleFiles: Sendable {
    public var paths: [String]
    public var base: String
    public var isSplit: Bool
    /// Every volume was named on the command line (rather than found from the first).
    public var namedEachVolume = false

    /// `FILE`, `FILE.001` (the rest are found), or every volume listed.
    public static func resolve(_ given: [String]) throws -> BundleFiles {
        guard let first = given.first else { throw BundleError.format("no bundle given") }
        if given.contains("-") {
            throw BundleError.format("a bundle cannot be read from standard input ('-'): verify, load and push read it from a regular file (push reads its blobs again by offset); save it to a file first")
        }
        if given.count > 1 {
            let base = first.hasSuffix(".001") ? String(first.dropLast(4)) : first
            return BundleFiles(paths: given, base: base, isSplit: true, namedEachVolume: true)
        }
        if first.hasSuffix(".001") {
            let base = String(first.dropLast(4))
            return BundleFiles(paths: volumes(base: base), base: base, isSplit: true)
        }
        if FileManager.default.fileExists(atPath: first) { return BundleFiles(paths: [first], base: first, isSplit: false) }
        if FileManager.default.fileExists(atPath: first + ".001") { return BundleFiles(paths: volumes(base: first), base: first, isSplit: true) }
        throw BundleError.io("the bundle \(first) does not exist (nor \(first).001); check the path")
    }

    static func volumes(base: String) -> [String] {
        var paths: [String] = []
        var n = 1
        while FileManager.default.fileExists(atPath: base + "." + String(format: "%03d", n)) {
            paths.append(base + "." + String(format: "%03d", n))
            n += 1
        }
        return paths
    }

    public var volumeListPath: String { base + ".volumes.json" }

    /// The volumes the signed list names, in its order, next to the first one.
    func listed(_ list: VolumeList) -> BundleFiles {
        let directory = (base as NSString).deletingLastPathComponent
        let paths = list.volumes.map { directory.isEmpty ? $0.name : "\(directory)/\($0.name)" }
        return BundleFiles(paths: paths, base: base, isSplit: true)
    }
}

/// Which signatures a read accepts: a signature valid by one of `keys`; with `allowUnsigned`, also
/// none at all, unless the key was named by the user (`--key`), who then gets that key's
/// signature or a refusal.
public struct BundleTrust {
    public var keys: [Curve25519.Signing.PublicKey]
    public var keyNamedByUser: Bool
    public var allowUnsigned: Bool
    /// Where the keys came from, for the refusal sentence ("--key site.pub", "the trusted signers").
    public var keySource: String

    public init(keys: [Curve25519.Signing.PublicKey], keyNamedByUser: Bool, allowUnsigned: Bool, keySource: String) {
        self.keys = keys; self.keyNamedByUser = keyNamedByUser; self.allowUnsigned = allowUnsigned; self.keySource = keySource
    }

    public static func key(_ key: Curve25519.Signing.PublicKey?, allowUnsigned: Bool) -> BundleTrust {
        BundleTrust(keys: key.map { [$0] } ?? [], keyNamedByUser: key != nil, allowUnsigned: allowUnsigned, keySource: "the given key")
    }

    func signer(of data: Data, signature: Data) -> Curve25519.Signing.PublicKey? {
        keys.first { BundleKeys.verify(signature, of: data, with: $0) }
    }
}

/// The result of reading a bundle: every finding, not only the first.
public struct BundleReadResult: Sendable {
    public var files: BundleFiles
    public var metadata: BundleMetadata?
    public var checksums: Checksums?
    public var signature: SignatureStatus = .notChecked
    public var findings: [Finding] = []
    public var entries: [ReadEntry] = []
    public var index: ImageIndex?
    /// Small JSON blobs (manifests, indexes, configs), by digest, for structure checks and reports.
    public var documents: [Digest: Data] = [:]
    /// Configs that are not JSON, when their bytes were not kept (`BundleReader.keepsConfigs`).
    var invalidConfigs: Set<Digest> = []
    /// sha256 and size of each bundle file as read (when hashing files was asked for).
    public var fileHashes: [(path: String, size: Int64, sha256: String)] = []
    /// Byte offset of each blob's data in the concatenated bundle stream (for pushing by range).
    public var blobOffsets: [Digest: Int64] = [:]
    /// The bundle's identity: sha256 of its signed SHA256SUMS, which fixes every byte of a canonical bundle.
    public var bundleID: String?
    public var ok: Bool { findings.isEmpty }
    public init(files: BundleFiles) { self.files = files }
}

/// What a blob handler gets: the entry's bytes, streamed once, in order.
public struct EntryData {
    let stream: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void
    public func readData(_ body: (UnsafeRawBufferPointer) throws -> Void) throws { try stream(body) }
    public static func memory(_ data: Data) -> EntryData { EntryData { body in try data.withUnsafeBytes { try body($0) } } }
}

/// Hashes blobs on a second core, reading them itself from their byte ranges in the bundle files
/// while the reader thread reads on through the stream, checks the encoding and
/// hashes other blobs. What it hashes is what a later consumer re-reads by offset and hashes again.
final class BackgroundHasher: @unchecked Sendable {
    final class Result: @unchecked Sendable {
        var digest: Digest?
        var error: (any Error)?
    }
    private let queue = DispatchQueue(label: "airgap.verify.hash")
    private let lock = NSLock()
    private var pendingBytes: Int64 = 0
    private var cancelled = false

    deinit { queue.sync {} }

    /// Takes a blob when what it still has to hash is less than the blob: the reader then finishes
    /// the blobs after it inline while this one works.
    func wants(_ size: Int64) -> Bool { lock.withLock { pendingBytes < size } }

    func hash(_ segments: FileSegments, progress: (@Sendable (Int64) -> Void)? = nil) -> Result {
        let result = Result()
        let total = segments.length
        lock.withLock { pendingBytes += total }
        queue.async {
            var hasher = DigestHasher()
            do {
                try segments.read { chunk in
                    if self.isCancelled { throw Cancelled() }
                    hasher.update(chunk)
                    progress?(Int64(chunk.count))
                }
                result.digest = hasher.finalize()
            } catch {
                result.error = error
            }
            self.lock.withLock { self.pendingBytes -= total }
        }
        return result
    }

    /// Every blob handed over has its digest (or its error).
    func wait() { queue.sync {} }

    /// The read already failed: what is still being hashed stops at its next chunk.
    func cancel() { lock.withLock { cancelled = true } }
    var isCancelled: Bool { lock.withLock { cancelled } }
    struct Cancelled: Error {}
    func finish() { queue.sync {} }
}

/// Reads a bundle in one streaming pass, accepting only its canonical encoding (`CanonicalTar`):
/// the metadata block and the signature of SHA256SUMS first, then exactly the entries SHA256SUMS
/// lists, in its order, each header recomputed and compared byte for byte, each entry hashed, the
/// padding and end-of-archive checked to be zero and nothing after them. Every read is bounded by
/// the signed sizes. `blobHandler`, when given, receives each blob entry's bytes (load ingests them
/// into the store) and returns the digest it computed over exactly those bytes, which the reader
/// then does not hash a second time.
public final class BundleReader {
    public typealias BlobHandler = (_ digest: Digest, _ size: Int64, _ data: EntryData, _ name: String) async throws -> Digest

    public private(set) var files: BundleFiles
    let trust: BundleTrust
    let hashFiles: Bool
    /// Told of the read pass (its size, then bytes as they are read), for progress.
    public var events: TransferEvents?
    /// Keep image configs' bytes in `documents` (a copy, a push or a report reads them); false: each
    /// is only checked to be JSON as it passes (`verify`: 13 MB at 10,000 images).
    public var keepsConfigs = true
    /// Keep each good blob's byte offset in `blobOffsets` (a push, a serve or a copy reads blobs
    /// again from there); false: `verify`, which reads nothing again (30,000 at 10,000 images).
    public var keepsOffsets = true

    public init(files: BundleFiles, trust: BundleTrust, hashFiles: Bool = false) {
        self.files = files
        self.trust = trust
        self.hashFiles = hashFiles
    }

    public convenience init(files: BundleFiles, publicKey: Curve25519.Signing.PublicKey?, allowUnsigned: Bool, hashFiles: Bool = false) {
        self.init(files: files, trust: .key(publicKey, allowUnsigned: allowUnsigned), hashFiles: hashFiles)
    }

    static let metadataLimit: Int64 = 64 << 20
    static let documentLimit: Int64 = 16 << 20
    static let signatureSize: Int64 = 64

    /// `verifiedMetadata` sees bundle.json once the signature and its hash held, before any other
    /// entry is read; what it throws ends the read.
    public func read(verifiedMetadata: ((BundleMetadata, SignatureStatus) async throws -> Void)? = nil, blobHandler: BlobHandler? = nil) async throws -> BundleReadResult {
        var result = BundleReadResult(files: files)
        if let compression = Compression.detect(path: files.paths[0]) {
            // Bundles are written as plain tar so that blob byte ranges are file offsets; a compressed
            // one was repacked by someone, and decompressing it here would hand a bomb the disk.
            result.findings.append(Finding(entry: files.paths[0], problem: "the bundle is \(compression.rawValue)-compressed, but airgap bundles are plain tar; decompress it (\(compression.decompressCommand)) and check the result"))
            return result
        }
        let volumeList = checkVolumeList(&result)
        if files.isSplit && volumeList == nil { return result }
        result.files = files
        let files = self.files
        let fileSource: FileSequenceSource
        do { fileSource = try FileSequenceSource(paths: files.paths) } catch {
            result.findings.append(Finding(entry: (files.paths[0] as NSString).lastPathComponent, problem: "\(error)"))
            return result
        }
        if let volumeList { compareVolumeSizes(volumeList, actual: fileSource.sizes, &result) }
        guard result.findings.isEmpty else { return result }
        let events = self.events
        events?(.passStarted(EscapedText.escape((files.paths[0] as NSString).lastPathComponent), bytes: fileSource.sizes.reduce(0, +)))
        defer { events?(.passFinished) }
        var passProgress: (@Sendable (Int64) -> Void)?
        if let events { passProgress = { events(.passProgress(bytes: $0)) } }
        let hashing = HashingSource(fileSource, hashEachFile: hashFiles, onRead: passProgress)
        let tar = CanonicalTarReader(source: hashing)

        func volume(at offset: Int64) -> String? {
            guard files.isSplit else { return nil }
            var start: Int64 = 0
            for (path, size) in zip(files.paths, fileSource.sizes) {
                if offset < start + size { return (path as NSString).lastPathComponent + " byte \(offset - start)" }
                start += size
            }
            return (files.paths.last! as NSString).lastPathComponent
        }
        func structural(_ error: any Error) {
            if let error = error as? CanonicalTarError {
                result.findings.append(Finding(entry: error.entry, volume: volume(at: error.offset), problem: error.description))
            } else {
                result.findings.append(Finding(entry: "archive", problem: "cannot be read: \(error)"))
            }
        }
        func record(_ name: String, _ data: Data) -> Digest {
            let digest = Digest.sha256(of: data)
            result.entries.append(ReadEntry(name: name, size: Int64(data.count), digest: digest, ok: true))
            return digest
        }

        // The metadata block: bundle.json, SHA256SUMS and (when signed) its signature, in that order.
        // Let go once decoded (a 10,000-image bundle's are 11.5 and 4.3 MB; their parsed forms stay).
        var metadataBytes: Data, sumsBytes: Data
        var signatureBytes: Data?
        let sums: Checksums
        // A header read while looking for the optional signature that turned out to be the first listed entry.
        var pendingHeader: (name: String, size: Int64)?
        var pendingHeaderStart: Int64 = 0
        var entryNames: ArraySlice<Checksums.Entry>
        do {
            let meta = try tar.readHeader(oneOf: [BundleMetadata.entryName], limit: Self.metadataLimit)
            metadataBytes = try tar.readAll(size: meta.size, entry: meta.name)
            let sumsHeader = try tar.readHeader(oneOf: [BundleMetadata.checksumsName], limit: Self.metadataLimit)
            sumsBytes = try tar.readAll(size: sumsHeader.size, entry: sumsHeader.name)
            do { sums = try Checksums.parse(sumsBytes) } catch {
                result.findings.append(Finding(entry: BundleMetadata.checksumsName, problem: "\(error)"))
                return result
            }
            guard sums.entries.first?.name == BundleMetadata.entryName else {
                result.findings.append(Finding(entry: BundleMetadata.checksumsName, problem: "does not list \(BundleMetadata.entryName) first; this is not an airgap bundle, or its metadata block is damaged"))
                return result
            }
            entryNames = sums.entries.dropFirst()
            // The signature is optional, so the next header is it or the first listed entry (sized below).
            pendingHeaderStart = tar.position
            let next = try tar.readHeader(oneOf: [BundleMetadata.signatureName] + (entryNames.first.map { [$0.name] } ?? []),
                                          limit: .max, size: nil)
            if next.name == BundleMetadata.signatureName {
                guard next.size == Self.signatureSize else {
                    result.findings.append(Finding(entry: next.name, problem: "holds \(next.size) bytes; an Ed25519 signature has \(Self.signatureSize)"))
                    return result
                }
                signatureBytes = try tar.readAll(size: next.size, entry: next.name)
            } else {
                pendingHeader = next
            }
        } catch {
            structural(error)
            if result.findings.first?.entry == BundleMetadata.entryName {
                // The name the reader found in the first header, not a second read of the file.
                if let tarError = error as? CanonicalTarError, tarError.offset == 0, let first = tarError.found, Self.isImageArchiveEntry(first) {
                    // Never advice to load it: it carries no signature, whatever it claims to be.
                    let file = EscapedText.escape((files.paths[0] as NSString).lastPathComponent)
                    result.findings[0].problem = "\(file) is an image archive (docker save, podman save, skopeo or an OCI layout: it starts with \(EscapedText.quote(first))), not an airgap bundle: it carries no airgap signature, so nothing in it can be verified; make a bundle on the connected side with 'airgap-export bundle'"
                } else {
                    result.findings[0].problem += " (is this an airgap bundle?)"
                }
            }
            return result
        }
        _ = record(BundleMetadata.entryName, metadataBytes)
        _ = record(BundleMetadata.checksumsName, sumsBytes)
        if let signatureBytes { _ = record(BundleMetadata.signatureName, signatureBytes) }
        result.checksums = sums
        result.bundleID = Digest.sha256(of: sumsBytes).encoded

        // Nothing below is trusted unless the signature holds.
        guard checkSignature(sums: sumsBytes, signature: signatureBytes, &result) else { return result }
        sumsBytes = Data()
        if Digest.sha256(of: metadataBytes) != sums.entries[0].digest {
            result.findings.append(Finding(entry: BundleMetadata.entryName, problem: "does not match SHA256SUMS (expected \(sums.entries[0].digest.encoded), got \(Digest.sha256(of: metadataBytes).encoded))"))
            return result
        }
        do { result.metadata = try JSONDecoder().decode(BundleMetadata.self, from: metadataBytes) } catch {
            result.findings.append(Finding(entry: BundleMetadata.entryName, problem: "not valid bundle metadata (\(CanonicalJSON.describeAny(error)))"))
            return result
        }
        metadataBytes = Data()
        if let format = result.metadata?.formatVersion, format > BundleMetadata.currentFormat {
            result.findings.append(Finding(entry: BundleMetadata.entryName, problem: "the bundle has format \(format), newer than the \(BundleMetadata.currentFormat) this airgap reads; use a newer airgap-import"))
            return result
        }
        let blobIndex = BlobTable(result.metadata?.blobs ?? [])
        let keepsOffsets = self.keepsOffsets
        func keepOffset(_ digest: Digest, _ offset: Int64) { if keepsOffsets { result.blobOffsets[digest] = offset } }
        /// SHA256SUMS's blob entries that bundle.json lists (each name once, so each digest once).
        var summedBlobs = 0
        if let verifiedMetadata, let metadata = result.metadata { try await verifiedMetadata(metadata, result.signature) }
        // Verify alone (no handler, nothing handed on) hashes two blobs at once: one on a second
        // core while this thread reads and hashes the next. A single SHA-256 stream cannot be split.
        let background = blobHandler == nil ? BackgroundHasher() : nil
        var deferred: [(entry: Int, name: String, want: Digest, start: Int64, size: Int64, result: BackgroundHasher.Result)] = []
        func settle(_ item: (entry: Int, name: String, want: Digest, start: Int64, size: Int64, result: BackgroundHasher.Result)) {
            guard let actual = item.result.digest else {
                result.findings.append(Finding(entry: item.name, problem: "could not be read again to hash it: \(item.result.error.map { "\($0)" } ?? "unknown error")"))
                return
            }
            result.entries[item.entry].settle(actual, ok: actual == item.want)
            if actual == item.want {
                keepOffset(item.want, item.start)
            } else {
                result.findings.append(Finding(entry: item.name, volume: damagedVolumes(item.start..<item.start + item.size, list: volumeList, sizes: fileSource.sizes),
                                               problem: "content does not match SHA256SUMS (expected \(item.want.encoded), got \(actual.encoded))"))
            }
        }
        defer { background?.cancel(); background?.finish() } // drained by then on success
        /// The result with every blob handed to the background hasher settled. An early return is
        /// a failure already: what is still being hashed is stopped rather than waited for.
        func settled(cancelling: Bool = true) -> BundleReadResult {
            if cancelling { background?.cancel() }
            background?.wait()
            for item in deferred where !(item.result.error is BackgroundHasher.Cancelled) { settle(item) }
            deferred = []
            return result
        }

        // The largest blob goes to the other core before the stream reaches it, from the offset
        // the canonical layout gives it (every later size is signed): a single SHA-256 stream is
        // the floor, and it is reached only if that stream starts first. Used only if the stream
        // then finds the entry exactly there; otherwise it is read like any other.
        var ahead: (name: String, offset: Int64, result: BackgroundHasher.Result)?
        var plannedAhead = false
        /// A blob hashed on the other core from its byte range in the files; its bytes count as
        /// checked when hashed there, not as the stream passes them.
        func handOver(_ background: BackgroundHasher, offset: Int64, size: Int64) -> BackgroundHasher.Result {
            passProgress?(-size)
            return background.hash(.spanning(offset: offset, length: size, paths: files.paths, sizes: fileSource.sizes), progress: passProgress)
        }
        /// Who hashes this entry off this thread: the blob planned ahead, if the stream found it
        /// exactly where it was planned, or the other core when it has room; nil: this thread.
        func offThread(_ name: String, size: Int64) -> BackgroundHasher.Result? {
            if let early = ahead, early.name == name, early.offset == tar.position {
                ahead = nil
                return early.result
            }
            guard let background, name != entryNames.last?.name, background.wants(size) else { return nil }
            return handOver(background, offset: tar.position, size: size)
        }

        do {
            for index in entryNames.indices {
                let listed = entryNames[index]
                let (name, want) = (listed.name, listed.digest)
                let blobDigest = listed.blobDigest
                if let background, !plannedAhead, blobDigest != nil, pendingHeader == nil {
                    plannedAhead = true
                    if let best = Self.aheadCandidate(entryNames[index...], headerAt: tar.position, sizes: blobIndex, fileSize: fileSource.sizes.reduce(0, +)) {
                        ahead = (best.name, best.offset, handOver(background, offset: best.offset, size: best.size))
                    }
                }
                var exactSize: Int64?
                var limit = Self.documentLimit
                if let blobDigest {
                    guard blobDigest == want else {
                        result.findings.append(Finding(entry: name, problem: "SHA256SUMS gives it \(want), which is not the digest its name claims"))
                        return settled()
                    }
                    guard let blob = blobIndex[blobDigest] else {
                        result.findings.append(Finding(entry: name, problem: "listed in SHA256SUMS but not in bundle.json, so its size is unknown"))
                        return settled()
                    }
                    summedBlobs += 1
                    exactSize = blob.size
                    limit = blob.size
                } else if name.hasPrefix("airgap/") {
                    result.findings.append(Finding(entry: name, problem: "SHA256SUMS lists a second metadata entry"))
                    return settled()
                }
                let header: (name: String, size: Int64)
                if let pending = pendingHeader {
                    pendingHeader = nil
                    header = pending
                    if let exactSize, exactSize != header.size {
                        throw CanonicalTarError(offset: pendingHeaderStart, entry: name, problem: "the header of \(name) gives \(header.size) bytes, but the signed metadata says \(exactSize)")
                    }
                    guard header.size <= limit else {
                        throw CanonicalTarError(offset: pendingHeaderStart, entry: name, problem: "\(name) is \(header.size) bytes, over the \(limit)-byte limit for it")
                    }
                } else {
                    header = try tar.readHeader(oneOf: [name], limit: limit, size: exactSize)
                }
                let size = header.size
                let keep = blobDigest == nil || size <= Self.documentLimit && isDocument(blobIndex[blobDigest!]!)
                let actual: Digest
                if keep {
                    let data = try tar.readAll(size: size, entry: name)
                    actual = Digest.sha256(of: data)
                    if actual == want {
                        if let blobDigest, !keepsConfigs, blobIndex[blobDigest]!.mediaType.isImageConfig {
                            if !JSONSyntax.isValid(data) { result.invalidConfigs.insert(blobDigest) }
                            keepOffset(blobDigest, tar.position - Int64(CanonicalTar.padding(size)) - size)
                            if let blobHandler { _ = try await blobHandler(blobDigest, size, .memory(data), name) }
                        } else if let blobDigest {
                            result.documents[blobDigest] = data
                            keepOffset(blobDigest, tar.position - Int64(CanonicalTar.padding(size)) - size)
                            if let blobHandler { _ = try await blobHandler(blobDigest, size, .memory(data), name) }
                        } else if name == "index.json" {
                            result.index = try? ImageIndex.decode(data, what: "index.json")
                            if result.index == nil { result.findings.append(Finding(entry: name, problem: "not a valid OCI index")) }
                        } else if name == "manifest.json" {
                            if !JSONSyntax.isValid(data) { result.findings.append(Finding(entry: name, problem: "not valid JSON")) }
                        }
                    }
                } else if let pending = offThread(name, size: size) {
                    // The stream here is only read past (its padding and what follows are still
                    // checked). Settled in order below.
                    let offset = tar.position
                    try tar.readData(size: size, entry: name) { _ in }
                    result.entries.append(ReadEntry(name: name, size: size, digest: nil, ok: false))
                    deferred.append((result.entries.count - 1, name, want, offset, size, pending))
                    continue
                } else {
                    // Hashed once: by the handler (the store's ingest hashes what it writes), or here.
                    let offset = tar.position
                    var consumed: Int64 = 0
                    let data = EntryData { body in
                        try tar.readData(size: size, entry: name) { chunk in
                            consumed += Int64(chunk.count)
                            try body(chunk)
                        }
                    }
                    if let blobHandler {
                        do { actual = try await blobHandler(blobDigest!, size, data, name) } catch let error as ContentError where error.actual != nil && consumed == size {
                            actual = error.actual! // the store refused the bytes: the mismatch is the finding
                        }
                    } else {
                        var verifier = BlobVerifier(expected: nil, size: size, source: name)
                        try data.readData { try verifier.update($0) }
                        actual = try verifier.finish()
                    }
                    guard consumed == size else { throw CanonicalTarError(offset: tar.position, entry: name, problem: "\(name) was not read to its end") }
                    if actual == want { keepOffset(blobDigest!, offset) }
                }
                result.entries.append(ReadEntry(name: name, size: size, digest: actual, ok: actual == want))
                if actual != want {
                    let start = tar.position - Int64(CanonicalTar.padding(size)) - size
                    result.findings.append(Finding(entry: name, volume: damagedVolumes(start..<start + size, list: volumeList, sizes: fileSource.sizes),
                                                   problem: "content does not match SHA256SUMS (expected \(want.encoded), got \(actual.encoded))"))
                }
            }
            if let pending = pendingHeader {
                throw CanonicalTarError(offset: pendingHeaderStart, entry: pending.name, problem: "an entry where the archive must end")
            }
            try tar.readEnd()
            _ = settled(cancelling: false)
        } catch let error as StoreError {
            throw error // the store, not the bundle, failed (disk full, permissions)
        } catch {
            structural(error)
            return settled()
        }
        if hashFiles { result.fileHashes = hashing.fileHashes }
        checkStructure(&result, blobs: blobIndex, summedBlobs: summedBlobs)
        return result
    }


    /// Signature first: nothing else is trusted without it.
    private func checkSignature(sums: Data, signature: Data?, _ result: inout BundleReadResult) -> Bool {
        guard let signature else {
            result.signature = .unsigned
            if trust.keyNamedByUser {
                result.findings.append(Finding(entry: BundleMetadata.signatureName, problem: "the bundle is unsigned, but \(trust.keySource) must have signed it; refusing it (its signature may have been stripped)"))
                return false
            }
            if !trust.allowUnsigned {
                result.findings.append(Finding(entry: BundleMetadata.signatureName, problem: "the bundle is unsigned; refusing it (use --allow-unsigned to accept an unsigned bundle)"))
                return false
            }
            return true
        }
        if trust.keys.isEmpty {
            result.signature = .notChecked
            if !trust.allowUnsigned {
                result.findings.append(Finding(entry: BundleMetadata.signatureName, problem: "no key to check the signature with: give --key NAME.pub, or trust the signer once with 'airgap-import trust add NAME.pub'"))
                return false
            }
            return true
        }
        if let signer = trust.signer(of: sums, signature: signature) {
            result.signature = .valid(fingerprint: BundleKeys.fingerprint(signer))
            return true
        }
        result.signature = .invalid
        result.findings.append(Finding(entry: BundleMetadata.signatureName, problem: "the signature does not match SHA256SUMS with \(trust.keySource): the bundle was signed by another key or altered; nothing in it is trusted"))
        return false
    }

    /// The signed volume list of a split bundle; from here on the volumes are the ones it names.
    private func checkVolumeList(_ result: inout BundleReadResult) -> VolumeList? {
        guard files.isSplit else { return nil }
        let path = files.volumeListPath
        let listName = (path as NSString).lastPathComponent
        guard let data = readSmallFile(path) else {
            result.findings.append(Finding(entry: listName, problem: "the volume list of the split bundle is missing or unreadable; copy it along with the volumes"))
            return nil
        }
        // Signed like the bundle: a signature present must hold; none is accepted only where an
        // unsigned bundle would be.
        let signature = readSmallFile(path + ".sig")
        let unsignedAccepted = trust.allowUnsigned && !trust.keyNamedByUser && (signature == nil || trust.keys.isEmpty)
        if !unsignedAccepted {
            guard let signature, trust.signer(of: data, signature: signature) != nil else {
                result.findings.append(Finding(entry: listName, problem: "its signature (\(listName).sig) is missing or does not match \(trust.keySource)"))
                return nil
            }
        }
        guard let list = try? JSONDecoder().decode(VolumeList.self, from: data), !list.volumes.isEmpty,
              list.volumes.allSatisfy({ CanonicalTar.isAllowedName($0.name) && !$0.name.contains("/") }) else {
            result.findings.append(Finding(entry: listName, problem: "not a valid volume list"))
            return nil
        }
        let given = files.paths.map { ($0 as NSString).lastPathComponent }
        let listed = files.listed(list)
        if files.namedEachVolume && given != list.volumes.map(\.name) {
            result.findings.append(Finding(entry: listName, problem: "the volumes given (\(given.joined(separator: ", "))) are not the \(list.volumes.count) it lists, in order"))
            return nil
        }
        let volumes = zip(list.volumes, listed.paths).map { (volume: $0.0, path: $0.1, present: FileIO.exists($0.1)) }
        let absent = volumes.filter { !$0.present }
        if !absent.isEmpty {
            for (volume, _, _) in absent {
                result.findings.append(Finding(entry: volume.name, volume: volume.name, problem: "this volume is missing; all \(list.volumes.count) volumes are needed"))
            }
            // The bundle cannot be read without them, but the ones present are checked against
            // the signed list each, so one run names every volume to copy again.
            let present = volumes.filter(\.present)
            events?(.passStarted("the \(present.count) volumes present", bytes: present.reduce(0) { $0 + max($1.volume.size, 0) }))
            defer { events?(.passFinished) }
            let events = self.events
            for (volume, path, _) in present where !Self.matches(path, volume, progress: { events?(.passProgress(bytes: $0)) }) {
                result.findings.append(Finding(entry: volume.name, volume: volume.name, problem: "this volume is damaged: its size or sha256 differs from the signed volume list"))
            }
            return nil
        }
        files = listed
        return list
    }

    /// Volume boundaries are where the signed list puts them: every volume but the last is exactly
    /// the split size, and each has its listed size.
    private func compareVolumeSizes(_ list: VolumeList, actual: [Int64], _ result: inout BundleReadResult) {
        for (i, (volume, size)) in zip(list.volumes, actual).enumerated() {
            let full = i < list.volumes.count - 1
            if size != volume.size || (full && size != list.splitSize) || (!full && (size == 0 || size > list.splitSize)) {
                result.findings.append(Finding(entry: volume.name, volume: volume.name, problem: "this volume is damaged: it holds \(size) bytes, the signed volume list says \(volume.size)"))
            }
        }
        let total = list.volumes.reduce(Int64?(0)) { sum, volume in
            guard let sum, volume.size >= 0 else { return nil }
            let (next, overflow) = sum.addingReportingOverflow(volume.size)
            return overflow ? nil : next
        }
        if total != list.bundleSize {
            result.findings.append(Finding(entry: (files.volumeListPath as NSString).lastPathComponent, problem: "its volume sizes do not add up to the bundle size it gives"))
        }
    }

    /// Every blob the index and manifests name is in the bundle or required on the inside; one
    /// walk over the graph with real depth (an index of indexes of manifests is depth 3).
    private func checkStructure(_ result: inout BundleReadResult, blobs: BlobTable, summedBlobs: Int) {
        guard result.signature != .invalid, let metadata = result.metadata else { return }
        guard let index = result.index else {
            if !result.findings.contains(where: { $0.entry == "index.json" }) {
                result.findings.append(Finding(entry: "index.json", problem: "missing or unreadable"))
            }
            return
        }
        // One canonical bundle: what bundle.json says it carries is what SHA256SUMS lists, no more.
        // Every blob entry read was found in bundle.json: counts that agree say the same of the
        // other side without a set of 30,000 digests; when they differ, the set names which.
        if summedBlobs != blobs.count {
            let summed = Set((result.checksums?.entries ?? []).compactMap(\.blobDigest))
            for blob in metadata.blobs where !summed.contains(blob.digest) {
                result.findings.append(Finding(entry: BundleMetadata.entryName, problem: "lists \(blob.digest) as carried, but SHA256SUMS does not and the bundle holds no such entry"))
            }
        }
        let required = Dictionary(metadata.requiredOnInside.map { ($0.digest, $0.size) }, uniquingKeysWith: { _, last in last })
        func available(_ digest: Digest) -> Int64? { required[digest] ?? blobs[digest]?.size }
        func need(_ d: Descriptor, by: String) {
            guard let size = available(d.digest) else {
                result.findings.append(Finding(entry: by, problem: "names \(d.digest), which is neither in the bundle nor listed as required on the inside"))
                return
            }
            if size != d.size { result.findings.append(Finding(entry: by, problem: "gives \(d.digest) \(d.size) bytes but the bundle lists \(size)")) }
        }
        let listed = Set(index.manifests.map(\.digest))
        for image in metadata.images where !listed.contains(image.digest) {
            result.findings.append(Finding(entry: "index.json", problem: "does not list \(image.reference) (\(image.digest)) that bundle.json promises"))
        }
        var limits = GraphLimits()
        limits.depth = Self.maximumDepth
        limits.documentSize = Self.documentLimit
        for top in index.manifests {
            need(top, by: "index.json")
            let name = "blobs/sha256/\(top.digest.encoded)"
            // A top manifest that failed its hash was reported as such; one too big to hold is walked (and refused).
            guard available(top.digest) != nil, result.documents[top.digest] != nil || top.size > Self.documentLimit else { continue }
            let graph: ImageGraph
            do {
                // Everything below a top entry that the bundle does not hold is a finding of `need`.
                graph = try GraphWalk.run(GraphWalk(root: top, subject: "the image \(top.refName.map(EscapedText.quote) ?? "")", limits: limits, allowAbsent: true)) { d in result.documents[d.digest] }
            } catch {
                result.findings.append(Finding(entry: name, problem: "\(error)"))
                continue
            }
            for d in graph.manifests.dropLast() + graph.absent + graph.blobs { need(d, by: name) }
            for image in graph.images {
                let config = image.manifest.config.digest
                if result.invalidConfigs.contains(config) || result.documents[config].map({ !JSONSyntax.isValid($0) }) == true {
                    result.findings.append(Finding(entry: "blobs/sha256/\(image.manifest.config.digest.encoded)", problem: "the image config is not valid JSON"))
                }
            }
        }
    }

    /// Index → index → manifest is as deep as real images go; a little room beyond that.
    static let maximumDepth = 8

    func isDocument(_ blob: BundleMetadata.Blob) -> Bool {
        blob.mediaType.isManifest || blob.mediaType == .ociConfig || blob.mediaType == .dockerConfig || blob.mediaType == CopyPlan.lookasideSignatureType
            || blob.mediaType.rawValue.hasSuffix("+json") && !blob.mediaType.rawValue.contains("layer")
    }

    static func blobDigest(_ name: String) -> Digest? {
        guard name.hasPrefix("blobs/sha256/") else { return nil }
        return try? Digest(algorithm: .sha256, encoded: String(name.dropFirst("blobs/sha256/".count)))
    }

    /// The volume(s) holding a damaged entry's bytes: the one it lies in, or, for an entry that
    /// spans volumes, those whose sha256 differs from the signed list (re-hashed only now, on failure).
    private func damagedVolumes(_ range: Range<Int64>, list: VolumeList?, sizes: [Int64]) -> String? {
        guard files.isSplit, let list else { return nil }
        var start: Int64 = 0
        var spanned: [(path: String, volume: VolumeList.Volume)] = []
        for (i, (path, size)) in zip(files.paths, sizes).enumerated() {
            if range.lowerBound < start + size && range.upperBound > start { spanned.append((path, list.volumes[i])) }
            start += size
        }
        guard spanned.count > 1 else { return spanned.first.map { ($0.path as NSString).lastPathComponent } }
        let bad = spanned.filter { !Self.matches($0.path, $0.volume) }
        return (bad.isEmpty ? spanned : bad).map { ($0.path as NSString).lastPathComponent }.joined(separator: ", ")
    }

    /// The largest of the remaining blobs (over 16 MiB, not the last entry) and the data offset
    /// the canonical layout gives it: each entry's canonical header (512 bytes, 1536 with a pax
    /// size record), data padded to 512. Nil when a size is unknown or no blob is worth it.
    static func aheadCandidate(_ rest: ArraySlice<Checksums.Entry>, headerAt start: Int64,
                               sizes: BlobTable, fileSize: Int64) -> (name: String, offset: Int64, size: Int64)? {
        var header = start
        var best: (name: String, offset: Int64, size: Int64)?
        for (i, entry) in rest.enumerated() {
            // Sizes the files cannot hold (unsigned metadata may say anything) plan nothing.
            guard let digest = entry.blobDigest, let blob = sizes[digest], blob.size >= 0, blob.size <= fileSize,
                  let headerBytes = try? CanonicalTar.header(name: entry.name, size: blob.size).count else { return nil }
            let data = header + Int64(headerBytes)
            guard data <= fileSize - blob.size else { return nil }
            if i < rest.count - 1, blob.size > documentLimit, blob.size > (best?.size ?? 0) { best = (entry.name, data, blob.size) }
            header = data + blob.size + Int64(CanonicalTar.padding(blob.size))
        }
        return best
    }

    /// Names the first entry of an image archive has (Docker's, podman's, skopeo's, an OCI
    /// layout's); never a bundle's own (`airgap/…`), so a bundle with a damaged first header is
    /// still reported as an altered bundle.
    static func isImageArchiveEntry(_ name: String) -> Bool {
        guard !name.hasPrefix("airgap/"), !name.hasPrefix("PaxHeaders/") else { return false }
        let configName = name.hasSuffix(".json") && name.count == 69 && name.dropLast(5).allSatisfy(\.isHexDigit) // docker save's <config>.json
        return ["oci-layout", "index.json", "manifest.json", "repositories"].contains(name) || name.hasPrefix("blobs/") || configName
            || name.hasSuffix("/layer.tar") || name.hasSuffix("/VERSION") || name.hasSuffix("/json")
    }

    /// A volume file has the size and sha256 its signed list gives.
    static func matches(_ path: String, _ volume: VolumeList.Volume, progress: ((Int64) -> Void)? = nil) -> Bool {
        guard let source = try? FileSequenceSource(path: path), source.sizes == [volume.size] else { return false }
        var hasher = DigestHasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            guard let n = try? source.read(into: buffer) else { return false }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            progress?(Int64(n))
        }
        return hasher.finalize().encoded == volume.sha256
    }

    /// A sidecar file of at most 1 MiB, read only if it is a regular file.
    private func readSmallFile(_ path: String) -> Data? {
        guard let (fd, size) = try? FileSequenceSource.openRegularFile(path), size <= 1 << 20 else { return nil }
        defer { close(fd) }
        var data = Data(count: Int(size))
        let n = data.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, Int(size)) }
        return n == Int(size) ? data : nil
    }
}

/// Hashes each bundle file as it is read (for the audit report's file hashes).
final class HashingSource: ByteSource {
    private let inner: FileSequenceSource
    private let hashEachFile: Bool
    private var hashers: [DigestHasher]
    private var sizes: [Int64]
    private let onRead: ((Int64) -> Void)?

    init(_ inner: FileSequenceSource, hashEachFile: Bool, onRead: ((Int64) -> Void)? = nil) {
        self.inner = inner
        self.hashEachFile = hashEachFile
        self.onRead = onRead
        hashers = inner.paths.map { _ in DigestHasher() }
        sizes = inner.paths.map { _ in 0 }
    }

    var positionDescription: String { inner.positionDescription }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(into: buffer)
        if n > 0 {
            let volume = inner.currentVolume
            sizes[volume] += Int64(n)
            if hashEachFile { hashers[volume].update(UnsafeRawBufferPointer(rebasing: buffer[..<n])) }
            onRead?(Int64(n))
        }
        return n
    }

    var fileHashes: [(path: String, size: Int64, sha256: String)] {
        inner.paths.indices.map { (inner.paths[$0], sizes[$0], hashers[$0].finalize().encoded) }
    }
}

/// bundle.json's blobs by digest. The canonical list is sorted, so it is searched where it is (a
/// dictionary of a 10,000-image bundle's 30,000 blobs was 7 MB); a list out of order (bundle.json
/// says anything until checked) gets a dictionary, the first listing winning as before.
struct BlobTable {
    private let sorted: [BundleMetadata.Blob]
    private let byDigest: [Digest: BundleMetadata.Blob]?

    init(_ blobs: [BundleMetadata.Blob]) {
        if zip(blobs, blobs.dropFirst()).allSatisfy({ $0.digest < $1.digest }) {
            sorted = blobs; byDigest = nil
        } else {
            sorted = []; byDigest = Dictionary(blobs.map { ($0.digest, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// Distinct digests listed.
    var count: Int { byDigest?.count ?? sorted.count }

    subscript(digest: Digest) -> BundleMetadata.Blob? {
        if let byDigest { return byDigest[digest] }
        var low = 0, high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle].digest < digest { low = middle + 1 } else { high = middle }
        }
        return low < sorted.count && sorted[low].digest == digest ? sorted[low] : nil
    }
}
