import AirgapContent
import AirgapOCI
import AirgapStore
import AirgapTar
import AirgapTransfer
import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct ImageGroup: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Manage images in the local store.",
        discussion: """
        Examples:
          airgap-import image ls
          airgap-import image inspect -f '{{.Id}}' httpd:2.4
          airgap-export image pull httpd:2.4 && airgap-export image save httpd:2.4 \\
              -o httpd.tar
        """,
        subcommands: [ImageList.self, ImageTag.self, ImageRemove.self, ImagePrune.self, ImageHistory.self,
                      ImageInspect.self, ImageSave.self, ImageLoad.self, ImagePull.self, ImagePush.self])
    public init() {}
}

struct ImageList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List images.",
        discussion: """
        SIZE is what the image's layers take unpacked, as Docker counts it; the compressed bytes the \
        store holds are the CompressedSize field. Filters (-f, repeatable): dangling=true|false, \
        reference=PATTERN (globs: *, ?, [..]), label=KEY or label=KEY=VALUE, before=IMAGE, since=IMAGE. \
        Template fields: .ID .Repository .Tag .Digest .CreatedSince .CreatedAt .Size .CompressedSize \
        .Platforms .Containers .SharedSize .UniqueSize .VirtualSize.

        Examples:
          airgap-import images
          airgap-import image ls httpd
          airgap-import image ls --digests -f 'reference=team/*:1.*'
          airgap-import image ls -f dangling=true -q
          airgap-import image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}'
          airgap-import image ls --format \\
              'table {{.ID}}\\t{{.Repository}}\\t{{.CompressedSize}}'
        """,
        aliases: ["ls"])
    @OptionGroup var globals: GlobalOptions
    @Option(help: ArgumentHelp("table, json (one object a line), or a Go template ('table {{.Repository}}\\t{{.Size}}').", valueName: "FORMAT"))
    var format: String = "table"
    @Flag(name: .shortAndLong, help: "Only show image IDs.") var quiet = false
    @Flag(name: .shortAndLong, help: "Also show the signatures, attestations and SBOMs attached to images.") var all = false
    @Flag(help: "Show digests.") var digests = false
    @Flag(name: .customLong("no-trunc"), help: "Do not truncate IDs.") var noTrunc = false
    @Option(name: .shortAndLong, help: ArgumentHelp("Filter the list (KEY=VALUE; see below).", valueName: "FILTER")) var filter: [String] = []
    @Argument(help: "Only images of this repository (REPO or REPO:TAG, globs allowed).") var repository: String?

    static let fields: [String: String] = [
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT", "Size": "SIZE", "CompressedSize": "COMPRESSED SIZE", "Platforms": "PLATFORMS",
        "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
    ]

    func run() async throws {
        let columns = digests ? ["Repository", "Tag", "Digest", "ID", "CreatedSince", "Size"] : ["Repository", "Tag", "ID", "CreatedSince", "Size"]
        let output = try OutputFormat(format, fields: Self.fields, defaultColumns: columns)
        var filters = try ImageFilters(filter)
        if let repository { filters.references.append(repository) }
        let store = try globals.openStoreForReading()
        var problems: [String] = []
        let everything = try store.images(problems: &problems)
        for problem in problems { printErr("warning: cannot read \(problem)") }
        let images = try filters.apply(to: everything, includeAttachments: all) { try store.findOne($0).config.createdDate }
            .sorted { a, b in
                let (x, y) = (a.config.createdDate ?? .distantPast, b.config.createdDate ?? .distantPast)
                if x != y { return x > y }
                return (a.reference?.familiarDescription ?? "~") < (b.reference?.familiarDescription ?? "~")
            }
        func id(_ image: StoredImage) -> String { noTrunc ? image.id.description : image.id.shortID }
        if quiet {
            var seen = Set<String>()
            for image in images where seen.insert(id(image)).inserted { print(id(image)) }
            return
        }
        let sizes = store.unpackedSizes()
        let rows = images.map { image -> [String: JSONValue] in
            let size = Format.size(sizes.size(of: image))
            return [
                "ID": .string(id(image)),
                "Repository": .string(image.reference?.familiarName ?? "<none>"),
                "Tag": .string(image.reference?.tag ?? "<none>"),
                "Digest": .string(image.reference == nil ? "<none>" : image.entry.digest.description),
                "CreatedSince": .string(Format.since(image.config.createdDate)),
                "CreatedAt": .string(image.config.createdDate.map(Format.goTime) ?? ""),
                "Size": .string(size),
                "VirtualSize": .string(size),
                "CompressedSize": .string(Format.size(image.contentSize)),
                "Platforms": .string(image.platforms.map(\.description).joined(separator: ",")),
                "Containers": .string("N/A"), "SharedSize": .string("N/A"), "UniqueSize": .string("N/A"),
            ]
        }
        try output.print(rows)
    }
}

