#if canImport(Glibc)
import Glibc
#endif
import AirgapOCI
import CShims
import Foundation

/// The one path by which bytes become trusted store content.
///
/// Bytes stream into a temp file inside the store while being hashed; `commit()` checks size and
/// digest, fsyncs, and renames into `blobs/`. Nothing is visible under `blobs/` before that.
/// With `resume`, a partial file left by an earlier interrupted session for the same digest is
/// continued (its bytes re-hashed) so a download can restart with an HTTP Range request.
public final class IngestSession: @unchecked Sendable {
    public let expected: Digest?
    public let expectedSize: Int64?
    public let source: String
    /// Bytes already in the temp file when the session started (non-zero only when resuming).
    public let resumedFrom: Int64
    public var bytesWritten: Int64 { hasher.byteCount }
    /// After `commit()`: true when this session added the blob, false when the store already had it.
    public private(set) var addedNewBlob = false

    private let store: LocalStore
    private let tempPath: String
    private var fd: Int32
    private var hasher: DigestHasher
    private var finished = false

    init(store: LocalStore, expected: Digest?, expectedSize: Int64?, resume: Bool, source: String) throws {
        self.store = store
        self.expected = expected
        self.expectedSize = expectedSize
        self.source = source
        hasher = DigestHasher(expected?.algorithm ?? .sha256)

        var chosenPath: String?
        var chosenFD: Int32 = -1
        if let expected {
            // A per-digest partial file, locked while in use, so a rerun can resume it.
            let path = "\(store.ingestDirectory)/\(expected.algorithm.rawValue)-\(expected.encoded).partial"
            let candidate = try FileIO.open(path, flags: O_RDWR | O_CREAT, mode: 0o644)
            if flock(candidate, LOCK_EX | LOCK_NB) == 0 {
                chosenPath = path
                chosenFD = candidate
            } else {
                Glibc.close(candidate) // another process is ingesting the same blob; use a private temp file
            }
        }
        if chosenPath == nil {
            let path = "\(store.ingestDirectory)/tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            chosenFD = try FileIO.open(path, flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o644)
            flock(chosenFD, LOCK_EX | LOCK_NB)
            chosenPath = path
        }
        tempPath = chosenPath!
        fd = chosenFD

        var existing: Int64 = 0
        if resume {
            var st = stat()
            fstat(fd, &st)
            existing = Int64(st.st_size)
            if let expectedSize, existing > expectedSize { existing = 0 }
        }
        resumedFrom = existing
        if existing > 0 {
            hasher = try Self.rehash(fd: fd, length: existing, algorithm: expected?.algorithm ?? .sha256, path: tempPath)
        } else {
            guard ftruncate(fd, 0) == 0 else { throw StoreError.io(path: tempPath, reason: FileIO.errnoText()) }
        }
        _ = lseek(fd, off_t(existing), SEEK_SET)
    }

