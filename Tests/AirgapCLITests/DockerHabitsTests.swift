import AirgapOCI
import ArgumentParser
import Foundation
import Testing
@testable import AirgapCLI

private func render(_ template: String, _ data: JSONValue, fields: Set<String>? = nil) throws -> String {
    try GoTemplate(template, rootFields: fields).render(data)
}

/// The inspect-like value Docker's formatting page uses in its examples.
private let container: JSONValue = .object([
    "Name": .string("/My-Web"),
    "Args": .array([.string("-g"), .string("daemon off;")]),
    "Image": .string("docker.io/library/nginx:latest"),
    "State": .object(["Running": .bool(true), "Pid": .int(4242)]),
    "Config": .object(["Labels": .object(["com.example.version": .string("1.2"), "team": .string("web")]),
                       "Env": .array([.string("PATH=/usr/bin"), .string("TZ=UTC")])]),
    "NetworkSettings": .object(["Networks": .object(["bridge": .object(["IPAddress": .string("172.17.0.2")]),
                                                      "zz": .object(["IPAddress": .string("10.0.0.9")])])]),
    "Empty": .array([]),
])

@Suite struct GoTemplateTests {
    /// Each row: a template from Docker's "Format command and log output" page (or Go's
    /// text/template rules) and what Docker prints for it.
    @Test(arguments: [
        ("{{join .Args \" , \"}}", "-g , daemon off;"),
        ("{{json .Config.Labels}}", #"{"com.example.version":"1.2","team":"web"}"#),
        ("{{lower .Name}}", "/my-web"),
        ("{{upper .Name}}", "/MY-WEB"),
        ("{{title \"hello world\"}}", "Hello World"),
        ("{{split .Image \":\"}}", "[docker.io/library/nginx latest]"),
        ("{{println .Name}}", "/My-Web\n"),
        ("{{truncate .Image 9}}", "docker.io"),
        ("[{{pad .Name 2 1}}]", "[  /My-Web ]"),
        ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "172.17.0.2 10.0.0.9 "),
        ("{{range $name, $net := .NetworkSettings.Networks}}{{$name}}={{$net.IPAddress}};{{end}}", "bridge=172.17.0.2;zz=10.0.0.9;"),
        ("{{range $i, $e := .Args}}{{$i}}:{{$e}} {{end}}", "0:-g 1:daemon off; "),
        ("{{index .Config.Labels \"com.example.version\"}}", "1.2"),
        ("{{index .Args 1}}", "daemon off;"),
        ("{{.Config.Labels.team}}", "web"),
        ("{{.Config.Labels.missing}}", "<no value>"),
        ("{{json .Config.Labels.missing}}", "null"),
        ("{{.State.Pid}} {{.State.Running}}", "4242 true"),
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ("{{if not .State.Running}}down{{else if eq .State.Pid 4242}}pid ok{{else}}other{{end}}", "pid ok"),
        ("{{range .Empty}}x{{else}}none{{end}}", "none"),
        ("{{with .State}}{{.Pid}}{{end}}", "4242"),
        ("{{.Args}}", "[-g daemon off;]"),
        ("{{.Config.Labels}}", "map[com.example.version:1.2 team:web]"),
        ("{{len .Args}} {{len .Config.Labels}}", "2 2"),
        ("{{printf \"%-8s|%5d|%q\" \"ab\" .State.Pid \"x\"}}", "ab      | 4242|\"x\""),
        ("{{.Image | printf \"<%s>\"}}", "<docker.io/library/nginx:latest>"),
        ("{{(index .Config.Env 1) | lower}}", "tz=utc"),
        ("a  {{- \" b \" -}}  c", "a b c"),
        ("{{/* a comment */}}x", "x"),
        ("{{$n := .State.Pid}}{{$n}}", "4242"),
        ("{{and .State.Running .Name}} {{or .Empty \"fallback\"}}", "/My-Web fallback"),
        ("{{gt .State.Pid 100}} {{lt 1 2}} {{ne .Name \"x\"}}", "true true true"),
    ])
    func dockerDocumentedForms(template: String, expected: String) throws {
        #expect(try render(template, container) == expected)
    }

