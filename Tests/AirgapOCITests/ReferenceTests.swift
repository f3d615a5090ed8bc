import AirgapOCI
import Testing

@Suite struct ReferenceTests {
    // Input → normalised form, from Docker's documented addressing rules.
    @Test(arguments: [
        ("httpd", "docker.io/library/httpd:latest"),
        ("httpd:2.4-alpine", "docker.io/library/httpd:2.4-alpine"),
        ("library/httpd", "docker.io/library/httpd:latest"),
        ("docker.io/httpd", "docker.io/library/httpd:latest"),
        ("index.docker.io/library/httpd:2", "docker.io/library/httpd:2"),
        ("team/app:1", "docker.io/team/app:1"),
        ("localhost/a", "localhost/a:latest"),
        ("localhost:5000/a", "localhost:5000/a:latest"),
        ("localhost:5000/team/app:1", "localhost:5000/team/app:1"),
        ("a.b/c", "a.b/c:latest"),
        ("127.0.0.1:5000/x/y/z:v", "127.0.0.1:5000/x/y/z:v"),
        ("quay.io/prometheus/prometheus:v2.53.0", "quay.io/prometheus/prometheus:v2.53.0"),
        ("[::1]:5000/app", "[::1]:5000/app:latest"),
        ("a__b/c--d/e.f_g:T_a.g-1", "docker.io/a__b/c--d/e.f_g:T_a.g-1"),
    ])
    func normalises(input: String, expected: String) throws {
        #expect(try Reference(parsing: input).description == expected)
    }

    @Test func digestOnlyHasNoDefaultTag() throws {
        let hex = String(repeating: "a", count: 64)
        let r = try Reference(parsing: "alpine@sha256:\(hex)")
        #expect(r.tag == nil)
        #expect(r.digest?.description == "sha256:\(hex)")
        #expect(r.description == "docker.io/library/alpine@sha256:\(hex)")
    }

    @Test func tagAndDigestTogether() throws {
        let hex = String(repeating: "b", count: 64)
        let r = try Reference(parsing: "localhost:5000/app:1.0@sha256:\(hex)")
        #expect(r.registry == "localhost:5000")
        #expect(r.repository == "app")
        #expect(r.tag == "1.0")
        #expect(r.digest?.encoded == hex)
        #expect(r.manifestSelector == "sha256:\(hex)")
    }

    @Test func tagLengthLimitIs128() throws {
        let ok = String(repeating: "t", count: 128)
        #expect(try Reference(parsing: "app:\(ok)").tag == ok)
        #expect(throws: OCIError.self) { try Reference(parsing: "app:\(ok)t") }
    }

    // Each rejection says which part is wrong.
    @Test(arguments: [
        ("UPPER/case", "must be lower-case"),
        ("Httpd", "must be lower-case"),
        ("", "empty"),
        ("app:", "tag"),
        ("app:.bad", "tag"),
        ("app@sha256:abc", "digest"),
        ("app@md5:" + String(repeating: "a", count: 32), "digest"),
        ("a/b..c", "repository path component"),
        ("-app", "repository path component"),
        ("app-", "repository path component"),
        ("a/b//c", "repository path component"),
        ("my_host:99999/a", "registry"),
        ("localhost:5000/", "repository name is missing"),
    ])
    func rejects(input: String, mention: String) {
        do {
            _ = try Reference(parsing: input)
            Issue.record("'\(input)' was accepted")
        } catch {
            #expect("\(error)".contains(mention), "message was: \(error)")
        }
    }

    @Test(arguments: [
        ("httpd:alpine", "httpd:alpine"),
        ("docker.io/library/httpd:alpine", "httpd:alpine"),
        ("docker.io/team/app:1", "team/app:1"),
        ("myreg:5000/team/app:1", "myreg:5000/team/app:1"),
        ("library/a/b", "library/a/b:latest"),
    ])
    func familiarForm(input: String, familiar: String) throws {
        #expect(try Reference(parsing: input).familiarDescription == familiar)
    }

    @Test func loopbackDetection() {
        #expect(Reference.isLoopback(registry: "localhost:5000"))
        #expect(Reference.isLoopback(registry: "127.0.0.1:5000"))
        #expect(Reference.isLoopback(registry: "127.1.2.3"))
        #expect(Reference.isLoopback(registry: "[::1]:5000"))
        #expect(!Reference.isLoopback(registry: "10.0.0.1:5000"))
        #expect(!Reference.isLoopback(registry: "docker.io"))
        #expect(!Reference.isLoopback(registry: "127.example.com"))
    }
}
