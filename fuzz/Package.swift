// swift-tools-version:6.1
// libFuzzer targets for airgap's parsers. Built only by scripts/fuzz.sh, with
// `swift build --sanitize=fuzzer --sanitize=address`, so the main build never pays for them.
import PackageDescription

let swiftSettings: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "airgap-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "airgap", path: "..")],
    targets: [
        .executableTarget(name: "FuzzReference", dependencies: [.product(name: "AirgapOCI", package: "airgap")],
                          swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzManifest", dependencies: [.product(name: "AirgapOCI", package: "airgap"),
                                                               .product(name: "AirgapContent", package: "airgap")],
                          swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzImageSet", dependencies: [.product(name: "AirgapImageSet", package: "airgap"),
                                                               .product(name: "AirgapOCI", package: "airgap")],
                          swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzCanonicalTar", dependencies: [.product(name: "AirgapTar", package: "airgap"),
                                                                   .product(name: "AirgapOCI", package: "airgap")],
                          swiftSettings: swiftSettings),
        .executableTarget(name: "FuzzBundleReader", dependencies: [.product(name: "AirgapBundle", package: "airgap")],
                          swiftSettings: swiftSettings),
    ]
)
