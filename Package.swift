// swift-tools-version:6.1
import PackageDescription

// One settings list for every Swift target, so the whole package is held to the same rules.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "airgap",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "airgap-export", targets: ["airgap-export"]),
        .executable(name: "airgap-import", targets: ["airgap-import"]),
        // Libraries the fuzz package (fuzz/) links; not a public API.
        .library(name: "AirgapOCI", targets: ["AirgapOCI"]),
        .library(name: "AirgapImageSet", targets: ["AirgapImageSet"]),
        .library(name: "AirgapBundle", targets: ["AirgapBundle"]),
        .library(name: "AirgapTar", targets: ["AirgapTar"]),
        .library(name: "AirgapContent", targets: ["AirgapContent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C libraries from Debian's -dev packages.
        .systemLibrary(name: "CArchive", path: "Sources/CArchive", pkgConfig: "libarchive",
                       providers: [.apt(["libarchive-dev"])]),

        // Small C helpers for Linux calls Swift's Glibc module leaves out.
        .target(name: "CShims", path: "Sources/CShims"),
        // Spec value types: no I/O.
        .target(name: "AirgapOCI",
                dependencies: [.product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: swiftSettings),
        // Sources, sinks, the one graph walk, the one verifying stream, plans and the copy engine:
        // everything a transfer is, with no I/O of its own.
        .target(name: "AirgapContent", dependencies: ["AirgapOCI"], swiftSettings: swiftSettings),
        // Tar streams through libarchive: no knowledge of images.
        .target(name: "AirgapTar", dependencies: ["CArchive"], swiftSettings: swiftSettings),
        // The OCI image layout store: the one place bytes become trusted.
        .target(name: "AirgapStore",
                dependencies: ["AirgapOCI", "AirgapContent", "AirgapTar", "CShims", .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: swiftSettings),
        // Registry client (distribution spec), auth, TLS, credentials.
        .target(name: "AirgapRegistry",
                dependencies: [
                    "AirgapOCI", "AirgapContent", "AirgapTar",
                    .product(name: "AsyncHTTPClient", package: "async-http-client"),
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOPosix", package: "swift-nio"),
                    .product(name: "NIOFoundationCompat", package: "swift-nio"),
                    .product(name: "NIOSSL", package: "swift-nio-ssl"),
                    .product(name: "Logging", package: "swift-log"),
                ],
                swiftSettings: swiftSettings),
        // Bundle format: writer, reader, SHA256SUMS, signatures. No network code.
        .target(name: "AirgapBundle",
                dependencies: ["AirgapOCI", "AirgapContent", "AirgapStore", "AirgapTar", "CShims",
                               .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: swiftSettings),
        // `serve`: the read side of the distribution API over a verified bundle or the store.
        .target(name: "AirgapServe",
                dependencies: ["AirgapOCI", "AirgapContent",
                               .product(name: "NIOCore", package: "swift-nio"),
                               .product(name: "NIOPosix", package: "swift-nio"),
                               .product(name: "NIOHTTP1", package: "swift-nio"),
                               .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                               .product(name: "NIOSSL", package: "swift-nio-ssl")],
                swiftSettings: swiftSettings),
        // Image signatures: cosign key-based signatures checked over any content source; containers'
        // registries.d and lookaside stores for simple-signing (GPG) signatures.
        .target(name: "AirgapSignatures",
                dependencies: ["AirgapOCI", "AirgapContent", .product(name: "Crypto", package: "swift-crypto"), .product(name: "Yams", package: "Yams")],
                swiftSettings: swiftSettings),
        // Build contexts: .dockerignore and the Dockerfile as Docker's builder reads them.
        .target(name: "AirgapContext", dependencies: ["AirgapTar"], swiftSettings: swiftSettings),
        // The export manifest reader (YAML ImageSet or a plain list): no I/O beyond reading the file.
        .target(name: "AirgapImageSet",
                dependencies: ["AirgapOCI", "AirgapContext", .product(name: "Yams", package: "Yams")],
                swiftSettings: swiftSettings),
        // The commands' transfers: each a plan over the copy engine between two endpoints.
        .target(name: "AirgapTransfer",
                dependencies: ["AirgapOCI", "AirgapContent", "AirgapStore", "AirgapTar", "AirgapRegistry", "AirgapBundle", "AirgapImageSet", "AirgapSignatures", "AirgapContext"],
                swiftSettings: swiftSettings),
        // Commands shared by both executables.
        .target(name: "AirgapCLI",
                dependencies: ["AirgapOCI", "AirgapContent", "AirgapStore", "AirgapTransfer", "AirgapRegistry", "AirgapBundle", "AirgapImageSet", "AirgapServe", "AirgapSignatures",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")],
                swiftSettings: swiftSettings),
        .executableTarget(name: "airgap-export", dependencies: ["AirgapCLI"], swiftSettings: swiftSettings),
        .executableTarget(name: "airgap-import", dependencies: ["AirgapCLI"], swiftSettings: swiftSettings),

        // Helpers shared by the test targets: temp dirs, running the built binaries, crafting tars.
        .target(name: "AirgapTestSupport", dependencies: ["AirgapTar", "AirgapOCI"], path: "Tests/AirgapTestSupport",
                swiftSettings: swiftSettings),
        .testTarget(name: "AirgapOCITests", dependencies: ["AirgapOCI"], swiftSettings: swiftSettings),
        .testTarget(name: "AirgapServeTests", dependencies: ["AirgapServe", "AirgapContent", "AirgapOCI", "AirgapTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "AirgapContentTests", dependencies: ["AirgapContent", "AirgapOCI"], swiftSettings: swiftSettings),
        .testTarget(name: "AirgapContextTests", dependencies: ["AirgapContext", "AirgapTar", "AirgapTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "AirgapSignaturesTests", dependencies: ["AirgapSignatures", "AirgapContent", "AirgapOCI", .product(name: "Crypto", package: "swift-crypto")],
                    swiftSettings: swiftSettings),
        .testTarget(name: "AirgapStoreTests", dependencies: ["AirgapStore", "AirgapContent", "AirgapOCI", "AirgapTransfer", "AirgapTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "AirgapTransferTests",
                    dependencies: ["AirgapTransfer", "AirgapContent", "AirgapBundle", "AirgapImageSet", "AirgapStore", "AirgapOCI", "AirgapTar", "AirgapTestSupport",
                                   "AirgapSignatures", .product(name: "Crypto", package: "swift-crypto"),
                                   .product(name: "NIOCore", package: "swift-nio")],
                    swiftSettings: swiftSettings),
        .testTarget(name: "AirgapRegistryTests",
                    dependencies: ["AirgapRegistry", "AirgapContent", "AirgapTransfer", "AirgapStore", "AirgapOCI", "AirgapTestSupport"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "AirgapCLITests", dependencies: ["AirgapCLI", "AirgapOCI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                    swiftSettings: swiftSettings),
        .testTarget(name: "EndToEndTests", dependencies: ["AirgapOCI", "AirgapStore", "AirgapTar", "AirgapTestSupport"], swiftSettings: swiftSettings),
    ]
)
