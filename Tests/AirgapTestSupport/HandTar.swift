import Foundation

/// Tar bytes written header by header, so a test can lie the way an attacker would (size fields
/// that disagree with the data, pax records that override them, links where files belong):
/// libarchive's writer refuses to produce such archives.
public struct HandTar {
    public private(set) var data = Data()
    public init() {}

    /// One entry: an optional pax header with `pax` records, then a ustar header whose size field
    /// says `headerSize` (default: the content's length), then `content` padded to 512 bytes.
    public mutating func add(_ name: String, type: UInt8 = UInt8(ascii: "0"), content: Data = Data(),
                             headerSize: Int64? = nil, link: String = "", pax: [(String, String)] = []) {
        if !pax.isEmpty {
            var body = Data()
            for (key, value) in pax { body += Self.paxRecord(key, value) }
            data += Self.header(name: "PaxHeaders/\(name.suffix(80))", size: Int64(body.count), type: UInt8(ascii: "x"), link: "")
            data += Self.padded(body)
        }
        data += Self.header(name: name, size: headerSize ?? Int64(content.count), type: type, link: link)
        data += Self.padded(content)
    }

    /// The end-of-archive marker: two zero blocks.
    public mutating func finish() { data += Data(count: 1024) }

    /// "LEN key=value\n", where LEN counts the whole record including its own digits.
    static func paxRecord(_ key: String, _ value: String) -> Data {
        let rest = " \(key)=\(value)\n"
        var length = rest.utf8.count + 1
        while "\(length)".count + rest.utf8.count != length { length += 1 }
        return Data("\(length)\(rest)".utf8)
    }

    static func padded(_ body: Data) -> Data {
        body + Data(count: (512 - body.count % 512) % 512)
    }

    static func header(name: String, size: Int64, type: UInt8, link: String) -> Data {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int, width: Int) {
            for (i, byte) in text.utf8.prefix(width).enumerated() { block[offset + i] = byte }
        }
        func octal(_ value: Int64, at offset: Int, width: Int) {
            let digits = String(value, radix: 8)
            // Too big for the field: leave it zero, as tar writers do when a pax record carries it.
            guard digits.count < width else { return }
            put(String(repeating: "0", count: width - 1 - digits.count) + digits, at: offset, width: width - 1)
        }
        put(name, at: 0, width: 100)
        octal(0o644, at: 100, width: 8)
        octal(0, at: 108, width: 8)
        octal(0, at: 116, width: 8)
        octal(size, at: 124, width: 12)
        octal(0, at: 136, width: 12)
        block[156] = type
        put(link, at: 157, width: 100)
        put("ustar\u{0}00", at: 257, width: 8)
        for i in 148..<156 { block[i] = UInt8(ascii: " ") }
        let sum = block.reduce(0) { $0 + Int($1) }
        let field = String(sum, radix: 8)
        put(String(repeating: "0", count: 6 - field.count) + field + "\u{0} ", at: 148, width: 8)
        return Data(block)
    }
}

/// Runs a program and reports, besides its result, the peak resident memory (KiB) the kernel
/// measured for it (getrusage of the waited-for child, through Debian's python3).
public func runMeasuringMemory(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (result: ProcessResult, peakKiB: Int) {
    let script = """
    import resource, subprocess, sys
    status = subprocess.call(sys.argv[1:])
    sys.stderr.write("\\nPEAK_RSS_KIB=%d\\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    sys.exit(status if status >= 0 else 128 - status)
    """
    var result = try runProcess("/usr/bin/python3", ["-c", script, executable] + arguments, environment: environment)
    guard let marker = result.stderr.range(of: "\nPEAK_RSS_KIB=", options: .backwards),
          let peak = Int(result.stderr[marker.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "no memory figure from the wrapper: \(result.stderr)"])
    }
    result.stderr = String(result.stderr[..<marker.lowerBound])
    return (result, peak)
}
