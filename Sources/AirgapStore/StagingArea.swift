#if canImport(Glibc)
import Glibc
#endif
import AirgapOCI
import Foundation

/// Verified blobs of one operation held back from `blobs/` until the whole operation checked out:
/// a directory under `.airgap/ingest/`, locked while its operation runs, published in one step
/// or discarded. A refused load leaves `blobs/` as it was.
public final class StagingArea: @unchecked Sendable {
    public let store: LocalStore
    public let directory: String
    private let lockFD: Int32
    private var staged: [(Digest, Int64)] = []
    private var sizes: [Digest: Int64] = [:]
    private var closed = false

    init(store: LocalStore) throws {
        self.store = store
        directory = "\(store.ingestDirectory)/stage-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileIO.makeDirectories(directory)
        lockFD = try FileIO.open(directory, flags: O_RDONLY | O_DIRECTORY)
        // Held until publish or discard: a store opened meanwhile leaves a locked area alone.
        flock(lockFD, LOCK_EX)
    }

    func path(for digest: Digest) -> String { "\(directory)/\(digest.algorithm.rawValue)-\(digest.encoded)" }

    func add(_ digest: Digest, size: Int64) {
        // The same content staged twice is one file (the second rename replaced the first).
        if sizes.updateValue(size, forKey: digest) == nil { staged.append((digest, size)) }
    }

    /// Blobs staged so far.
    public var count: Int { staged.count }

    /// The staged file of `digest` and its size, if this operation staged it.
    public func staged(_ digest: Digest) -> (path: String, size: Int64)? { sizes[digest].map { (path(for: digest), $0) } }

    /// Drops every staged blob not in `used` (what an archive carried that no image needs).
    public func keepOnly(_ used: Set<Digest>) {
        for (digest, _) in staged where !used.contains(digest) { unlink(path(for: digest)); sizes[digest] = nil }
        staged.removeAll { !used.contains($0.0) }
    }

    /// Moves every staged blob into `blobs/` (one rename each, then the directory fsync).
    public func publish() throws {
        precondition(!closed, "publish after close")
        var directories = Set<String>()
        for (digest, size) in staged {
            let final = store.blobPath(digest)
            if store.hasBlob(digest, size: size) && store.confirmBlob(digest, size: size) {
                unlink(path(for: digest))
                continue
            }
            let parent = (final as NSString).deletingLastPathComponent
            try FileIO.makeDirectories(parent)
            try FileIO.rename(path(for: digest), final)
            store.markVerified(digest)
            directories.insert(parent)
        }
        for directory in directories { FileIO.fsyncDirectory(directory) }
        close()
    }

    /// Drops everything staged.
    public func discard() {
        guard !closed else { return }
        for (digest, _) in staged { unlink(path(for: digest)) }
        close()
    }

    private func close() {
        guard !closed else { return }
        closed = true
        rmdir(directory)
        flock(lockFD, LOCK_UN)
        Glibc.close(lockFD)
    }

    deinit { discard() }
}

extension LocalStore {
    /// A staging area for an all-or-nothing operation (see `StagingArea`).
    public func stagingArea() throws -> StagingArea { try StagingArea(store: self) }

    private func markPath(_ digest: Digest) -> String { "\(lockDirectory)/verified/\(digest.algorithm.rawValue)-\(digest.encoded)" }

    private func identity(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        // ctime too: a file rewritten in place can have its mtime put back, not its ctime.
        return "\(st.st_dev) \(st.st_ino) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
    }

    /// Records that the blob file, as it is now (device, inode, size, mtime, ctime), was hashed and matched.
    func markVerified(_ digest: Digest) {
        guard let identity = identity(blobPath(digest)) else { return }
        try? FileIO.makeDirectories("\(lockDirectory)/verified")
        try? FileIO.writeAtomically(Data(identity.utf8), to: markPath(digest), sync: false)
    }

    /// Whether a present blob really holds its digest: trusted without reading while the file is
    /// unchanged since it was last hashed, re-hashed otherwise. A corrupt one is left for the
    /// caller to replace from a good copy (a rename over it), so a refused operation changes nothing.
    public func confirmBlob(_ digest: Digest, size: Int64) -> Bool {
        let path = blobPath(digest)
        guard let now = identity(path) else { return false }
        if let mark = try? FileIO.readFile(markPath(digest), limit: 4096), String(decoding: mark, as: UTF8.self) == now { return true }
        guard let fd = try? FileIO.open(path, flags: O_RDONLY) else { return false }
        defer { Glibc.close(fd) }
        var hasher = DigestHasher(digest.algorithm)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while let n = try? FileIO.read(fd, into: buffer, path: path), n > 0 { hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n])) }
        if hasher.byteCount == size && hasher.finalize() == digest {
            markVerified(digest)
            return true
        }
        return false
    }
}
