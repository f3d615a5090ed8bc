import AirgapOCI
import AirgapStore
import ArgumentParser
import Foundation

public struct SystemGroup: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "system", abstract: "Manage the local store.",
                                                           subcommands: [SystemDiskUsage.self])
    public init() {}
}

struct SystemDiskUsage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "df", abstract: "Show disk usage of the store.")
    @OptionGroup var globals: GlobalOptions
    @Flag(name: .shortAndLong, help: "Show per-image usage with shared and unique sizes.") var verbose = false

    func run() async throws {
        let usage = try globals.openStoreForReading().diskUsage()
        let percent = usage.totalBytes > 0 ? Int((Double(usage.reclaimableBytes) / Double(usage.totalBytes) * 100).rounded()) : 0
        if !verbose {
            print(Format.table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
                               [["Images", "\(usage.imageCount)", "0", Format.size(usage.totalBytes),
                                 "\(Format.size(usage.reclaimableBytes)) (\(percent)%)"]]))
            return
        }
        print("Images space usage:\n")
        let rows = usage.perImage.map { p in
            [p.image.reference?.familiarName ?? "<none>", p.image.reference?.tag ?? "<none>", p.image.id.shortID,
             Format.since(p.image.config.createdDate), Format.size(p.size), Format.size(p.sharedSize), Format.size(p.uniqueSize), "0"]
        }
        print(Format.table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"], rows))
        print("\nTotal: \(Format.size(usage.totalBytes)), referenced: \(Format.size(usage.referencedBytes)), reclaimable: \(Format.size(usage.reclaimableBytes)) (\(percent)%)")
    }
}
