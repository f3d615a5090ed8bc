import Foundation

/// Whether bytes are one JSON text (RFC 8259: an object or an array at the top, UTF-8), checked
/// in one pass with no tree built: a 10,000-image manifest.json parsed into Foundation objects
/// only to be thrown away took 35 MB. Nesting is an explicit stack (bounded), never recursion.
public enum JSONSyntax {
    public static func isValid(_ data: Data, deepest: Int = 512) -> Bool {
        data.withUnsafeBytes { raw in
            var scanner = Scanner(bytes: raw.bindMemory(to: UInt8.self), deepest: deepest)
            return scanner.document()
        }
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        let deepest: Int
        var at = 0
        /// Open containers, innermost last: true for an object.
        var open: [Bool] = []

        init(bytes: UnsafeBufferPointer<UInt8>, deepest: Int) { self.bytes = bytes; self.deepest = deepest }

        var next: UInt8? { at < bytes.count ? bytes[at] : nil }

        mutating func space() {
            while let b = next, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { at += 1 }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard next == byte else { return false }
            at += 1
            return true
        }

        mutating func document() -> Bool {
            space()
            guard next == UInt8(ascii: "{") || next == UInt8(ascii: "[") else { return false }
            guard value() else { return false }
            space()
            return at == bytes.count
        }

        /// One value; containers are walked here, without recursion.
        mutating func value() -> Bool {
            // After an opening bracket, a value or the close; after a value, a comma or the close.
            guard scalarOrOpen() else { return false }
            while !open.isEmpty {
                space()
                let isObject = open.last!
                if take(isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    open.removeLast()
                    continue
                }
                guard take(UInt8(ascii: ",")) else { return false }
                space()
                if isObject {
                    guard string() else { return false }
                    space()
                    guard take(UInt8(ascii: ":")) else { return false }
                    space()
                }
                guard scalarOrOpen() else { return false }
            }
            return true
        }

        /// A scalar, or an opening bracket with its first member (or its close) read; a first
        /// member that opens a container again is taken in the same loop.
        mutating func scalarOrOpen() -> Bool {
            while true {
                space()
                guard let b = next else { return false }
                switch b {
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    guard open.count < deepest else { return false }
                    at += 1
                    let isObject = b == UInt8(ascii: "{")
                    space()
                    if take(isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) { return true }
                    open.append(isObject)
                    if isObject {
                        guard string() else { return false }
                        space()
                        guard take(UInt8(ascii: ":")) else { return false }
                    }
                case UInt8(ascii: "\""): return string()
                case UInt8(ascii: "t"): return literal("true")
                case UInt8(ascii: "f"): return literal("false")
                case UInt8(ascii: "n"): return literal("null")
                default: return number()
                }
            }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard at + count <= bytes.count else { return false }
            for i in 0..<count where bytes[at + i] != word.utf8Start[i] { return false }
            at += count
            return true
        }

        mutating func digits() -> Bool {
            let start = at
            while let b = next, b >= 0x30 && b <= 0x39 { at += 1 }
            return at > start
        }

        mutating func number() -> Bool {
            _ = take(UInt8(ascii: "-"))
            if take(UInt8(ascii: "0")) {
                if let b = next, b >= 0x30 && b <= 0x39 { return false }
            } else if !digits() {
                return false
            }
            if take(UInt8(ascii: ".")) { guard digits() else { return false } }
            if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
                if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
                guard digits() else { return false }
            }
            return true
        }

        /// A string: no raw control characters, only JSON's escapes, and well-formed UTF-8.
        mutating func string() -> Bool {
            guard take(UInt8(ascii: "\"")) else { return false }
            while let b = next {
                switch b {
                case UInt8(ascii: "\""):
                    at += 1
                    return true
                case UInt8(ascii: "\\"):
                    at += 1
                    guard let e = next else { return false }
                    at += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                         UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        continue
                    case UInt8(ascii: "u"):
                        guard at + 4 <= bytes.count, (0..<4).allSatisfy({ Self.isHex(bytes[at + $0]) }) else { return false }
                        at += 4
                    default: return false
                    }
                case 0x00..<0x20: return false
                case 0x20..<0x80: at += 1
                default:
                    guard utf8Sequence() else { return false }
                }
            }
            return false
        }

        /// One multi-byte UTF-8 sequence at `at` (no overlong forms, surrogates or values past U+10FFFF).
        mutating func utf8Sequence() -> Bool {
            let lead = bytes[at]
            let length: Int, lowest: UInt32
            switch lead {
            case 0xC2...0xDF: length = 2; lowest = 0x80
            case 0xE0...0xEF: length = 3; lowest = 0x800
            case 0xF0...0xF4: length = 4; lowest = 0x10000
            default: return false
            }
            guard at + length <= bytes.count else { return false }
            var scalar = UInt32(lead) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
            for i in 1..<length {
                let b = bytes[at + i]
                guard b & 0xC0 == 0x80 else { return false }
                scalar = scalar << 6 | UInt32(b & 0x3F)
            }
            guard scalar >= lowest, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else { return false }
            at += length
            return true
        }

        static func isHex(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x66)
        }
    }
}