/// `image ls -f`: Docker's filters. Values of one key widen the match (any reference pattern),
/// labels narrow it (every label), keys together narrow it.
struct ImageFilters {
    var dangling: Bool?
    var references: [String] = []
    var labels: [(key: String, value: String?)] = []
    var before: String?
    var since: String?

    init(_ filters: [String]) throws {
        for filter in filters {
            guard let equals = filter.firstIndex(of: "=") else {
                throw CommandError(.usage, "bad format of filter '\(filter)' (expected name=value)")
            }
            let key = filter[..<equals].lowercased()
            let value = String(filter[filter.index(after: equals)...])
            switch key {
            case "dangling":
                guard ["true", "false", "1", "0"].contains(value.lowercased()) else {
                    throw CommandError(.usage, "invalid filter 'dangling=\(value)': use dangling=true or dangling=false")
                }
                dangling = value.lowercased() == "true" || value == "1"
            case "reference": references.append(value)
            case "label":
                if let eq = value.firstIndex(of: "=") { labels.append((String(value[..<eq]), String(value[value.index(after: eq)...]))) }
                else { labels.append((value, nil)) }
            case "before": before = value
            case "since": since = value
            default:
                throw CommandError(.usage, "invalid filter '\(key)': use dangling, reference, label, before or since")
            }
        }
    }

    /// `createdOf` finds the image `before=`/`since=` name (the store's own lookup).
    func apply(to images: [StoredImage], includeAttachments: Bool, createdOf: (String) throws -> Date?) throws -> [StoredImage] {
        let beforeDate = try before.map { try createdOf($0) ?? .distantPast }
        let sinceDate = try since.map { try createdOf($0) ?? .distantPast }
        return images.filter { image in
            if !includeAttachments, let tag = image.reference?.tag, AttachmentKind.parse(tag: tag) != nil { return false }
            if let dangling, (image.reference == nil) != dangling { return false }
            if !references.isEmpty, !references.contains(where: { Self.matches($0, image.reference) }) { return false }
            let imageLabels = image.config.raw["config"]?["Labels"]
            for (key, value) in labels {
                guard let found = imageLabels?[key]?.stringValue else { return false }
                if let value, found != value { return false }
            }
            let date = image.config.createdDate ?? .distantPast
            if let beforeDate, date >= beforeDate { return false }
            if let sinceDate, date <= sinceDate { return false }
            return true
        }
    }

    /// Docker's `reference` filter: the pattern is matched (as path.Match does: `*` stops at `/`)
    /// against the short name, and, with a tag in the pattern, against `name:tag`.
    static func matches(_ pattern: String, _ reference: Reference?) -> Bool {
        guard let reference else { return false }
        if let exact = try? Reference(parsing: pattern), !pattern.contains(where: { "*?[".contains($0) }) {
            // A plain name: every tag of that repository; a name with a tag or digest: that one.
            let named = pattern.contains("@") || pattern.split(separator: "/").last?.contains(":") == true
            return named ? exact == reference : exact.name == reference.name
        }
        let name = reference.familiarName
        let full = reference.familiarDescription
        return fnmatch(pattern, full, FNM_PATHNAME) == 0 || fnmatch(pattern, name, FNM_PATHNAME) == 0
    }
}

