import Foundation

/// Large documents (bundle.json, index.json, manifest.json of 10,000 images) encoded one top-level
/// field and one array element at a time, each through the same JSONEncoder settings, and joined
/// exactly as that encoder joins them: the bytes equal `JSONEncoder().encode(value)`, but the
/// encoder's intermediate tree only ever holds one element, not the whole document.
enum ShallowJSON {
    /// Hands the document to `write` a piece at a time, in order; false (and nothing written) when
    /// `value` is not a plain object or array at its top.
    /// `generated`: top-level fields whose elements are made as they are written, in place of the
    /// value's own (left empty by the caller); each must be a field of the value.
    static func encode(_ value: some Encodable, encoder: JSONEncoder, pretty: Bool, generated: [String: any EncodableElements] = [:],
                       into write: (Data) throws -> Void) throws -> Bool {
        if let elements = value as? any EncodableElements {
            // An array, or a list made as it is written: joined an element at a time.
            guard generated.isEmpty else {
                throw EncodingError.invalidValue(generated.keys.sorted(), .init(codingPath: [], debugDescription: "generated fields need a document that is an object"))
            }
            try joinArray(elements, encoder: encoder, pretty: pretty, indent: 0, into: write)
            return true
        }
        let top = TopLevel()
        do { try value.encode(to: top) } catch is Unsupported { return false }
        switch top.shape {
        case .none: return false
        case .array:
            guard generated.isEmpty else {
                throw EncodingError.invalidValue(generated.keys.sorted(), .init(codingPath: [], debugDescription: "generated fields need a document that is an object"))
            }
            try joinArray(Recorded(elements: top.elements), encoder: encoder, pretty: pretty, indent: 0, into: write)
            return true
        case .object:
            let fields = top.fields
            guard !fields.isEmpty, Set(fields.map(\.0)).count == fields.count else { return false }
            guard generated.keys.allSatisfy({ key in fields.contains { $0.0 == key } }) else {
                throw EncodingError.invalidValue(generated.keys.sorted(), .init(codingPath: [], debugDescription: "a generated field is not a field of the document"))
            }
            // Anything unexpected here: the whole-document encoder decides (and reports errors).
            guard let ordered = try? encoderOrder(fields, encoder) else { return false }
            try write(Data((pretty ? "{\n" : "{").utf8))
            for (i, (key, name, field)) in ordered.enumerated() {
                var head = Data()
                if i > 0 { head.append(contentsOf: Array((pretty ? ",\n" : ",").utf8)) }
                if pretty { head.append(contentsOf: Array("  ".utf8)) }
                head.append(name)
                head.append(contentsOf: Array((pretty ? " : " : ":").utf8))
                try write(head)
                if let elements = generated[key] ?? field as? any EncodableElements, elements.elementCount > 0 {
                    try joinArray(elements, encoder: encoder, pretty: pretty, indent: 2, into: write)
                } else {
                    try write(indented(try encoder.encode(AnyEncodable(field)), by: pretty ? 2 : 0, first: false))
                }
            }
            try write(Data((pretty ? "\n}" : "}").utf8))
            return true
        }
    }

    /// The fields in the order the encoder's `.sortedKeys` puts them (its comparison, not ours:
    /// it is not plain `<` on every platform), each with its name as the encoder writes it.
    private static func encoderOrder(_ fields: [(String, any Encodable)], _ encoder: JSONEncoder) throws -> [(String, Data, any Encodable)] {
        let names = try fields.map { try encoder.encode($0.0) }
        let probe = try encoder.encode(Dictionary(uniqueKeysWithValues: fields.map { ($0.0, 0) }))
        let positions = try names.map { name -> Int in
            // A key as the encoder writes it, followed by the separator: only the key itself matches.
            guard let range = probe.range(of: name + Data(":".utf8)) ?? probe.range(of: name + Data(" :".utf8)) else { throw Unsupported() }
            return range.lowerBound
        }
        return zip(positions, zip(fields, names)).sorted { $0.0 < $1.0 }.map { ($0.1.0.0, $0.1.1, $0.1.0.1) }
    }

    private static func joinArray(_ elements: any EncodableElements, encoder: JSONEncoder, pretty: Bool, indent: Int, into write: (Data) throws -> Void) throws {
        guard elements.elementCount > 0 else { return try write(try encoder.encode([Int]())) }
        try write(Data((pretty ? "[\n" : "[").utf8))
        var first = true
        try elements.forEachElement { element in
            var piece = Data()
            if !first { piece.append(contentsOf: Array((pretty ? ",\n" : ",").utf8)) }
            first = false
            piece.append(indented(try encoder.encode(AnyEncodable(element)), by: pretty ? indent + 2 : 0, first: true))
            try write(piece)
        }
        if pretty { try write(Data(("\n" + String(repeating: " ", count: indent) + "]").utf8)) } else { try write(Data("]".utf8)) }
    }