    @Test(arguments: ["{{.Name", "{{if .X}}", "{{end}}", "{{.Name | }}", "{{nosuch .Name}}", "{{\"open}}", "{{(.Name}}", "{{template \"x\"}}"])
    func malformedTemplatesAreRefused(template: String) {
        #expect(throws: GoTemplate.Failure.self) { _ = try render(template, container) }
    }

    @Test func rootFieldsLikeAGoStruct() throws {
        let row: JSONValue = .object(["Repository": .string("httpd")])
        #expect(try render("{{.Repository}}", row, fields: ["Repository", "Tag"]) == "httpd")
        #expect(try render("{{.Tag}}", row, fields: ["Repository", "Tag"]) == "<no value>")
        let error = #expect(throws: GoTemplate.Failure.self) { _ = try render("{{.Repo}}", row, fields: ["Repository", "Tag"]) }
        #expect(error?.description.contains(".Repository") == true)
    }
}

@Suite struct OutputFormatTests {
    static let fields = ["ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG"]
    static let rows: [[String: JSONValue]] = [
        ["ID": .string("77af4d6b9913"), "Repository": .string("<none>"), "Tag": .string("<none>")],
        ["ID": .string("b6fa739cedf5"), "Repository": .string("committ"), "Tag": .string("latest")],
    ]

