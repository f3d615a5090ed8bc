import AirgapImageSet
import AirgapOCI

// The export manifest reader: YAML or a plain list. Either a set with valid references comes
// back, or a ParseError naming the file; never a crash or a different error.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImageSet(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: start, count: count), as: UTF8.self)
    do {
        let set = try ImageSet.parse(text, path: "fuzz.yaml")
        for entry in set.images {
            precondition((try? Reference(parsing: entry.reference.description)) == entry.reference)
            precondition(entry.line >= 1, "an entry without a line number")
        }
    } catch is ImageSet.ParseError {
    } catch {
        fatalError("ImageSet.parse threw \(type(of: error)) rather than a ParseError: \(error)")
    }
    return 0
}
