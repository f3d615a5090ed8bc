import AirgapContent
import AirgapOCI
import AirgapTar
import Foundation

/// An image archive file (`docker save`, podman, skopeo, `image save`) as a source, read in place:
/// one pass hashes every entry and notes where its bytes lie, the images are read and checked as
/// `image load` reads them, and then each blob is read again from its byte range, hashed by the
/// sink's verifier on the way (the file may change after the pass). `copy` needs no temporary
/// copy of the archive. Only a plain tar in a regular file can be read this way; `open` says nil
/// for others (compressed, a pipe), which go through a temporary layout.
public struct ArchiveSource: ContentSource {
    public let images: [LoadedImage]
    let entries: ArchiveFileEntries
    let path: String

    /// nil: not a plain tar in a regular file (the caller reads it once as a stream instead).
    public static func open(_ path: String, warn: @escaping (String) -> Void = { _ in }) async throws -> ArchiveSource? {
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, Compression.detect(path: path) == nil else { return nil }
        let entries = ArchiveFileEntries(path: path)
        let source = try FileSequenceSource(path: path)
        let fileSize = source.sizes[0]
        let check = try FileSegments.whole(path, size: fileSize).open()
        let scan = try await ArchiveLoader.scan(source, sourceName: path, decompress: false) { reader, entry, name, expected in
                let offset = reader.dataPosition
                var verifier = BlobVerifier(expected: expected, size: entry.size, source: "\(path): entry '\(name)'")
                var head = Data()
                try reader.readData { chunk in
                    try verifier.update(chunk)
                    if head.count < 512 { head.append(contentsOf: chunk.prefix(512 - head.count)) }
                }
                let digest = try verifier.finish()
                // Where libarchive says the data starts must hold what it read.
                var again = Data(count: head.count)
                let n = head.isEmpty ? 0 : try again.withUnsafeMutableBytes { try check.read(at: offset, into: $0) }
                guard offset >= 0, offset + entry.size <= fileSize, n == head.count, again == head else {
                    throw TransferError.bad("the bytes of the entry '\(EscapedText.escape(name))' in \(path) are not where its tar header puts them (the file changed while it was read, or its headers are ones this reader cannot place); copy it to stable storage and try again, or load it with 'image load -i \(path)' and copy from the store")
                }
                entries.record(digest, offset: offset, size: entry.size, head: Array(head.prefix(6)))
                return ArchiveLoader.Staged(digest: digest, size: entry.size)
            }
        let images = try await ArchiveImages(warn: warn).images(scan, sourceName: path, entries: entries)
        return ArchiveSource(images: images, entries: entries, path: path)
    }

    public var description: String { "the archive \(path)" }

    /// The images to copy: the one `reference` names (in full, or as the archive spells it), or
    /// every named one.
    public func requests(_ reference: String?, platforms: [Platform], allPlatforms: Bool) throws -> [CopyRequest] {
        guard let reference else {
            let named = images.compactMap { image in
                image.reference.map { CopyRequest(reference: $0, platforms: platforms, allPlatforms: allPlatforms, pinned: image.descriptor) }
            }
            // One image and no name for it (skopeo's bare tag, `RepoTags: []`): the destination names it.
            if named.isEmpty, Set(images.map(\.descriptor.digest)).count == 1, let image = images.first {
                return [CopyRequest(reference: Naming.unnamed, platforms: platforms, allPlatforms: allPlatforms, pinned: image.descriptor, unnamed: true)]
            }
            return named
        }
        let wanted = try? Reference(parsing: reference)
        if let image = images.last(where: { wanted != nil && $0.reference == wanted }) {
            return [CopyRequest(reference: image.reference!, platforms: platforms, allPlatforms: allPlatforms, pinned: image.descriptor)]
        }
        // A bare tag other tools wrote (skopeo's oci-archive:FILE:TAG) names no reference: the
        // destination must give one.
        if let image = images.last(where: { $0.reference == nil && $0.archiveName == reference }) {
            return [CopyRequest(reference: Naming.unnamed, platforms: platforms, allPlatforms: allPlatforms, pinned: image.descriptor, unnamed: true)]
        }
        throw TransferError.noImage(named: reference, in: path, holds: images.compactMap { $0.reference?.familiarDescription ?? $0.archiveName })
    }