    private static func rehash(fd: Int32, length: Int64, algorithm: Digest.Algorithm, path tempPath: String) throws -> DigestHasher {
        var hasher = DigestHasher(algorithm)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        _ = lseek(fd, 0, SEEK_SET)
        var remaining = length
        while remaining > 0 {
            let n = try FileIO.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(Int64(buffer.count), remaining))]), path: tempPath)
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            remaining -= Int64(n)
        }
        return hasher
    }

    /// Appends bytes. Fails early when more bytes arrive than the descriptor announced.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "write after commit or abandon")
        if let expectedSize, hasher.byteCount + Int64(bytes.count) > expectedSize {
            throw StoreError.sizeMismatch(digest: expected ?? Digest.sha256(of: Data()), expected: expectedSize,
                                          actual: hasher.byteCount + Int64(bytes.count), source: source)
        }
        if bytes.count >= Self.parallelChunk {
            // Hash on one core while the other copies the same bytes into the page cache: a load is
            // otherwise read → hash → write on one thread with the second core idle (bench/ profile).
            let fd = self.fd, path = tempPath
            nonisolated(unsafe) let chunk = bytes // valid until write returns, which outlives both parts
            nonisolated(unsafe) var writeError: (any Error)?
            nonisolated(unsafe) var hasher = self.hasher
            DispatchQueue.concurrentPerform(iterations: 2) { part in
                if part == 0 {
                    hasher.update(chunk)
                } else {
                    do { try FileIO.writeAll(fd, chunk, path: path) } catch { writeError = error }
                }
            }
            self.hasher = hasher
            if let writeError { throw writeError }
        } else {
            hasher.update(bytes)
            try FileIO.writeAll(fd, bytes, path: tempPath)
        }
        unflushed += Int64(bytes.count)
        if unflushed >= Self.writeBehind {
            // Start writeback now, so the fsync in commit() finds little left to flush and the disk
            // works while the next bytes are read and hashed.
            let end = hasher.byteCount
            _ = airgap_start_writeback(fd, end - unflushed, unflushed)
            unflushed = 0
        }
    }

    private var unflushed: Int64 = 0
    static let writeBehind: Int64 = 8 << 20
    /// Below this a chunk is hashed and written on one thread (handing work over costs more).
    static let parallelChunk = 256 << 10

    public func write(_ data: Data) throws {
        try data.withUnsafeBytes { try write($0) }
    }

    /// Drops what was written so far and starts again from byte 0 (a server that ignored Range).
    public func reset() throws {
        guard ftruncate(fd, 0) == 0 else { throw StoreError.io(path: tempPath, reason: FileIO.errnoText()) }
        _ = lseek(fd, 0, SEEK_SET)
        hasher = DigestHasher(expected?.algorithm ?? .sha256)
    }

    /// The digest of what was written, once size and digest match what was expected (else the
    /// temp file is dropped and the mismatch thrown).
    private func checkedDigest() throws -> Digest {
        let actual = hasher.finalize()
        if let expectedSize, hasher.byteCount != expectedSize {
            abandon()
            throw StoreError.sizeMismatch(digest: expected ?? actual, expected: expectedSize, actual: hasher.byteCount, source: source)
        }
        if let expected, actual != expected {
            abandon()
            throw StoreError.digestMismatch(expected: expected, actual: actual, source: source)
        }
        return actual
    }

    /// Verifies and makes the blob visible. Returns its digest (computed, equal to `expected` when given).
    @discardableResult
    public func commit() throws -> Digest {
        precondition(!finished, "commit twice")
        let actual = try checkedDigest()
        let final = store.blobPath(actual)
        if store.hasBlob(actual, size: hasher.byteCount) && store.confirmBlob(actual, size: hasher.byteCount) {
            abandon() // deduplicated: identical content is already there (a corrupt copy is replaced below)
            return actual
        }
        try FileIO.makeDirectories((final as NSString).deletingLastPathComponent)
        try moveDurably(to: final)
        FileIO.fsyncDirectory((final as NSString).deletingLastPathComponent)
        store.markVerified(actual)
        return actual
    }

    /// Verifies and fsyncs the blob like `commit()`, but leaves it in `area` instead of `blobs/`:
    /// nothing becomes visible until the caller publishes the whole set (`StagingArea.publish`).
    public func stage(in area: StagingArea) throws -> Digest {
        precondition(!finished, "stage twice")
        let actual = try checkedDigest()
        try moveDurably(to: area.path(for: actual))
        area.add(actual, size: hasher.byteCount)
        return actual
    }

    /// fsync, then rename the verified temp file to `path`; the session is done.
    private func moveDurably(to path: String) throws {
        do {
            try FileIO.fsync(fd, path: tempPath)
            try FileIO.rename(tempPath, path)
        } catch {
            abandon()
            throw error
        }
        Glibc.close(fd)
        finished = true
        addedNewBlob = true
    }

    /// Drops the temp file. With `keepForResume`, a partial download stays for the next attempt.
    public func abandon(keepForResume: Bool = false) {
        guard !finished else { return }
        finished = true
        if !(keepForResume && tempPath.hasSuffix(".partial")) { unlink(tempPath) }
        Glibc.close(fd)
    }

    deinit { if !finished { abandon() } }
}
