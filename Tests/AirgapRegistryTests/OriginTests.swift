@testable import AirgapRegistry
import Testing

/// Credentials go only where the registry's own origin is: the parser is strict, and what it does
/// not read as a plain origin is no origin (so never the registry's).
@Suite struct OriginTests {
    @Test func plainOriginsCompareBySchemeHostAndPort() throws {
        let registry = try #require(Origin("http://127.0.0.1:5000"))
        #expect(registry == Origin("HTTP://127.0.0.1:5000/v2/library/a/blobs/uploads/?x=1"))
        #expect(registry == Origin("http://user@127.0.0.1:5000#f"))
        #expect(registry != Origin("https://127.0.0.1:5000/"))
        #expect(registry != Origin("http://127.0.0.1:5001/"))
        #expect(Origin("http://Registry.Example/x") == Origin("http://registry.example:80"))
        #expect(Origin("https://registry.example") == Origin("https://registry.example:443/"))
        #expect(Origin("http://[::1]:5000/v2/")?.host == "[::1]")
    }

    @Test func whatAnotherParserMightReadOtherwiseIsNoOrigin() {
        for hostile in ["http://127.0.0.1:5000\\@evil.example/", "http://a@b@127.0.0.1:5000/", "http://127.0.0.%31:5000/",
                        "http://ex\u{e4}mple.com/", "http://127.0.0.1:5000x/", "http://127.0.0.1:99999/", "http://:5000/",
                        "ftp://127.0.0.1:5000/", "http:/127.0.0.1:5000/", "http://[::1/", "http://[::1]x/", "http://127.0.0.1 :5000/"] {
            #expect(Origin(hostile) == nil, "\(hostile)")
        }
    }
}