    public func resolve(_ reference: Reference) async throws -> (Descriptor, Data) {
        guard let image = images.first(where: { $0.reference == reference }) else {
            throw ContentError(.missing, "\(description) holds no image named \(reference.familiarDescription)")
        }
        return (image.descriptor, try entries.read(image.descriptor.digest))
    }

    public func document(_ descriptor: Descriptor, in repository: Reference) async throws -> Data? {
        guard entries.size(of: descriptor.digest) != nil else { return nil }
        return try entries.read(descriptor.digest)
    }

    public func copyBlob(_ descriptor: Descriptor, in repository: Reference, into writer: any BlobWriter,
                         progress: @escaping @Sendable (Int64) -> Void) async throws {
        guard let segments = fileSegments(descriptor) else {
            // A document the archive does not carry (a Docker archive's manifest): from memory.
            try writer.write(try entries.read(descriptor.digest))
            return
        }
        try segments.read(from: writer.offset) { chunk in
            try writer.write(chunk)
            progress(Int64(chunk.count))
        }
    }

    public func fileSegments(_ descriptor: Descriptor) -> FileSegments? {
        entries.segments(of: descriptor.digest)
    }
}

/// The entries of an archive file where they lie, by digest, and the manifests written for a
/// Docker archive's images (which it does not carry).
final class ArchiveFileEntries: ArchiveEntries, @unchecked Sendable { // filled by the one scan, read after it
    let path: String
    private let lock = NSLock()
    private var ranges: [Digest: (offset: Int64, size: Int64, head: [UInt8])] = [:]
    private var written: [Digest: Data] = [:]

    init(path: String) { self.path = path }

    /// `head`: the first bytes as the pass read and hashed them.
    func record(_ digest: Digest, offset: Int64, size: Int64, head: [UInt8]) {
        lock.withLock { if ranges[digest] == nil { ranges[digest] = (offset, size, head) } }
    }

    func head(_ digest: Digest) throws -> [UInt8] {
        if let head = lock.withLock({ ranges[digest]?.head }) { return head }
        return Array(try read(digest).prefix(6))
    }

    func segments(of digest: Digest) -> FileSegments? {
        lock.withLock { ranges[digest] }.map { FileSegments([.init(path: path, offset: $0.offset, length: $0.size)]) }
    }

    func size(of digest: Digest) -> Int64? {
        lock.withLock { ranges[digest]?.size ?? written[digest].map { Int64($0.count) } }
    }

    func read(_ digest: Digest) throws -> Data {
        if let data = lock.withLock({ written[digest] }) { return data }
        guard let segments = segments(of: digest) else { throw ContentError(.missing, "\(path) does not hold \(digest)") }
        guard segments.length <= ArchiveLoader.metadataLimit else {
            throw ContentError(.unsupported, "\(path): \(digest) is \(segments.length) bytes, more than a document may be")
        }
        var data = Data(capacity: Int(segments.length))
        var verifier = BlobVerifier(expected: digest, size: segments.length, source: "\(path): \(digest)")
        try segments.read { try verifier.update($0); data.append(contentsOf: $0) }
        try verifier.finish()
        return data
    }

    func stream(_ digest: Digest) throws -> any ByteSource {
        guard let segments = segments(of: digest) else { throw ContentError(.missing, "\(path) does not hold \(digest)") }
        return SegmentSource(try segments.open(), verifier: BlobVerifier(expected: digest, size: segments.length, source: "\(path): \(digest)"))
    }

    func add(_ document: Data, digest: Digest, what: String) async throws {
        lock.withLock { written[digest] = document }
    }
}

/// File segments read front to back as a byte stream, hashed as read: the end of the stream
/// throws unless the bytes were the ones the digest names (the file may change after its pass).
final class SegmentSource: ByteSource {
    private let reader: FileSegments.Reader
    private var verifier: BlobVerifier
    private var position: Int64 = 0
    private var checked = false
    init(_ reader: FileSegments.Reader, verifier: BlobVerifier) { self.reader = reader; self.verifier = verifier }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try reader.read(at: position, into: buffer)
        if n > 0 {
            try verifier.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        } else if !checked {
            checked = true
            try verifier.finish()
        }
        position += Int64(n)
        return n
    }
    var positionDescription: String { "byte \(position)" }
}