struct ImageTag: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tag", abstract: "Create a tag TARGET that refers to SOURCE.",
        discussion: """
        Examples:
          airgap-import image tag httpd:2.4 registry.internal:5000/web/httpd:2.4
          airgap-import tag 6f3e2d1c0b9a web:stable
        """)
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "Image name or ID.") var source: String
    @Argument(help: "New name.") var target: String

    func run() async throws {
        let reference = try Reference(parsing: target)
        guard reference.digest == nil else { throw CommandError(.usage, "the target '\(target)' holds a digest; a tag names an image with a tag only") }
        try globals.openStore().tag(source: source, target: reference)
    }
}

struct ImageRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove one or more images.",
        discussion: """
        Examples:
          airgap-import image rm httpd:2.4
          airgap-import rmi -f 6f3e2d1c0b9a
        """, aliases: ["remove", "rmi"])
    @OptionGroup var globals: GlobalOptions
    @Flag(name: .shortAndLong, help: "Remove every name of an image given by ID.") var force = false
    @Argument(help: "Image names or IDs.") var images: [String]

    func validate() throws { if images.isEmpty { throw ValidationError("give at least one image to remove") } }

    func run() async throws {
        for line in try globals.openStore().remove(images, force: force) { print(line) }
    }
}

struct ImagePrune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Remove unused images and blobs.",
        discussion: """
        Examples:
          airgap-import image prune
          airgap-import image prune -a --force
        """)
    @OptionGroup var globals: GlobalOptions
    @Flag(name: .shortAndLong, help: "Remove all images, not just dangling ones (no containers use images here).") var all = false
    @Flag(name: .shortAndLong, help: "Do not prompt for confirmation.") var force = false

    func run() async throws {
        let store = try globals.openStore()
        if !force {
            print(all ? "WARNING! This will remove all images without at least one container associated to them."
                      : "WARNING! This will remove all dangling images.")
            print("Are you sure you want to continue? [y/N] ", terminator: "")
            fflush(nil)
            let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            guard answer == "y" || answer == "yes" else {
                print("")
                throw CommandError(.failure, "prune cancelled: nothing was removed (use --force to skip the question)")
            }
        }
        let (removed, reclaimed) = try store.prune(all: all)
        if !removed.isEmpty {
            print("Deleted Images:")
            for name in removed { print("untagged: \(name)") }
            print("")
        }
        print("Total reclaimed space: \(Format.size(reclaimed))")
    }
}

