import Foundation

/// The one tar encoding a bundle may have: for a list of regular files (name, size) there is
/// exactly one byte sequence, so a checker can recompute every header byte instead of parsing it.
/// docs/bundle-format.md ("Canonical encoding") is the specification; this is its only implementation.
///
/// - Each entry is a ustar header, the data, and zero bytes up to the next multiple of 512.
/// - Header fields: name NUL-padded; mode `0000644\0`; uid and gid `0000000\0`; size as 11 octal
///   digits and NUL; mtime `00000000000\0`; checksum as 6 octal digits, NUL, space; typeflag `0`;
///   magic `ustar\0`, version `00`; every other byte zero.
/// - A size over 8 GiB − 1 (the most 11 octal digits hold) is carried by a pax extended header
///   (typeflag `x`, name `PaxHeaders/` + name, one record `size=N`) in front of the ustar header,
///   whose size field is then `00000000000\0`.
/// - The archive ends with two zero blocks and nothing after them.
public enum CanonicalTar {
    public static let blockSize = 512
    public static let endOfArchiveSize = 1024
    /// The largest size 11 octal digits hold.
    public static let largestUstarSize: Int64 = 0o77777777777
    /// Names are short, printable and unambiguous for every reader: no NUL, no control bytes, no
    /// backslash, no leading '/', no '.' or '..' component, no trailing '/'.
    public static let longestName = 89

    public static func padding(_ size: Int64) -> Int { Int((Int64(blockSize) - size % Int64(blockSize)) % Int64(blockSize)) }

    /// Whether `name` may appear in a canonical archive.
    public static func isAllowedName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= longestName, bytes.first != UInt8(ascii: "/"), bytes.last != UInt8(ascii: "/") else { return false }
        for byte in bytes {
            let ok = (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "/")
            if !ok { return false }
        }
        return !name.split(separator: "/", omittingEmptySubsequences: false).contains { $0.isEmpty || $0 == "." || $0 == ".." }
    }

    /// Every byte in front of an entry's data: 512 bytes, or 1536 with a pax size record.
    public static func header(name: String, size: Int64) throws -> [UInt8] {
        guard isAllowedName(name) else { throw TarError("'\(name)' cannot be a bundle entry name (letters, digits, '.', '_', '-', '/'; at most \(longestName) bytes)") }
        guard size >= 0 else { throw TarError("an entry cannot have a negative size") }
        if size <= largestUstarSize { return ustarBlock(name: name, size: size, type: UInt8(ascii: "0")) }
        let record = paxRecord("size", String(size))
        var bytes = ustarBlock(name: "PaxHeaders/" + name, size: Int64(record.count), type: UInt8(ascii: "x"))
        bytes += record + [UInt8](repeating: 0, count: padding(Int64(record.count)))
        bytes += ustarBlock(name: name, size: 0, type: UInt8(ascii: "0"))
        return bytes
    }

    /// "LEN key=value\n", where LEN counts the whole record including its own digits.
    static func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let rest = " \(key)=\(value)\n"
        var length = rest.utf8.count + 1
        while String(length).utf8.count + rest.utf8.count != length { length += 1 }
        return Array("\(length)\(rest)".utf8)
    }

    static func ustarBlock(name: String, size: Int64, type: UInt8) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: blockSize)
        func put(_ text: String, at offset: Int) {
            for (i, byte) in text.utf8.enumerated() { block[offset + i] = byte }
        }
        func octal(_ value: Int64, digits: Int) -> String {
            let text = String(value, radix: 8)
            return String(repeating: "0", count: digits - text.count) + text
        }
        put(name, at: 0)
        put("0000644", at: 100)
        put("0000000", at: 108)
        put("0000000", at: 116)
        put(octal(size, digits: 11), at: 124)
        put("00000000000", at: 136)
        block[156] = type
        put("ustar", at: 257)
        put("00", at: 263)
        // The checksum counts its own field as eight spaces.
        let sum = block.reduce(0) { $0 + Int($1) } + 8 * Int(UInt8(ascii: " "))
        put(octal(Int64(sum), digits: 6), at: 148)
        block[155] = UInt8(ascii: " ")
        return block
    }

    /// What a header byte at `offset` (from the start of its 512-byte block) belongs to, for findings.
    public static func fieldName(at offset: Int) -> String {
        switch offset {
        case 0..<100: "name"
        case 100..<108: "mode"
        case 108..<116: "uid"
        case 116..<124: "gid"
        case 124..<136: "size"
        case 136..<148: "mtime"
        case 148..<156: "checksum"
        case 156: "typeflag"
        case 157..<257: "linkname"
        case 257..<263: "magic"
        case 263..<265: "version"
        case 265..<297: "uname"
        case 297..<329: "gname"
        case 329..<345: "device numbers"
        case 345..<500: "prefix"
        default: "padding"
        }
    }
}

