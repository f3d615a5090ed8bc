import AirgapOCI
import AirgapStore
import AirgapTar
import AirgapTransfer
import ArgumentParser
import Foundation

public struct ImageGroup: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Manage images in the local store.",
        subcommands: [ImageList.self, ImageTag.self, ImageRemove.self, ImagePrune.self, ImageHistory.self,
                      ImageInspect.self, ImageSave.self, ImageLoad.self, ImagePull.self, ImagePush.self])
    public init() {}
}

struct ImageList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List images.", aliases: ["ls"])
    @OptionGroup var globals: GlobalOptions
    @Option(help: "Output format: table or json (one JSON object a line, as docker prints).") var format: String = "table"
    @Flag(name: .shortAndLong, help: "Only show image IDs.") var quiet = false
    @Flag(name: .customLong("no-trunc"), help: "Do not truncate IDs.") var noTrunc = false

    func validate() throws {
        guard ["table", "json"].contains(format) else { throw ValidationError("--format must be table or json, not '\(format)'") }
    }

    func run() async throws {
        let store = try globals.openStoreForReading()
        var problems: [String] = []
        let images = try store.images(problems: &problems).sorted { a, b in
            (a.reference?.familiarName ?? "~", a.reference?.tag ?? "") < (b.reference?.familiarName ?? "~", b.reference?.tag ?? "")
        }
        for problem in problems { printErr("warning: cannot read \(problem)") }
        func id(_ image: StoredImage) -> String { noTrunc ? image.id.description : image.id.shortID }
        if quiet {
            var seen = Set<String>()
            for image in images where seen.insert(id(image)).inserted { print(id(image)) }
            return
        }
        if format == "json" {
            for image in images {
                let created = image.config.createdDate
                let row: [String: String] = [
                    "Repository": image.reference?.familiarName ?? "<none>",
                    "Tag": image.reference?.tag ?? "<none>",
                    "ID": id(image),
                    "Digest": image.entry.digest.description,
                    "CreatedAt": created.map(Format.rfc3339) ?? "",
                    "CreatedSince": Format.since(created),
                    "Size": Format.size(image.contentSize),
                    "Platforms": image.platforms.map(\.description).joined(separator: ","),
                ]
                print(Format.json(row, pretty: false))
            }
            return
        }
        let rows = images.map { image in
            [image.reference?.familiarName ?? "<none>", image.reference?.tag ?? "<none>", id(image),
             Format.since(image.config.createdDate), Format.size(image.contentSize)]
        }
        print(Format.table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows))
    }
}

struct ImageTag: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tag", abstract: "Create a tag TARGET that refers to SOURCE.")
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
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove one or more images.", aliases: ["remove", "rmi"])
    @OptionGroup var globals: GlobalOptions
    @Flag(name: .shortAndLong, help: "Remove every name of an image given by ID.") var force = false
    @Argument(help: "Image names or IDs.") var images: [String]

    func validate() throws { if images.isEmpty { throw ValidationError("give at least one image to remove") } }

    func run() async throws {
        for line in try globals.openStore().remove(images, force: force) { print(line) }
    }
}

struct ImagePrune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove unused images and blobs.")
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
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Show the history of an image.")
    @OptionGroup var globals: GlobalOptions
    @Flag(name: .customLong("no-trunc"), help: "Do not truncate output.") var noTrunc = false
    @Flag(name: .shortAndLong, help: "Only show image IDs.") var quiet = false
    @Argument(help: "Image name or ID.") var image: String

    func run() async throws {
        let store = try globals.openStoreForReading()
        let found = try store.findOne(image)
        var layers = found.manifest.layers.makeIterator()
        var rows: [[String]] = []
        for entry in found.config.history {
            let size: Int64 = entry.emptyLayer == true ? 0 : (layers.next()?.size ?? 0)
            var createdBy = entry.createdBy ?? ""
            if !noTrunc && createdBy.count > 45 { createdBy = String(createdBy.prefix(44)) + "…" }
            rows.append(["<missing>", Format.since(entry.created.flatMap(parseRFC3339)), createdBy, Format.size(size), entry.comment ?? ""])
        }
        rows.reverse()
        if !rows.isEmpty { rows[0][0] = noTrunc ? found.id.description : found.id.shortID }
        if quiet { rows.forEach { print($0[0]) }; return }
        print(Format.table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows))
    }
}

struct ImageInspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Display detailed information on images (JSON).")
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "Image names or IDs.") var images: [String]

    func validate() throws { if images.isEmpty { throw ValidationError("give at least one image to inspect") } }

    func run() async throws {
        let store = try globals.openStoreForReading()
        let all = try store.images()
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
                "Size": .int(image.contentSize),
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
        print(Format.dockerJSON(.array(output)))
        if !missing.isEmpty { throw StoreError.imageNotFound(missing.joined(separator: ", ")) }
    }
}

struct ImageSave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "save", abstract: "Save images to a tar archive (OCI layout and Docker archive in one).")
    @OptionGroup var globals: GlobalOptions
    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.") var output: String?
    @Option(help: "docker (OCI layout plus manifest.json) or oci (OCI layout only).") var format: String = "docker"
    @Argument(help: "Image names or IDs.") var images: [String]

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image to save") }
        guard ArchiveSaver.Format(rawValue: format) != nil else { throw ValidationError("--format must be docker or oci, not '\(format)'") }
    }

    func run() async throws {
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
            _ = try await saver.save(selected, format: format, to: fileSink(fd: fd, path: output))
        }
    }
}

struct ImageLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "load", abstract: "Load images from a tar archive (docker save, podman save, skopeo, OCI; gzip or zstd too).")
    @OptionGroup var globals: GlobalOptions
    @Option(name: .shortAndLong, help: "Read from this file instead of standard input.") var input: String?
    @Flag(name: .shortAndLong, help: "Suppress the load output.") var quiet = false

    func run() async throws {
        let store = try globals.openStore()
        let source: any ByteSource
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
        let loaded = try ArchiveLoader(store: store, warn: { printErr("warning: " + $0) }).load(source: source, sourceName: name)
        guard !quiet else { return }
        for image in loaded {
            if let reference = image.reference { print("Loaded image: \(reference.familiarDescription)") }
            else { print("Loaded image ID: \(image.id ?? image.descriptor.digest)") }
        }
    }
}