struct ImageHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Show the history of an image.",
        discussion: """
        Template fields: .ID .CreatedSince .CreatedAt .CreatedBy .Size .Comment.

        Examples:
          airgap-import image history httpd:2.4
          airgap-import image history --no-trunc -H=false httpd:2.4
          airgap-import image history --format '{{.Size}}\\t{{.CreatedBy}}' httpd:2.4
        """)
    @OptionGroup var globals: GlobalOptions
    @Flag(name: [.customShort("H"), .customLong("human")], inversion: .prefixedNo,
          help: "Sizes and dates in human-readable form (-H=false or --no-human: bytes and RFC 3339 times).")
    var human = true
    @Flag(name: .customLong("no-trunc"), help: "Do not truncate output.") var noTrunc = false
    @Flag(name: .shortAndLong, help: "Only show image IDs.") var quiet = false
    @Option(help: ArgumentHelp("table, json, or a Go template.", valueName: "FORMAT")) var format: String = "table"
    @Argument(help: "Image name or ID.") var image: String

    static let fields = ["ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                         "Size": "SIZE", "Comment": "COMMENT"]

    func run() async throws {
        let output = try OutputFormat(format, fields: Self.fields, defaultColumns: ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"])
        let store = try globals.openStoreForReading()
        let found = try store.findOne(image)
        let sizes = store.unpackedSizes()
        var layers = found.manifest.layers.makeIterator()
        var rows: [[String: JSONValue]] = []
        for entry in found.config.history {
            let size: Int64 = entry.emptyLayer == true ? 0 : (layers.next().map(sizes.size(of:)) ?? 0)
            var createdBy = entry.createdBy ?? ""
            if !noTrunc && createdBy.count > 45 { createdBy = String(createdBy.prefix(44)) + "…" }
            let created = entry.created.flatMap(parseRFC3339)
            rows.append([
                "ID": .string("<missing>"),
                "CreatedSince": .string(human ? Format.since(created) : created.map(Format.rfc3339) ?? ""),
                "CreatedAt": .string(created.map(Format.rfc3339) ?? ""),
                "CreatedBy": .string(createdBy),
                "Size": .string(human ? Format.size(size) : String(size)),
                "Comment": .string(entry.comment ?? ""),
            ])
        }
        rows.reverse()
        if !rows.isEmpty { rows[0]["ID"] = .string(noTrunc ? found.id.description : found.id.shortID) }
        if quiet { rows.forEach { print($0["ID"]?.stringValue ?? "") }; return }
        try output.print(rows)
    }
}

struct ImageInspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Display detailed information on images (JSON).",
        discussion: """
        Examples:
          airgap-import image inspect httpd:2.4
          airgap-import image inspect -f '{{.Id}}' httpd:2.4
          airgap-import image inspect -f '{{json .Config.Labels}}' httpd:2.4
          airgap-import image inspect -f '{{range .RepoTags}}{{.}} {{end}}' httpd:2.4
        """)
    @OptionGroup var globals: GlobalOptions
    @Option(name: .shortAndLong, help: ArgumentHelp("json (the default), or a Go template applied to each image.", valueName: "FORMAT"))
    var format: String?
    @Argument(help: "Image names or IDs.") var images: [String]

    func validate() throws { if images.isEmpty { throw ValidationError("give at least one image to inspect") } }

    func run() async throws {
        var template: GoTemplate?
        if let format, format != "json" {
            do { template = try GoTemplate(format.replacingOccurrences(of: "\\t", with: "\t").replacingOccurrences(of: "\\n", with: "\n")) }
            catch { throw CommandError(.usage, "the --format template cannot be read: \(error)") }
        }
        let store = try globals.openStoreForReading()
        let all = try store.images()
        let sizes = store.unpackedSizes()
        var output: [JSONValue] = []
        var missing: [String] = []
        for text in images {
            guard let image = try store.find(text).first else { missing.append(text); continue }
            let names = all.filter { $0.entry.digest == image.entry.digest }.compactMap(\.reference)
            let repoTags = names.filter { $0.tag != nil }.map { JSONValue.string($0.familiarDescription) }
            let repoDigests = Set(names.map { "\($0.familiarName)@\(image.entry.digest)" }).sorted().map(JSONValue.string)
            var object: [String: JSONValue] = [
                "Id": .string(image.id.description),
                "RepoTags": .array(repoTags),
                "RepoDigests": .array(repoDigests),
                "Parent": .string(""),
                "Comment": .string(""),
                "Created": .string(image.config.created ?? ""),
                "Author": .string(image.config.author ?? ""),
                "Config": image.config.raw["config"] ?? .null,
                "Architecture": .string(image.config.architecture),
                "Os": .string(image.config.os),
                "Size": .int(sizes.size(of: image)),
                "CompressedSize": .int(image.contentSize),
                "RootFS": .object(["Type": .string(image.config.rootfs.type),
                                   "Layers": .array(image.config.rootfs.diffIDs.map { .string($0.description) })]),
                "Descriptor": .object(["mediaType": .string(image.entry.mediaType.rawValue),
                                       "digest": .string(image.entry.digest.description), "size": .int(image.entry.size)]),
                "ManifestDigest": .string(image.manifestDescriptor.digest.description),
                "Platforms": .array(image.platforms.map { .string($0.description) }),
            ]
            if let variant = image.config.variant { object["Variant"] = .string(variant) }
            output.append(.object(object))
        }
        if let template {
            do { for object in output { print(TemplateOutput.printable(try template.render(object))) } }
            catch { throw CommandError(.usage, "the --format template failed: \(error)") }
        } else {
            print(Format.dockerJSON(.array(output)))
        }
        if !missing.isEmpty { throw StoreError.imageNotFound(missing.joined(separator: ", ")) }
    }
}