/// Writes a canonical archive (see `CanonicalTar`) to a sink, handing it 1 MiB at a time.
public final class CanonicalTarWriter {
    private let sink: TarWriter.Sink
    private var buffer: [UInt8] = []
    private let flushSize = 1 << 20
    private var remaining: Int64 = 0
    private var pendingPadding = 0
    private var closed = false
    public private(set) var bytesWritten: Int64 = 0

    public init(sink: @escaping TarWriter.Sink) {
        self.sink = sink
        buffer.reserveCapacity(flushSize)
    }

    /// Starts a regular file entry; write exactly `size` bytes afterwards.
    public func beginFile(_ name: String, size: Int64) throws {
        try finishEntry()
        try append(try CanonicalTar.header(name: name, size: size))
        remaining = size
        pendingPadding = CanonicalTar.padding(size)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard Int64(bytes.count) <= remaining else { throw TarError("more data than the entry's size was written") }
        remaining -= Int64(bytes.count)
        if buffer.count + bytes.count <= flushSize {
            buffer.append(contentsOf: bytes)
            if buffer.count == flushSize { try flush() }
            return
        }
        // Large writes go straight to the sink once what is buffered has gone.
        try flush()
        if bytes.count >= flushSize { try emit(bytes) } else { buffer.append(contentsOf: bytes) }
    }

    public func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }

    public func addFile(_ name: String, data: Data) throws {
        try beginFile(name, size: Int64(data.count))
        try write(data)
    }

    /// Pads the last entry, writes the end-of-archive blocks and flushes.
    public func close() throws {
        guard !closed else { return }
        try finishEntry()
        try append([UInt8](repeating: 0, count: CanonicalTar.endOfArchiveSize))
        try flush()
        closed = true
    }

    private func finishEntry() throws {
        guard remaining == 0 else { throw TarError("an entry ended \(remaining) bytes short of its size") }
        if pendingPadding > 0 { try append([UInt8](repeating: 0, count: pendingPadding)); pendingPadding = 0 }
    }

    /// Headers and padding: flushed first rather than letting the buffer outgrow its 1 MiB.
    private func append(_ bytes: [UInt8]) throws {
        if buffer.count + bytes.count > flushSize { try flush() }
        buffer += bytes
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try emit($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        try sink(bytes)
        bytesWritten += Int64(bytes.count)
    }
}

/// Where a canonical read stopped: the offset of the first byte that is not what the encoding
/// requires, and what was expected there.
public struct CanonicalTarError: Error, Sendable, CustomStringConvertible {
    public let offset: Int64
    public let entry: String
    public let problem: String
    /// The name a header held where another was expected (raw: quote it before showing it).
    public var found: String?
    public init(offset: Int64, entry: String, problem: String, found: String? = nil) {
        self.offset = offset; self.entry = entry; self.problem = problem; self.found = found
    }
    public var description: String { "at byte \(offset): \(problem)" }
}

/// Reads a canonical archive, comparing every byte outside entry data with the one encoding
/// `CanonicalTar` allows; never reads more than the caller's sizes allow, plus one byte to see the end.
public final class CanonicalTarReader {
    private let source: any ByteSource
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private var atEnd = false
    /// Offset in the stream of the next byte to be consumed.
    public private(set) var position: Int64 = 0

