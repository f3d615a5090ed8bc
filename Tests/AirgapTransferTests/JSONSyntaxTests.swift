import AirgapOCI
import Foundation
import Testing

/// The one-pass JSON check agrees with Foundation's parser (which builds the whole tree) on what
/// is a JSON text, on chosen cases and on thousands of one-byte changes to real documents.
@Suite struct JSONSyntaxTests {
    /// Foundation's verdict, except that it takes a comma before a closing bracket, which RFC 8259,
    /// Go's encoding/json (Docker, podman, skopeo) and Python's json all refuse.
    func foundation(_ data: Data) -> Bool {
        let text = String(decoding: data, as: UTF8.self)
        if text.range(of: #",[ \t\n\r]*[\]}]"#, options: .regularExpression) != nil { return false }
        return (try? JSONSerialization.jsonObject(with: data)) != nil
    }

    @Test func chosenCasesAgreeWithFoundation() {
        let valid = [#"{}"#, #"[]"#, #" [ 1 , -0.5e+3 , 0 , true , false , null , "a\"\\\/\b\f\n\r\t\u00e9" ] "#,
                     #"{"a":{"b":[[],[{}],{"c":[1,[2,[3]]]}]}}"#, "[\"caf\u{e9} \u{1F600}\"]", #"[1E5, 2e-3, -10]"#, #"{"a":1,"a":2}"#]
        let invalid = [#""#, #"1"#, #""top-level string""#, #"{"a"}"#, #"{"a":}"#, #"[1,]"#, #"{"a":1,}"#, #"[01]"#, #"[1.]"#, #"[.5]"#,
                       #"[-]"#, #"[1e]"#, #"[tru]"#, #"[nul]"#, "[\"tab\there\"]", #"["\x"]"#, #"["\u12"]"#, #"[1] x"#, #"[1"#, #"{"a":1"#,
                       #"[}"#, #"{]"#, #"{"a" 1}"#, #"[1 2]"#, #"{1:2}"#, #"[+1]"#]
        for text in valid {
            #expect(JSONSyntax.isValid(Data(text.utf8)) && foundation(Data(text.utf8)), "\(text)")
        }
        for text in invalid {
            #expect(!JSONSyntax.isValid(Data(text.utf8)) && !foundation(Data(text.utf8)), "\(text)")
        }
        for bytes: [UInt8] in [[0x5B, 0x22, 0xFF, 0x22, 0x5D], [0x5B, 0x22, 0xC0, 0xAF, 0x22, 0x5D], [0x5B, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x5D], [0x5B, 0x22, 0xE2, 0x82, 0x22, 0x5D]] {
            #expect(!JSONSyntax.isValid(Data(bytes)), "invalid UTF-8 \(bytes)")
        }
    }

    @Test func nestingIsBoundedWithoutRecursion() {
        let deep = Data((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8)
        #expect(!JSONSyntax.isValid(deep), "deeper than the bound")
        #expect(JSONSyntax.isValid(deep, deepest: 100_000), "an explicit stack, not the call stack")
    }

    @Test func oneByteChangesToRealDocumentsAgreeWithFoundation() throws {
        let documents = [
            #"[{"Config":"blobs/sha256/1a2b","Layers":["blobs/sha256/3c4d","blobs/sha256/5e6f"],"RepoTags":["registry.example/app:1.0"]},{"Config":"blobs/sha256/77","Layers":[],"RepoTags":null}]"#,
            #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:00","size":7023},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:11","size":32654,"annotations":{"a":"b"}}]}"#,
            #"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:22"]},"history":[{"created":"2026-01-01T00:00:00Z","empty_layer":true}]}"#,
        ]
        var generator = SeededRandom(state: 0x5EED) // the mutation runs' generator: the same changes every run
        let alphabet = Array(#"{}[]:,"\ -+.eE0123456789tfnlu/"#.utf8) + [0x00, 0x09, 0x0A, 0xC3, 0xA9, 0xFF]
        var checked = 0
        for document in documents {
            let original = Array(document.utf8)
            #expect(JSONSyntax.isValid(Data(original)))
            for _ in 0..<2000 {
                var bytes = original
                let i = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[i] = alphabet.randomElement(using: &generator)!
                case 1: bytes.remove(at: i)
                default: bytes.insert(alphabet.randomElement(using: &generator)!, at: i)
                }
                let data = Data(bytes)
                // Not compared: lone surrogate escapes (Foundation replaces or refuses them) and
                // numbers past a Double's range (the grammar allows them; Foundation refuses them).
                let text = String(decoding: bytes, as: UTF8.self)
                guard !text.contains("\\u"), text.range(of: #"[0-9][eE][+-]?[0-9]{3,}"#, options: .regularExpression) == nil else { continue }
                #expect(JSONSyntax.isValid(data) == foundation(data), "\(String(decoding: bytes, as: UTF8.self))")
                checked += 1
            }
        }
        #expect(checked > 3000)
    }
}