    /// A pretty document moved right by `by` spaces (blank lines stay empty, as the encoder writes
    /// them); JSON strings hold no raw newline, so every newline in it is a line break of the layout.
    private static func indented(_ data: Data, by spaces: Int, first: Bool) -> Data {
        guard spaces > 0 else { return data }
        let pad = [UInt8](repeating: UInt8(ascii: " "), count: spaces)
        var out = Data(capacity: data.count + data.count / 8)
        var lineStart = first
        for byte in data {
            if lineStart && byte != UInt8(ascii: "\n") { out.append(contentsOf: pad) }
            out.append(byte)
            lineStart = byte == UInt8(ascii: "\n")
        }
        return out
    }

    private struct Unsupported: Error {}

    /// The elements of a top-level array, as the shallow pass recorded them.
    private struct Recorded: EncodableElements {
        let elements: [any Encodable]
        var elementCount: Int { elements.count }
        func forEachElement(_ body: (any Encodable) throws -> Void) throws { for element in elements { try body(element) } }
    }

    private struct AnyEncodable: Encodable {
        let value: any Encodable
        init(_ value: any Encodable) { self.value = value }
        func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
    }

    /// Records what the value's top level is made of, without encoding below it.
    private final class TopLevel: Encoder {
        enum Shape { case none, object, array }
        var shape = Shape.none
        var fields: [(String, any Encodable)] = []
        var elements: [any Encodable] = []
        var codingPath: [any CodingKey] { [] }
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            if case .none = shape { shape = .object }
            return KeyedEncodingContainer(Keyed<Key>(top: self))
        }
        func unkeyedContainer() -> any UnkeyedEncodingContainer {
            if case .none = shape { shape = .array }
            return Unkeyed(top: self)
        }
        func singleValueContainer() -> any SingleValueEncodingContainer { Single() }

        func add(_ key: String, _ value: any Encodable) throws {
            guard case .object = shape else { throw Unsupported() }
            fields.append((key, value))
        }
        func append(_ value: any Encodable) throws {
            guard case .array = shape else { throw Unsupported() }
            elements.append(value)
        }
    }

    /// A container at the top records what is put in it; below the top (`top` nil: a nested
    /// container made at the top level, which the shallow pass does not model) every use throws,
    /// and the document is encoded whole instead.
    private struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let top: TopLevel?
        var codingPath: [any CodingKey] { [] }
        mutating func encodeNil(forKey key: Key) throws { throw Unsupported() }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            guard let top else { throw Unsupported() }
            try top.add(key.stringValue, value)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            KeyedEncodingContainer(Keyed<NestedKey>(top: nil))
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer { Unkeyed(top: nil) }
        mutating func superEncoder() -> any Encoder { Refusing() }
        mutating func superEncoder(forKey key: Key) -> any Encoder { Refusing() }
    }

    private struct Unkeyed: UnkeyedEncodingContainer {
        let top: TopLevel?
        var codingPath: [any CodingKey] { [] }
        var count: Int { top?.elements.count ?? 0 }
        mutating func encodeNil() throws { throw Unsupported() }
        mutating func encode<T: Encodable>(_ value: T) throws {
            guard let top else { throw Unsupported() }
            try top.append(value)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            KeyedEncodingContainer(Keyed<NestedKey>(top: nil))
        }
        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { Unkeyed(top: nil) }
        mutating func superEncoder() -> any Encoder { Refusing() }
    }

    /// A single value at the top, or a super encoder: not modelled, so every use throws.
    private struct Single: SingleValueEncodingContainer {
        var codingPath: [any CodingKey] { [] }
        mutating func encodeNil() throws { throw Unsupported() }
        mutating func encode<T: Encodable>(_ value: T) throws { throw Unsupported() }
    }
    private struct Refusing: Encoder {
        var codingPath: [any CodingKey] { [] }
        var userInfo: [CodingUserInfoKey: Any] { [:] }
        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> { KeyedEncodingContainer(Keyed<Key>(top: nil)) }
        func unkeyedContainer() -> any UnkeyedEncodingContainer { Unkeyed(top: nil) }
        func singleValueContainer() -> any SingleValueEncodingContainer { Single() }
    }
}

/// An array, seen through `any Encodable`, gives up its elements one at a time.
public protocol EncodableElements {
    var elementCount: Int { get }
    func forEachElement(_ body: (any Encodable) throws -> Void) throws
}

extension Array: EncodableElements where Element: Encodable {
    public var elementCount: Int { count }
    public func forEachElement(_ body: (any Encodable) throws -> Void) throws { for element in self { try body(element) } }
}

/// A document's long list made one element at a time as it is written (bundle.json's 10,000
/// images), so that it never exists whole; `CanonicalJSON.encodeLarge(_:generating:)` puts it in
/// place of the document's own (empty) field, with the bytes `[Element]` would have.
public struct GeneratedElements<Element: Encodable>: EncodableElements, Encodable {
    public let elementCount: Int
    let element: (Int) throws -> Element
    public init(count: Int, _ element: @escaping (Int) throws -> Element) { elementCount = count; self.element = element }
    public func forEachElement(_ body: (any Encodable) throws -> Void) throws {
        for i in 0..<elementCount { try body(try element(i)) }
    }
    /// As the array of its elements (a whole-document encoder, or a list at a document's top).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for i in 0..<elementCount { try container.encode(try element(i)) }
    }
}