    public init(source: any ByteSource, bufferSize: Int = 1 << 20) {
        self.source = source
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4096)
    }

    deinit { buffer.deallocate() }

    private var available: Int { end - start }

    /// Makes at least one byte available; false at the end of the stream.
    private func fill() throws -> Bool {
        if available > 0 { return true }
        guard !atEnd else { return false }
        start = 0
        end = try source.read(into: buffer)
        if end == 0 { atEnd = true; return false }
        return true
    }

    /// Exactly `count` bytes (small: headers, padding), or an error naming what was cut short.
    private func take(_ count: Int, entry: String, what: String) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            guard try fill() else {
                throw CanonicalTarError(offset: position, entry: entry, problem: "the bundle ends inside \(what) of \(entry); it is truncated")
            }
            let n = min(available, count - out.count)
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start..<start + n]))
            start += n
            position += Int64(n)
        }
        return out
    }

    /// The header of the next entry, which must be one of `names`, with a size no larger than
    /// `limit` (and exactly `size` when given). Returns the name and size.
    public func readHeader(oneOf names: [String], limit: Int64, size exactSize: Int64? = nil) throws -> (name: String, size: Int64) {
        precondition(!names.isEmpty)
        return try readHeader(names: names, limit: limit, exactSize: exactSize)!
    }

    /// The next header whatever its (allowed) name, or nil at the end of the archive (which is
    /// then checked like `readEnd`): for readers that know no entry list, such as the fuzz target
    /// comparing this reader with libarchive.
    public func readAnyHeader(limit: Int64) throws -> (name: String, size: Int64)? {
        try readHeader(names: [], limit: limit, exactSize: nil)
    }

    private func readHeader(names: [String], limit: Int64, exactSize: Int64?) throws -> (name: String, size: Int64)? {
        let headerStart = position
        let first = try take(CanonicalTar.blockSize, entry: names.first ?? "an entry", what: "the header")
        if first.allSatisfy({ $0 == 0 }) {
            if names.isEmpty {
                let second = try take(CanonicalTar.blockSize, entry: "end of archive", what: "the end-of-archive blocks")
                guard second.allSatisfy({ $0 == 0 }) else {
                    throw CanonicalTarError(offset: headerStart + 512, entry: "end of archive", problem: "only one zero block where the archive ends")
                }
                if try fill() { throw CanonicalTarError(offset: position, entry: "end of archive", problem: "data after the end of the archive") }
                return nil
            }
            throw CanonicalTarError(offset: headerStart, entry: names[0], problem: "the archive ends (a zero block) where \(names.count == 1 ? names[0] : "an entry") should begin")
        }
        let fieldName = Self.nulTerminated(first[0..<100])
        let isPax = first[156] == UInt8(ascii: "x")
        let name = isPax && fieldName.hasPrefix("PaxHeaders/") ? String(fieldName.dropFirst("PaxHeaders/".count)) : fieldName
        guard names.isEmpty ? CanonicalTar.isAllowedName(name) : names.contains(name) else {
            let shown = EscapedText.quote(fieldName)
            let wanted = names.isEmpty ? "an entry with an allowed name" : names.count == 1 ? names[0] : names.joined(separator: " or ")
            throw CanonicalTarError(offset: headerStart, entry: wanted, problem: "found an entry named \(shown) where the canonical encoding has \(wanted)", found: fieldName)
        }
        var read = first
        var size: Int64?
        if isPax {
            // A pax header is only canonical as one `size` record, for a size no ustar field can hold.
            if let recordLength = Self.octal(first[124..<136]), recordLength < 64 {
                read += try take(CanonicalTar.blockSize * 2, entry: name, what: "the pax header")
                let record = String(decoding: read[512..<512 + Int(recordLength)], as: UTF8.self)
                let fields = record.dropLast().split(separator: " ", maxSplits: 1)
                if record.hasSuffix("\n"), fields.count == 2, fields[1].hasPrefix("size="), let value = Int64(fields[1].dropFirst(5)),
                   value > CanonicalTar.largestUstarSize {
                    size = value
                }
            }
            guard size != nil else {
                throw CanonicalTarError(offset: headerStart, entry: name,
                                        problem: "the header of \(name) is not the canonical encoding (a pax extended header that is not one size record); the bundle was altered")
            }
        } else {
            size = Self.octal(first[124..<136])
        }
        guard let size, size >= 0 else {
            throw CanonicalTarError(offset: headerStart + 124, entry: name, problem: "the header of \(name) is not the canonical encoding (its size field is not 11 octal digits); the bundle was altered")
        }
        let expected = try CanonicalTar.header(name: name, size: size)
        let differing = (0..<min(read.count, expected.count)).filter { read[$0] != expected[$0] }
        // The checksum differs whenever anything else does: name the other field when there is one.
        let telling = differing.first { !(148..<156).contains($0 % CanonicalTar.blockSize) } ?? differing.first
        if let index = telling ?? (read.count == expected.count ? nil : min(read.count, expected.count)) {
            let field = CanonicalTar.fieldName(at: index % CanonicalTar.blockSize)
            throw CanonicalTarError(offset: headerStart + Int64(index), entry: name,
                                    problem: "the header of \(name) is not the canonical encoding (its \(field) field differs); the bundle was altered")
        }
        if let exactSize, exactSize != size {
            throw CanonicalTarError(offset: headerStart, entry: name, problem: "the header of \(name) gives \(size) bytes, but the signed metadata says \(exactSize)")
        }
        guard size <= limit else {
            throw CanonicalTarError(offset: headerStart, entry: name, problem: "\(name) is \(size) bytes, over the \(limit)-byte limit for it")
        }
        return (name, size)
    }

    /// Streams `size` bytes of entry data to `body`, then checks the zero padding after them.
    public func readData(size: Int64, entry: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var remaining = size
        while remaining > 0 {
            guard try fill() else {
                throw CanonicalTarError(offset: position, entry: entry, problem: "the bundle ends inside the data of \(entry); it is truncated")
            }
            let n = Int(min(Int64(available), remaining))
            try body(UnsafeRawBufferPointer(rebasing: buffer[start..<start + n]))
            start += n
            position += Int64(n)
            remaining -= Int64(n)
        }
        let padding = CanonicalTar.padding(size)
        if padding > 0 {
            let padStart = position
            let bytes = try take(padding, entry: entry, what: "the padding")
            if let index = bytes.firstIndex(where: { $0 != 0 }) {
                throw CanonicalTarError(offset: padStart + Int64(index), entry: entry, problem: "the padding after \(entry) is not zero; the bundle was altered")
            }
        }
    }

    /// Reads an entry's data whole, which the caller has bounded with `readHeader`'s limit.
    public func readAll(size: Int64, entry: String) throws -> Data {
        var data = Data(capacity: Int(size))
        try readData(size: size, entry: entry) { data.append(contentsOf: $0) }
        return data
    }

    /// The two zero blocks, then the end of the stream.
    public func readEnd() throws {
        let markerStart = position
        let marker = try take(CanonicalTar.endOfArchiveSize, entry: "end of archive", what: "the end-of-archive blocks")
        if let index = marker.firstIndex(where: { $0 != 0 }) {
            let name = index < 100 ? Self.nulTerminated(marker[0..<100]) : ""
            throw CanonicalTarError(offset: markerStart + Int64(index), entry: name.isEmpty ? "end of archive" : EscapedText.escape(name),
                                    problem: name.isEmpty ? "more data where the archive must end (two zero blocks); the bundle holds bytes it does not list"
                                        : "found an entry named \(EscapedText.quote(name)) after the last one SHA256SUMS lists; the bundle was altered")
        }
        if try fill() {
            throw CanonicalTarError(offset: position, entry: "end of archive", problem: "data after the end of the archive; the bundle was altered or has something appended")
        }
    }

    static func nulTerminated(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Exactly 11 octal digits and a NUL, as the canonical encoding writes them.
    static func octal(_ field: ArraySlice<UInt8>) -> Int64? {
        guard field.count == 12, field.last == 0 else { return nil }
        var value: Int64 = 0
        for byte in field.dropLast() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "7") else { return nil }
            value = value * 8 + Int64(byte - UInt8(ascii: "0"))
        }
        return value
    }
}

/// Text from untrusted input, made safe to print: control characters (terminal escapes, newlines,
/// carriage returns) become visible escapes, so a name cannot forge a line of output.
public enum EscapedText {
    public static func escape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x20..<0x7f, 0xa0...: out.unicodeScalars.append(scalar)
            default: out += String(format: "\\x%02x", scalar.value)
            }
        }
        return out
    }

    public static func quote(_ text: String) -> String { "'\(escape(text))'" }
}