struct ImageSave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save", abstract: "Save images to a tar archive (OCI layout and Docker archive in one).",
        discussion: """
        Examples:
          airgap-export image save httpd:2.4 -o httpd.tar
          airgap-export save --format oci httpd:2.4 redis:7 > images.tar
        """)
    @OptionGroup var globals: GlobalOptions
    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.") var output: String?
    @Option(help: "docker (OCI layout plus manifest.json) or oci (OCI layout only).") var format: String = "docker"
    @Argument(help: "Image names or IDs.") var images: [String]

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image to save") }
        guard ArchiveSaver.Format(rawValue: format) != nil else { throw ValidationError("--format must be docker or oci, not '\(format)'") }
    }

    func run() async throws {
        if let output { try OutputPath.check(output, option: "-o") }
        let store = try globals.openStoreForReading()
        let selected = try images.map { try store.findOne($0) }
        let saver = ArchiveSaver(store: store)
        let format = ArchiveSaver.Format(rawValue: format)!
        guard let output, output != "-" else {
            guard !isTerminal(1) else {
                throw CommandError(.usage, "refusing to write an archive to a terminal; use -o FILE or redirect standard output")
            }
            _ = try await saver.save(selected, format: format, to: fileSink(fd: 1, path: "standard output"))
            return
        }
        try await FileIO.writeThroughTemporary(output) { fd in
            _ = try await saver.save(selected, format: format, to: fileSink(fd: fd, path: output), path: output)
        }
    }
}

struct ImageLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load", abstract: "Load images from a tar archive (docker save, podman save, skopeo, OCI; gzip or zstd too).",
        discussion: """
        Examples:
          airgap-import image load -i httpd.tar
          airgap-import load < images.tar.gz
          docker save busybox | airgap-import image load
        """)
    @OptionGroup var globals: GlobalOptions
    @Option(name: .shortAndLong, help: "Read from this file instead of standard input.") var input: String?
    @Flag(name: .shortAndLong, help: "Suppress the load output.") var quiet = false
    @OptionGroup var display: ProgressOptions

    func run() async throws {
        let store = try globals.openStore()
        var source: any ByteSource
        let name: String
        if let input, input != "-" {
            guard FileIO.exists(input) else { throw CommandError(.failure, "the archive \(input) does not exist; check the path given to -i") }
            source = try FileSequenceSource(path: input, regularOnly: false) // a pipe (`-i <(zcat …)`) works too
            name = input
        } else {
            guard !isTerminal(0) else { throw CommandError(.usage, "no archive given: use -i FILE or pipe one into standard input") }
            source = try FileSequenceSource(path: "/dev/stdin", regularOnly: false)
            name = "standard input"
        }
        // A file's read pass is shown as a bar on a terminal, as `docker load` shows one; elsewhere
        // only when asked (`--progress plain`): scripts read the "Loaded image" lines alone. A pipe's
        // length is not known, so it has no bar.
        let progress = display.renderer(verb: "Load", passVerb: "Loading", quiet: quiet || (display.progress == .auto && !isTerminal(2)))
        if let input, input != "-", let size = FileIO.fileSize(input), size > 0 {
            progress.handle(.passStarted(EscapedText.escape((input as NSString).lastPathComponent), bytes: size))
            source = CountingSource(source) { progress.handle(.passProgress(bytes: Int64($0))) }
        }
        let loaded: [LoadedImage]
        do {
            loaded = try await ArchiveLoader(store: store, warn: { printErr("warning: " + $0) })
                .load(source: source, sourceName: name, bytes: input.flatMap { $0 == "-" ? nil : FileIO.fileSize($0) })
            progress.handle(.passFinished)
            progress.finish()
        } catch {
            progress.finish()
            throw error
        }
        guard !quiet else { return }
        for image in loaded {
            if let reference = image.reference { print("Loaded image: \(reference.familiarDescription)") }
            else { print("Loaded image ID: \(image.id ?? image.descriptor.digest)") }
        }
    }
}

/// Tells how many bytes each read of a source gave (a read pass's progress).
final class CountingSource: ByteSource {
    private let inner: any ByteSource
    private let counted: (Int) -> Void
    init(_ inner: any ByteSource, counted: @escaping (Int) -> Void) { self.inner = inner; self.counted = counted }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(into: buffer)
        counted(n)
        return n
    }
    var positionDescription: String { inner.positionDescription }
}
