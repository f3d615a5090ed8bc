import AirgapOCI

// Any string either parses or throws OCIError; what parses prints back to itself.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReference(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: start, count: count), as: UTF8.self)
    guard let reference = try? Reference(parsing: text) else { return 0 }
    guard let again = try? Reference(parsing: reference.description) else {
        fatalError("'\(text)' parsed, but its canonical form '\(reference.description)' does not")
    }
    precondition(again == reference, "'\(text)' → '\(reference.description)' → '\(again.description)' is not a fixed point")
    return 0
}
