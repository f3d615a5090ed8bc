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
    public var name: String
    public var size: Int64
    public var sha256: String
    public var ok: Bool
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

    /// `FILE`, `FILE.001` (the rest are found), or every volume listed.
    public static func resolve(_ given: [String]) throws -> BundleFiles {
        guard let first = given.first else { throw BundleError.format("no bundle given") }
        if given.count > 1 {
            let base = first.hasSuffix(".001") ? String(first.dropLast(4)) : first
            return BundleFiles(paths: given, base: base, isSplit: true)
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
    /// sha256 and size of each bundle file as read (when hashing files was asked for).
    public var fileHashes: [(path: String, size: Int64, sha256: String)] = []
    /// Byte offset of each blob's data in the concatenated bundle stream (for pushing by range).
    public var blobOffsets: [Digest: Int64] = [:]
    public var ok: Bool { findings.isEmpty }
}

/// Reads a bundle in one streaming pass: signature of SHA256SUMS first, then every entry against
/// it, then the structure. `blobHandler`, when given, receives each blob entry's bytes (load
/// ingests them into the store); it must return the digest it computed.
public final class BundleReader {
    public typealias BlobHandler = (_ digest: Digest, _ size: Int64, _ reader: TarReader, _ name: String) throws -> Digest

    let files: BundleFiles
    let publicKey: Curve25519.Signing.PublicKey?
    let allowUnsigned: Bool
    let hashFiles: Bool

    public init(files: BundleFiles, publicKey: Curve25519.Signing.PublicKey?, allowUnsigned: Bool, hashFiles: Bool = false) {
        self.files = files
        self.publicKey = publicKey
        self.allowUnsigned = allowUnsigned
        self.hashFiles = hashFiles
    }

    static let metadataLimit = 64 << 20
    static let documentLimit = 16 << 20

    public func read(blobHandler: BlobHandler? = nil) throws -> BundleReadResult {
        var result = BundleReadResult(files: files)
        if let compression = Compression.detect(path: files.paths[0]) {
            // Bundles are written as plain tar so that blob byte ranges are file offsets; a compressed
            // one was repacked by someone, and decompressing it here would hand a bomb the disk.
            result.findings.append(Finding(entry: files.paths[0], problem: "the bundle is \(compression.rawValue)-compressed, but airgap bundles are plain tar; decompress it (\(compression.decompressCommand)) and check the result"))
            return result
        }
        let volumeList = try checkVolumeList(&result)
        let source = try HashingSource(paths: files.paths, hashEachFile: hashFiles || volumeList != nil)
        let reader: TarReader
        do { reader = try TarReader(source: source, decompress: false) } catch {
            result.findings.append(Finding(entry: files.paths[0], problem: "not a readable tar archive: \(error)"))
            return result
        }
        var names = Set<String>()
        var position = 0
        var trusted = false
        var expected: [String: Digest] = [:]
        var lastEntryEnd: (digest: Digest, size: Int64)?

        func volumeName() -> String? { files.isSplit ? (source.currentPath as NSString).lastPathComponent : nil }

        entryLoop: while true {
            let entry: TarEntry?
            do { entry = try reader.next() } catch {
                result.findings.append(Finding(entry: "archive", volume: volumeName(), problem: "the bundle is truncated or damaged: \(error)"))
                break
            }
            guard let entry else { break }
            // The data of the blob before this header ends at this header's position minus padding.
            if let last = lastEntryEnd {
                result.blobOffsets[last.digest] = reader.headerPosition - Self.padded(last.size)
                lastEntryEnd = nil
            }
            position += 1
            let rawName = entry.name
            guard let name = EntryNames.normalize(rawName) else {
                result.findings.append(Finding(entry: rawName, volume: volumeName(), problem: "the name leaves the bundle (absolute or '..'); refusing it"))
                continue
            }
            guard names.insert(name).inserted else {
                result.findings.append(Finding(entry: name, volume: volumeName(), problem: "the entry appears twice"))
                continue
            }
            guard entry.kind == .file else {
                if entry.kind == .directory { continue }
                result.findings.append(Finding(entry: name, volume: volumeName(), problem: "a \(kindName(entry.kind)) entry; bundles hold only regular files"))
                continue
            }

            // The metadata block: bundle.json, SHA256SUMS, signature, in that order, first.
            if position <= 3 && name.hasPrefix("airgap/") {
                let data: Data
                do { data = try reader.readAll(limit: Self.metadataLimit) } catch {
                    result.findings.append(Finding(entry: name, volume: volumeName(), problem: "cannot be read: \(error)"))
                    break entryLoop
                }
                switch name {
                case BundleMetadata.entryName:
                    result.entries.append(ReadEntry(name: name, size: Int64(data.count), sha256: Digest.sha256(of: data).encoded, ok: true))
                    do { result.metadata = try JSONDecoder().decode(BundleMetadata.self, from: data) } catch {
                        result.findings.append(Finding(entry: name, problem: "not valid bundle metadata (\(CanonicalJSON.describeAny(error)))"))
                    }
                case BundleMetadata.checksumsName:
                    do { result.checksums = try Checksums.parse(data) } catch {
                        result.findings.append(Finding(entry: name, problem: "\(error)"))
                        break entryLoop
                    }
                    result.entries.append(ReadEntry(name: name, size: Int64(data.count), sha256: Digest.sha256(of: data).encoded, ok: true))
                    expected = Dictionary(result.checksums!.entries.map { ($0.name, $0.digest) }, uniquingKeysWith: { a, _ in a })
                    sumsData = data
                case BundleMetadata.signatureName:
                    result.entries.append(ReadEntry(name: name, size: Int64(data.count), sha256: Digest.sha256(of: data).encoded, ok: true))
                    signatureData = data
                default:
                    result.findings.append(Finding(entry: name, problem: "an unknown entry in the airgap/ metadata block"))
                }
                continue
            }
            if !trusted {
                // Everything after the metadata block is trusted only once the signature holds.
                trusted = true
                guard checkSignature(&result) else { break entryLoop }
                blobIndex = Dictionary((result.metadata?.blobs ?? []).map { ($0.digest, $0) }, uniquingKeysWith: { a, _ in a })
                if let sums = result.checksums, let recorded = sums.digest(of: BundleMetadata.entryName),
                   let bundleJSON = result.entries.first(where: { $0.name == BundleMetadata.entryName }), recorded.encoded != bundleJSON.sha256 {
                    result.findings.append(Finding(entry: BundleMetadata.entryName, problem: "does not match SHA256SUMS (expected \(recorded.encoded), got \(bundleJSON.sha256))"))
                }
            }
            guard let want = expected[name] else {
                result.findings.append(Finding(entry: name, volume: volumeName(), problem: "an extra entry not listed in SHA256SUMS"))
                continue
            }
            let blobDigest = Self.blobDigest(name)
            if let blobDigest, blobDigest != want {
                result.findings.append(Finding(entry: name, problem: "SHA256SUMS gives it \(want), which is not the digest its name claims"))
            }
            if let blobDigest, let size = blobIndex[blobDigest]?.size, size != entry.size {
                result.findings.append(Finding(entry: name, volume: volumeName(), problem: "holds \(entry.size) bytes but bundle.json says \(size)"))
                continue
            }
            do {
                var actual: Digest
                let keep = blobDigest == nil || entry.size <= Int64(Self.documentLimit) && isDocument(blobDigest!)
                if let blobDigest, let blobHandler, !keep {
                    actual = try blobHandler(blobDigest, entry.size, reader, name)
                } else if keep {
                    let data = try reader.readAll(limit: Self.documentLimit)
                    actual = Digest.sha256(of: data)
                    if actual == want {
                        if let blobDigest {
                            result.documents[blobDigest] = data
                            if let blobHandler {
                                _ = try blobHandler(blobDigest, entry.size, TarReader.memory(data), name)
                            }
                        } else if name == "index.json" {
                            result.index = try? ImageIndex.decode(data, what: "index.json")
                            if result.index == nil { result.findings.append(Finding(entry: name, problem: "not a valid OCI index")) }
                        } else if name == "manifest.json" {
                            if (try? JSONSerialization.jsonObject(with: data)) == nil { result.findings.append(Finding(entry: name, problem: "not valid JSON")) }
                        }
                    }
                } else {
                    var hasher = DigestHasher()
                    try reader.readData { hasher.update($0) }
                    actual = hasher.finalize()
                }
                result.entries.append(ReadEntry(name: name, size: entry.size, sha256: actual.encoded, ok: actual == want))
                if actual != want {
                    result.findings.append(Finding(entry: name, volume: volumeName(), problem: "content does not match SHA256SUMS (expected \(want.encoded), got \(actual.encoded))"))
                } else if let blobDigest {
                    lastEntryEnd = (blobDigest, entry.size)
                }
            } catch let error as StoreError where error.isVerificationFailure {
                result.entries.append(ReadEntry(name: name, size: entry.size, sha256: "", ok: false))
                result.findings.append(Finding(entry: name, volume: volumeName(), problem: "content does not match SHA256SUMS (\(error))"))
            } catch let error as StoreError {
                throw error // the store, not the bundle, failed (disk full, permissions)
            } catch {
                result.findings.append(Finding(entry: name, volume: volumeName(), problem: "cannot be read: \(error)"))
                break entryLoop
            }
        }
        if !trusted { _ = checkSignature(&result) }
        if result.signature == .invalid || (result.signature == .unsigned && !allowUnsigned) { return result }
        if let last = lastEntryEnd {
            // The last blob's data ends where the end-of-archive blocks begin.
            result.blobOffsets[last.digest] = reader.headerPosition - Self.padded(last.size)
        }
        // Read the end padding too, so file hashes cover whole files.
        _ = try? source.drain()
        if let sums = result.checksums {
            let seen = Set(result.entries.map(\.name))
            for (name, _) in sums.entries where !seen.contains(name) {
                result.findings.append(Finding(entry: name, problem: "listed in SHA256SUMS but missing from the bundle"))
            }
        } else if result.findings.isEmpty {
            result.findings.append(Finding(entry: BundleMetadata.checksumsName, problem: "missing: this is not an airgap bundle, or its metadata block is damaged"))
        }
        if result.metadata == nil && !result.findings.contains(where: { $0.entry == BundleMetadata.entryName }) {
            result.findings.append(Finding(entry: BundleMetadata.entryName, problem: "missing: this is not an airgap bundle"))
        }
        if hashFiles || volumeList != nil {
            result.fileHashes = source.fileHashes
            if let volumeList { compareVolumes(volumeList, &result) }
        }
        checkStructure(&result)
        return result
    }

    private var sumsData: Data?
    private var signatureData: Data?

    /// Signature first: nothing else is trusted without it.
    private func checkSignature(_ result: inout BundleReadResult) -> Bool {
        guard let sums = sumsData else {
            result.findings.append(Finding(entry: BundleMetadata.checksumsName, problem: "missing from the metadata block at the start of the bundle"))
            result.signature = .invalid
            return false
        }
        guard let signature = signatureData else {
            result.signature = .unsigned
            if !allowUnsigned {
                result.findings.append(Finding(entry: BundleMetadata.signatureName, problem: "the bundle is unsigned; refusing it (use --allow-unsigned to accept an unsigned bundle)"))
                return false
            }
            return true
        }
        guard let publicKey else {
            result.signature = .notChecked
            if !allowUnsigned {
                result.findings.append(Finding(entry: BundleMetadata.signatureName, problem: "no public key was given to check the signature; give --key NAME.pub"))
                return false
            }
            return true
        }
        if BundleKeys.verify(signature, of: sums, with: publicKey) {
            result.signature = .valid(fingerprint: BundleKeys.fingerprint(publicKey))
            return true
        }
        result.signature = .invalid
        result.findings.append(Finding(entry: BundleMetadata.signatureName, problem: "the signature does not match SHA256SUMS with the given key: the bundle was signed by another key or altered; nothing in it is trusted"))
        return false
    }

    private func checkVolumeList(_ result: inout BundleReadResult) throws -> VolumeList? {
        guard files.isSplit else { return nil }
        let path = files.volumeListPath
        guard let data = FileManager.default.contents(atPath: path) else {
            result.findings.append(Finding(entry: (path as NSString).lastPathComponent, problem: "the volume list of the split bundle is missing; copy it along with the volumes"))
            return nil
        }
        if let publicKey {
            guard let signature = FileManager.default.contents(atPath: path + ".sig"), BundleKeys.verify(signature, of: data, with: publicKey) else {
                result.findings.append(Finding(entry: (path as NSString).lastPathComponent, problem: "its signature is missing or does not match the given key"))
                return nil
            }
        }
        guard let list = try? JSONDecoder().decode(VolumeList.self, from: data) else {
            result.findings.append(Finding(entry: (path as NSString).lastPathComponent, problem: "not a valid volume list"))
            return nil
        }
        let present = Set(files.paths.map { ($0 as NSString).lastPathComponent })
        for volume in list.volumes where !present.contains(volume.name) {
            result.findings.append(Finding(entry: volume.name, volume: volume.name, problem: "this volume is missing; all \(list.volumes.count) volumes are needed"))
        }
        return list
    }

    private func compareVolumes(_ list: VolumeList, _ result: inout BundleReadResult) {
        for (path, size, sha) in result.fileHashes {
            let name = (path as NSString).lastPathComponent
            guard let want = list.volumes.first(where: { $0.name == name }) else {
                result.findings.append(Finding(entry: name, volume: name, problem: "not part of this bundle's volume list"))
                continue
            }
            if want.size != size || want.sha256 != sha {
                result.findings.append(Finding(entry: name, volume: name, problem: "this volume is damaged: \(size) bytes with sha256 \(sha), expected \(want.size) bytes with sha256 \(want.sha256)"))
            }
        }
    }

    /// Every blob the index and manifests name is in the bundle or required on the inside.
    private func checkStructure(_ result: inout BundleReadResult) {
        guard result.signature != .invalid, let metadata = result.metadata else { return }
        guard let index = result.index else {
            if !result.findings.contains(where: { $0.entry == "index.json" }) {
                result.findings.append(Finding(entry: "index.json", problem: "missing or unreadable"))
            }
            return
        }
        var available: [Digest: Int64] = [:]
        for blob in metadata.blobs { available[blob.digest] = blob.size }
        for blob in metadata.requiredOnInside { available[blob.digest] = blob.size }
        func need(_ d: Descriptor, by: String) {
            guard let size = available[d.digest] else {
                result.findings.append(Finding(entry: by, problem: "names \(d.digest), which is neither in the bundle nor listed as required on the inside"))
                return
            }
            if size != d.size { result.findings.append(Finding(entry: by, problem: "gives \(d.digest) \(d.size) bytes but the bundle lists \(size)")) }
        }
        for image in metadata.images where !index.manifests.contains(where: { $0.digest == image.digest }) {
            result.findings.append(Finding(entry: "index.json", problem: "does not list \(image.reference) (\(image.digest)) that bundle.json promises"))
        }
        for top in index.manifests {
            need(top, by: "index.json")
            var pending = [top]
            var depth = 0
            while let d = pending.popLast(), depth < 64 {
                depth += 1
                let name = "blobs/sha256/\(d.digest.encoded)"
                guard let data = result.documents[d.digest] else {
                    // Manifests are held in memory to be read; one past the limit is refused, not skipped.
                    if d.size > Int64(Self.documentLimit) {
                        result.findings.append(Finding(entry: name, problem: "a \(d.mediaType.isIndex ? "image index" : "manifest") of \(d.size) bytes, over the \(Self.documentLimit >> 20) MiB limit for manifests; refusing it"))
                    }
                    continue
                }
                if d.mediaType.isIndex {
                    guard let child = try? ImageIndex.decode(data) else { result.findings.append(Finding(entry: name, problem: "not a valid image index")); continue }
                    for m in child.manifests { need(m, by: name); pending.append(m) }
                } else if d.mediaType.isImageManifest {
                    guard let manifest = try? ImageManifest.decode(data) else { result.findings.append(Finding(entry: name, problem: "not a valid image manifest")); continue }
                    for blob in manifest.blobs { need(blob, by: name) }
                    if let config = result.documents[manifest.config.digest], (try? JSONSerialization.jsonObject(with: config)) == nil {
                        result.findings.append(Finding(entry: "blobs/sha256/\(manifest.config.digest.encoded)", problem: "the image config is not valid JSON"))
                    }
                }
            }
        }
    }

    /// bundle.json's blobs by digest, built once the metadata block is read (lookups per entry stay O(1)).
    private var blobIndex: [Digest: BundleMetadata.Blob] = [:]

    func isDocument(_ digest: Digest) -> Bool {
        guard let blob = blobIndex[digest] else { return false }
        return blob.mediaType.isManifest || blob.mediaType == .ociConfig || blob.mediaType == .dockerConfig
            || blob.mediaType.rawValue.hasSuffix("+json") && !blob.mediaType.rawValue.contains("layer")
    }

    static func blobDigest(_ name: String) -> Digest? {
        guard name.hasPrefix("blobs/sha256/") else { return nil }
        return try? Digest(algorithm: .sha256, encoded: String(name.dropFirst("blobs/sha256/".count)))
    }

    static func padded(_ size: Int64) -> Int64 { (size + 511) / 512 * 512 }

    func kindName(_ kind: TarEntry.Kind) -> String {
        switch kind {
        case .symlink: "symbolic link"
        case .hardlink: "hard link"
        case .directory: "directory"
        case .file: "file"
        case .other(let what): what
        }
    }
}

/// Reads the bundle files in order, hashing each file (and knowing which one is being read).
final class HashingSource: ByteSource {
    private let inner: FileSequenceSource
    private let hashEachFile: Bool
    private var hashers: [DigestHasher]
    private var sizes: [Int64]

    init(paths: [String], hashEachFile: Bool) throws {
        inner = try FileSequenceSource(paths: paths)
        self.hashEachFile = hashEachFile
        hashers = paths.map { _ in DigestHasher() }
        sizes = paths.map { _ in 0 }
    }

    var currentPath: String { inner.paths[inner.currentVolume] }
    var positionDescription: String { inner.positionDescription }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(into: buffer)
        if n > 0 {
            let volume = inner.currentVolume
            sizes[volume] += Int64(n)
            if hashEachFile { hashers[volume].update(UnsafeRawBufferPointer(rebasing: buffer[..<n])) }
        }
        return n
    }

    /// Reads what the tar reader left (end padding), so file hashes cover whole files.
    @discardableResult
    func drain() throws -> Int64 {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 4096)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let n = try read(into: buffer)
            if n == 0 { return total }
            total += Int64(n)
        }
    }

    var fileHashes: [(path: String, size: Int64, sha256: String)] {
        inner.paths.indices.map { (inner.paths[$0], sizes[$0], hashers[$0].finalize().encoded) }
    }
}
