import AirgapOCI
import AirgapStore
import ArgumentParser
import Foundation

public struct SystemGroup: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "system", abstract: "Manage the local store.",
                                                           discussion: "Examples:\n  airgap-import system df\n  airgap-import system df -v",
                                                           subcommands: [SystemDiskUsage.self])
    public init() {}
}

struct SystemDiskUsage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "df", abstract: "Show disk usage of the store.",
        discussion: """
        As in Docker: SIZE is the images unpacked (shared layers once), ACTIVE the images containers \
        use (none: the store runs no containers), RECLAIMABLE what 'image prune -a' would free. \
        -v adds each image's shared and unique sizes, the compressed bytes the store holds, and the \
        blobs no image uses ('image prune' frees those). Template fields: .Type .TotalCount .Active \
        .Size .Reclaimable .OnDisk.

        Examples:
          airgap-import system df
          airgap-import system df -v
          airgap-import system df --format '{{.Type}}: {{.Size}} ({{.OnDisk}} on disk)'
        """)
    @OptionGroup var globals: GlobalOptions
    @Flag(name: .shortAndLong, help: "Show per-image usage with shared and unique sizes.") var verbose = false
    @Option(help: ArgumentHelp("table, json, or a Go template.", valueName: "FORMAT")) var format: String = "table"

    static let fields = ["Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE",
                         "OnDisk": "ON DISK"]

    func run() async throws {
        let output = try OutputFormat(format, fields: Self.fields, defaultColumns: ["Type", "TotalCount", "Active", "Size", "Reclaimable"])
        let usage = try globals.openStoreForReading().diskUsage()
        let percent = usage.imageCount > 0 ? 100 : 0
        let summary: [String: JSONValue] = [
            "Type": .string("Images"), "TotalCount": .string("\(usage.imageCount)"), "Active": .string("0"),
            "Size": .string(Format.size(usage.unpackedBytes)),
            "Reclaimable": .string("\(Format.size(usage.unpackedBytes)) (\(percent)%)"),
            "OnDisk": .string(Format.size(usage.totalBytes)),
        ]
        guard verbose else { try output.print([summary]); return }
        print("Images space usage:\n")
        let rows = usage.perImage.map { p in
            [p.image.reference?.familiarName ?? "<none>", p.image.reference?.tag ?? "<none>", p.image.id.shortID,
             Format.since(p.image.config.createdDate), Format.size(p.size), Format.size(p.sharedSize), Format.size(p.uniqueSize), "0",
             Format.size(p.compressedSize)]
        }
        print(Format.table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS", "COMPRESSED"], rows))
        print("\nOn disk: \(Format.size(usage.totalBytes)) in blobs, \(Format.size(usage.unreferencedBytes)) of them used by no image ('image prune' frees them)")
    }
}