    @Test func tablesAlignAsDockersTabwriter() throws {
        // tabwriter(minwidth 10, padding 3): "TAG" is padded to 10, "REPOSITORY" to 13.
        #expect(Format.table(["REPOSITORY", "TAG", "IMAGE ID"], [["busybox", "latest", "abc"]])
                == "REPOSITORY   TAG       IMAGE ID\nbusybox      latest    abc")
        let table = try OutputFormat("table {{.ID}}\\t{{.Repository}}\\t{{.Tag}}", fields: Self.fields, defaultColumns: ["ID"]).render(Self.rows)
        #expect(table == """
            IMAGE ID       REPOSITORY   TAG
            77af4d6b9913   <none>       <none>
            b6fa739cedf5   committ      latest
            """)
    }

    @Test func plainTemplatesJSONAndTheDefault() throws {
        #expect(try OutputFormat("{{.ID}}: {{.Repository}}", fields: Self.fields, defaultColumns: []).render(Self.rows)
                == "77af4d6b9913: <none>\nb6fa739cedf5: committ")
        let json = try OutputFormat("json", fields: Self.fields, defaultColumns: []).render(Self.rows)
        #expect(json.split(separator: "\n").first == #"{"ID":"77af4d6b9913","Repository":"<none>","Tag":"<none>"}"#)
        let plain = try OutputFormat("table", fields: Self.fields, defaultColumns: ["Repository", "Tag"]).render(Self.rows)
        #expect(plain.hasPrefix("REPOSITORY   TAG\n<none>       <none>"))
        #expect(throws: CommandError.self) { _ = try OutputFormat("yaml", fields: Self.fields, defaultColumns: []) }
    }
}

@Suite struct ImageFilterTests {
    private func ref(_ text: String) throws -> Reference { try Reference(parsing: text) }

    /// Docker's reference filter: path.Match on the short name (and name:tag), `*` stops at `/`.
    @Test(arguments: [
        ("busybox", "busybox:1.36", true), ("busybox", "busybox:latest", true), ("busybox:1.36", "busybox:latest", false),
        ("busy*", "busybox:1.36", true), ("busybox:1.*", "busybox:1.36", true), ("busybox:2*", "busybox:1.36", false),
        ("team/*", "team/app:1", true), ("*", "team/app:1", false), ("*/*", "team/app:1", true),
        ("localhost:5000/team/app", "localhost:5000/team/app:2", true), ("docker.io/library/httpd", "httpd:2.4", true),
        ("http?", "httpd:2.4", true), ("[a-g]*", "httpd:2.4", false),
    ])
    func referencePatterns(pattern: String, name: String, matches: Bool) throws {
        #expect(ImageFilters.matches(pattern, try ref(name)) == matches)
    }

    @Test func badFiltersAreOneSentence() {
        for bad in ["dangling", "dangling=maybe", "colour=red"] {
            #expect(throws: CommandError.self) { _ = try ImageFilters([bad]) }
        }
    }
}

@Suite struct DockerShortcutTests {
    @Test(arguments: [
        (["images", "-q"], false, ["image", "ls", "-q"]),
        (["rmi", "a"], false, ["image", "rm", "a"]),
        (["--store", "s", "pull", "x"], false, ["--store", "s", "image", "pull", "x"]),
        (["history", "-H=false", "x"], false, ["image", "history", "--no-human", "x"]),
        (["load", "-i", "a.tar"], true, ["image", "load", "-i", "a.tar"]),
        (["load"], true, ["image", "load"]),
        (["load", "b.tar", "--key", "k.pub"], true, ["load", "b.tar", "--key", "k.pub"]),
        (["push", "b.tar", "--to", "r:5000"], true, ["push", "b.tar", "--to", "r:5000"]),
        (["push", "app:1"], true, ["image", "push", "app:1"]),
        (["push", "app:1"], false, ["image", "push", "app:1"]),
        (["verify", "b.tar"], true, ["verify", "b.tar"]),
        // A bundle file without --to stays the bundle command (which then says --to is missing).
        (["push", "/etc/hostname"], true, ["push", "/etc/hostname"]),
    ])
    func expansions(arguments: [String], inside: Bool, expected: [String]) {
        #expect(DockerShortcuts.expand(arguments, bundleCommands: inside) == expected)
    }
}

@Suite struct HelpTests {
    private func commands(_ root: any ParsableCommand.Type, path: [String] = []) -> [(String, any ParsableCommand.Type)] {
        let config = root.configuration
        let here = path + [config.commandName ?? ""]
        let children = config.subcommands.flatMap { commands($0, path: here) }
        return config.shouldDisplay ? [(here.joined(separator: " "), root)] + children : children
    }

    /// `--help` shows examples on every command a user can see.
    @Test func everyCommandHasExamples() {
        for root in [ImportRoot.self, ExportRoot.self] as [any ParsableCommand.Type] {
            for (name, command) in commands(root) {
                #expect(command.configuration.discussion.contains("Example"), "\(name) --help has no examples")
            }
        }
    }

    /// Examples stay whole on an 80-column terminal (--help wraps a longer line to column 0,
    /// where it reads as two commands).
    @Test func everyExampleFitsEightyColumns() {
        for root in [ImportRoot.self, ExportRoot.self] as [any ParsableCommand.Type] {
            for (name, command) in commands(root) {
                let discussion = command.configuration.discussion
                guard let start = discussion.range(of: "Examples:") else { continue }
                for line in discussion[start.upperBound...].split(separator: "\n") where line.hasPrefix("  ") {
                    #expect(line.count <= 79, "\(name): \(line)")
                }
            }
        }
    }
}

/// A label or a history line is the image maker's text: what a template prints of it reaches the
/// terminal with its control characters spelled out (tabs and newlines of the template stay).
@Suite struct TemplateOutputTests {
    @Test func controlCharactersFromAnImageArePrintedAsEscapes() throws {
        let hostile = "a\u{1b}]0;owned\u{07}b\rc\u{9b}2Jd"
        let format = try OutputFormat("{{.CreatedBy}}\t{{.Size}}", fields: ["CreatedBy": "CREATED BY", "Size": "SIZE"], defaultColumns: ["CreatedBy"])
        let out = try format.render([["CreatedBy": .string(hostile), "Size": .string("1kB")]])
        #expect(out == "a\\x1b]0;owned\\x07b\\x0dc\\x9b2Jd\t1kB", "\(out.debugDescription)")
        let json = try OutputFormat("json", fields: ["CreatedBy": "CREATED BY"], defaultColumns: ["CreatedBy"]).render([["CreatedBy": .string(hostile)]])
        #expect(!json.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 }, "\(json.debugDescription)")
        #expect(TemplateOutput.printable("plain\ttext\nnext") == "plain\ttext\nnext")
    }
}
