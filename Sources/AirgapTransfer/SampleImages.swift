import AirgapOCI
import AirgapStore
import AirgapTar
import Foundation

/// Generates small, valid, reproducible OCI images straight into a store: the fixtures for the
/// README's demo, the tests and the benchmarks. Images share one base layer, as real ones do.
public struct SampleImages {
    public struct Options: Sendable {
        public var count = 3
        public var baseLayerBytes = 256 << 10
        public var appLayerBytes = 64 << 10
        /// Gzip layers (as registries serve them) or leave them as plain tars (fast for big benchmarks).
        public var compress = true
        public var multiArch = false
        public var namePrefix = "sample/app"
        public var tag = "1.0"
        public init() {}
    }

    public let store: LocalStore
    public init(store: LocalStore) { self.store = store }

    /// Creates the images and tags them; returns their references.
    @discardableResult
    public func generate(_ options: Options) throws -> [Reference] {
        let lease = try store.ingestLease()
        defer { lease.unlock() }
        let base = try makeLayer(files: [("etc/os-release", Data("NAME=\"airgap sample\"\nID=sample\n".utf8)),
                                         ("usr/lib/base.bin", Self.pseudoRandom(seed: "base", count: options.baseLayerBytes))],
                                 compress: options.compress)
        var tags: [(Reference?, Descriptor)] = []
        var references: [Reference] = []
        for i in 1...max(options.count, 1) {
            let app = try makeLayer(files: [("app/app-\(i)/README", Data("sample application \(i)\n".utf8)),
                                            ("app/app-\(i)/data.bin", Self.pseudoRandom(seed: "app-\(i)", count: options.appLayerBytes))],
                                    compress: options.compress)
            let image = try makeImage(layers: [base, app], platform: Platform(os: "linux", architecture: "amd64"), name: "app-\(i)")
            let reference = try Reference(parsing: "\(options.namePrefix)-\(i):\(options.tag)")
            tags.append((reference, image))
            references.append(reference)
        }
        if options.multiArch {
            var children: [Descriptor] = []
            for platform in [Platform(os: "linux", architecture: "amd64"), Platform(os: "linux", architecture: "arm64", variant: "v8")] {
                let layer = try makeLayer(files: [("etc/arch", Data(platform.description.utf8))], compress: options.compress)
                var child = try makeImage(layers: [base, layer], platform: platform, name: "multi")
                child.platform = platform
                children.append(child)
            }
            let indexData = try CanonicalJSON.encode(ImageIndex(mediaType: .ociIndex, manifests: children))
            let digest = try store.ingest(indexData, source: "generated index")
            let reference = try Reference(parsing: "\(options.namePrefix)-multi:\(options.tag)")
            tags.append((reference, Descriptor(mediaType: .ociIndex, digest: digest, size: Int64(indexData.count))))
            references.append(reference)
        }
        try store.setTags(tags)
        return references
    }

    struct Layer { var descriptor: Descriptor; var diffID: Digest; var createdBy: String }

    private func makeLayer(files: [(String, Data)], compress: Bool) throws -> Layer {
        var tar = Data()
        let writer = try TarWriter { tar.append(contentsOf: $0) }
        var directories = Set<String>()
        for (name, data) in files {
            var parts = name.split(separator: "/").dropLast().map(String.init)
            var prefixes: [String] = []
            while !parts.isEmpty { prefixes.insert(parts.joined(separator: "/"), at: 0); parts.removeLast() }
            for dir in prefixes where directories.insert(dir).inserted { try writer.addDirectory(dir) }
            try writer.addFile(name, data: data)
        }
        try writer.close()
        let diffID = Digest.sha256(of: tar)
        let blob = compress ? try Gzip.compress(tar) : tar
        let digest = try store.ingest(blob, source: "generated layer")
        return Layer(descriptor: Descriptor(mediaType: compress ? .ociLayerGzip : .ociLayer, digest: digest, size: Int64(blob.count)),
                     diffID: diffID, createdBy: "COPY \(files.map(\.0).joined(separator: " ")) /")
    }

    private func makeImage(layers: [Layer], platform: Platform, name: String) throws -> Descriptor {
        let created = "2026-01-01T00:00:00Z"
        var history: [JSONValue] = []
        for (i, layer) in layers.enumerated() {
            history.append(.object(["created": .string(created), "created_by": .string(layer.createdBy)]))
            if i == 0 {
                history.append(.object(["created": .string(created), "created_by": .string("ENV PATH=/usr/bin:/bin"),
                                        "empty_layer": .bool(true)]))
            }
        }
        var config: [String: JSONValue] = [
            "architecture": .string(platform.architecture), "os": .string(platform.os), "created": .string(created),
            "config": .object(["Env": .array([.string("PATH=/usr/bin:/bin")]), "Cmd": .array([.string("/bin/sh")]),
                               "Labels": .object(["org.opencontainers.image.title": .string(name)])]),
            "rootfs": .object(["type": .string("layers"), "diff_ids": .array(layers.map { .string($0.diffID.description) })]),
            "history": .array(history),
        ]
        if let variant = platform.variant { config["variant"] = .string(variant) }
        let configData = try CanonicalJSON.encode(JSONValue.object(config))
        let configDigest = try store.ingest(configData, source: "generated config")
        let manifest = ImageManifest(mediaType: .ociManifest,
                                     config: Descriptor(mediaType: .ociConfig, digest: configDigest, size: Int64(configData.count)),
                                     layers: layers.map(\.descriptor))
        let manifestData = try CanonicalJSON.encode(manifest)
        let digest = try store.ingest(manifestData, source: "generated manifest")
        return Descriptor(mediaType: .ociManifest, digest: digest, size: Int64(manifestData.count))
    }

    /// Deterministic bytes (splitmix64), so generated images have the same digests every run.
    public static func pseudoRandom(seed: String, count: Int) -> Data {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for byte in seed.utf8 { state = (state ^ UInt64(byte)) &* 0x100_0000_01B3 }
        var data = Data(count: count)
        data.withUnsafeMutableBytes { raw in
            let words = count / 8
            let p = raw.baseAddress!
            for i in 0..<words {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                p.storeBytes(of: z, toByteOffset: i * 8, as: UInt64.self)
            }
            for i in (words * 8)..<count { p.storeBytes(of: UInt8(truncatingIfNeeded: state >> UInt64((i % 8) * 8)), toByteOffset: i, as: UInt8.self) }
        }
        return data
    }
}
