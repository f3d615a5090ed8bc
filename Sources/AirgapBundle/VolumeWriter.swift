import AirgapOCI
import AirgapStore
import CShims
import Foundation

/// Writes a byte stream to one file, or to `FILE.001`, `FILE.002`, … of at most `splitSize` bytes,
/// hashing each volume and the whole. Files are written under temporary names and renamed only
/// when everything succeeded, so a failed export leaves no bundle that looks complete.
public final class VolumeWriter {
    public let path: String
    public let splitSize: Int64?
    private var fd: Int32 = -1
    private var currentIndex = 0
    private var currentSize: Int64 = 0
    private var unflushed: Int64 = 0
    private var currentHasher = DigestHasher()
    private var totalHasher = DigestHasher()
    private var finished: [VolumeList.Volume] = []
    private var tempPaths: [String] = []
    private let tempSuffix = ".partial-\(getpid())"

    public init(path: String, splitSize: Int64?) throws {
        self.path = path
        self.splitSize = splitSize
        try openNext()
    }

    private var currentName: String {
        guard splitSize != nil else { return path }
        return path + "." + String(format: "%03d", currentIndex)
    }

    private func openNext() throws {
        currentIndex += 1
        let temp = currentName + tempSuffix
        fd = try FileIO.open(temp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        tempPaths.append(temp)
        currentSize = 0
        unflushed = 0
        currentHasher = DigestHasher()
    }

    private func closeCurrent() throws {
        try FileIO.fsync(fd, path: currentName)
        close(fd)
        fd = -1
        finished.append(.init(name: (currentName as NSString).lastPathComponent, size: currentSize, sha256: currentHasher.finalize().encoded))
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        while !rest.isEmpty {
            if let splitSize, currentSize == splitSize {
                try closeCurrent()
                try openNext()
            }
            let room = splitSize.map { Int(min(Int64(rest.count), $0 - currentSize)) } ?? rest.count
            let chunk = UnsafeRawBufferPointer(rebasing: rest[..<room])
            try FileIO.writeAll(fd, chunk, path: currentName)
            currentHasher.update(chunk)
            // One volume: its hash is the bundle's hash, so hash once.
            if splitSize != nil { totalHasher.update(chunk) }
            currentSize += Int64(room)
            unflushed += Int64(room)
            if unflushed >= 8 << 20 {
                // Start writeback early so the fsync at the end of each volume has little left to do.
                _ = airgap_start_writeback(fd, currentSize - unflushed, unflushed)
                unflushed = 0
            }
            rest = UnsafeRawBufferPointer(rebasing: rest[room...])
        }
    }

    /// Closes the last volume and renames every volume into place. Returns the volume list.
    public func finish() throws -> VolumeList {
        try closeCurrent()
        let names = tempPaths.map { String($0.dropLast(tempSuffix.count)) }
        for (temp, final) in zip(tempPaths, names) { try FileIO.rename(temp, final) }
        FileIO.fsyncDirectory((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent)
        let total = splitSize == nil ? (finished[0].sha256, finished[0].size) : (totalHasher.finalize().encoded, totalHasher.byteCount)
        return VolumeList(bundleSHA256: total.0, bundleSize: total.1, splitSize: splitSize ?? total.1, volumes: finished)
    }

    /// Removes everything written (after a failure).
    public func discard() {
        if fd >= 0 { close(fd); fd = -1 }
        for temp in tempPaths { unlink(temp) }
    }
}

/// Parses a size given on the command line: bytes, or a number with K, M, G or T (powers of 1024;
/// `KB`/`KiB` spellings too).
public func parseByteSize(_ text: String) throws -> Int64 {
    var digits = text.lowercased().trimmingCharacters(in: .whitespaces)
    var multiplier: Int64 = 1
    units: for (suffix, value) in [("k", Int64(1) << 10), ("m", Int64(1) << 20), ("g", Int64(1) << 30), ("t", Int64(1) << 40)] {
        for form in [suffix + "ib", suffix + "b", suffix] where digits.hasSuffix(form) {
            digits = String(digits.dropLast(form.count))
            multiplier = value
            break units
        }
    }
    guard let number = Int64(digits), number >= 0 else {
        throw BundleError.format("'\(text)' is not a size: use bytes, or a number with K, M or G (powers of 1024)")
    }
    let (size, overflow) = number.multipliedReportingOverflow(by: multiplier)
    guard !overflow else { throw BundleError.format("'\(text)' is too large a size") }
    return size
}

/// Parses `--split-size`: a size as `parseByteSize` reads it, at least 1K, or `fat32` (4 GiB − 1).
public func parseSplitSize(_ text: String) throws -> Int64 {
    if text.lowercased().trimmingCharacters(in: .whitespaces) == "fat32" { return (4 << 30) - 1 }
    let size = try parseByteSize(text)
    guard size >= 1 << 10 else {
        throw BundleError.format("--split-size \(text) is too small: volumes must be at least 1K")
    }
    return size
}
