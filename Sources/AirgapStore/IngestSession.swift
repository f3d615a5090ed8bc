#if canImport(Glibc)
import Glibc
#endif
import AirgapContent
import AirgapOCI
import CShims
import Foundation

/// The one path by which bytes become trusted store content.
///
/// Bytes stream into a temp file inside the store through a `BlobVerifier`; `commit()` checks size and
/// digest, fsyncs, and renames into `blobs/`. Nothing is visible under `blobs/` before that.
/// With `resume`, a partial file left by an earlier interrupted session for the same digest is
/// continued (its bytes re-hashed) so a download can restart with an HTTP Range request.
public final class IngestSession: BlobWriter, @unchecked Sendable {
    public let expected: Digest?
    public let expectedSize: Int64?
    public let source: String
    /// Bytes already in the temp file when the session started (non-zero only when resuming).
    public let resumedFrom: Int64
    public var bytesWritten: Int64 { verifier.byteCount }
    public var offset: Int64 { verifier.byteCount }
    /// After `commit()`: true when this session added the blob, false when the store already had it.
    public private(set) var addedNewBlob = false

    private let store: LocalStore
    private let tempPath: String
    private var fd: Int32
    private var verifier: BlobVerifier
    private var finished = false

    init(store: LocalStore, expected: Digest?, expectedSize: Int64?, resume: Bool, source: String) throws {
        self.store = store
        self.expected = expected
        self.expectedSize = expectedSize
        self.source = source
        verifier = BlobVerifier(expected: expected, size: expectedSize, source: source)

        var chosenPath: String?
        var chosenFD: Int32 = -1
        if let expected, resume {
            // A per-digest partial file, locked while in use, so a rerun can resume it. Without
            // resume, a private temp file: one left by a killed run is removed when the store is
            // next opened, instead of taking its room for a week.
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
        if existing > 0 {
            do { try Self.rehash(fd: fd, length: existing, into: &verifier, path: tempPath) } catch is ContentError {
                // A partial that does not hash to what it should (a torn write at power loss): start over.
                verifier.reset()
                existing = 0
                guard ftruncate(fd, 0) == 0 else { throw StoreError.posix(path: tempPath) }
            }
        }
        if existing == 0 {
            guard ftruncate(fd, 0) == 0 else { throw StoreError.posix(path: tempPath) }
        }
        resumedFrom = existing
        _ = lseek(fd, off_t(existing), SEEK_SET)
    }

    private static func rehash(fd: Int32, length: Int64, into verifier: inout BlobVerifier, path tempPath: String) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        _ = lseek(fd, 0, SEEK_SET)
        var remaining = length
        while remaining > 0 {
            let n = try FileIO.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(Int64(buffer.count), remaining))]), path: tempPath)
            if n == 0 { break }
            try verifier.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            remaining -= Int64(n)
        }
    }

    /// Appends bytes, hashed on one core while the other writes them (a load is otherwise
    /// read → hash → write on one thread). Fails at once when more arrive than announced.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "write after commit or abandon")
        let fd = self.fd, path = tempPath
        try verifier.update(bytes) { try FileIO.writeAll(fd, $0, path: path) }
        unflushed += Int64(bytes.count)
        if unflushed >= Self.writeBehind {
            // Start writeback now, so the fsync in commit() finds little left to flush and the disk
            // works while the next bytes are read and hashed.
            let end = verifier.byteCount
            _ = airgap_start_writeback(fd, end - unflushed, unflushed)
            unflushed = 0
        }
    }

    private var unflushed: Int64 = 0
    static let writeBehind: Int64 = 8 << 20

    /// Drops what was written so far and starts again from byte 0 (a server that ignored Range).
    public func reset() throws {
        guard ftruncate(fd, 0) == 0 else { throw StoreError.posix(path: tempPath) }
        _ = lseek(fd, 0, SEEK_SET)
        verifier.reset()
    }

    public func restart() throws { try reset() }

    /// The digest of what was written, once size and digest match what was expected (else the
    /// temp file is dropped and the mismatch thrown).
    private func checkedDigest() throws -> Digest {
        do { return try verifier.finish() } catch {
            abandon()
            throw error
        }
    }

    /// Verifies and makes the blob visible. Returns its digest (computed, equal to `expected` when given).
    @discardableResult
    public func commit() throws -> Digest {
        precondition(!finished, "commit twice")
        let actual = try checkedDigest()
        let final = store.blobPath(actual)
        if store.hasBlob(actual, size: verifier.byteCount) && store.confirmBlob(actual, size: verifier.byteCount) {
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
        area.add(actual, size: verifier.byteCount)
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
