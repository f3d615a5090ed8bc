import AirgapBundle
import ArgumentParser
import Foundation

/// `airgap-import trust add|ls|rm`: the signers verify, load, push and audit accept without --key.
struct TrustGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "Pin the signers whose bundles are accepted without --key.",
        discussion: """
        Compare the fingerprint that 'trust add' prints with the one the exporting side gave you
        out of band (by phone, on paper), not with a key file that came on the same medium as the
        bundle: whoever could change the bundle could change that file too.

        Examples:
          airgap-import trust add site.pub
          airgap-import trust ls
          airgap-import trust rm sha256:3f1c…
        """,
        subcommands: [TrustAdd.self, TrustList.self, TrustRemove.self])

    struct TrustAdd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add", abstract: "Trust the signer of a public key (PEM).",
            discussion: """
            Examples:
              airgap-import trust add site-a.pub
            """)
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "The public key file (NAME.pub).") var key: String

        func run() async throws {
            let (signer, added) = try TrustedSigners(storeRoot: globals.storeRoot).add(pemPath: key)
            print("\(added ? "Trusted" : "Already trusted"): \(signer.fingerprint) (\(signer.name))")
            if added { printErr("Check this fingerprint against the one the exporting side gave you out of band.") }
        }
    }

    struct TrustList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List the trusted signers.",
            discussion: """
            Examples:
              airgap-import trust ls
              airgap-import trust ls --format json
            """, aliases: ["list"])
        @OptionGroup var globals: GlobalOptions
        @Option(help: "table or json.") var format = "table"

        func run() async throws {
            let signers = try TrustedSigners(storeRoot: globals.storeRoot).list()
            if format == "json" { print(Format.json(signers)); return }
            print("FINGERPRINT".padding(toLength: 73, withPad: " ", startingAt: 0) + "  ADDED                 FROM")
            for s in signers { print("\(s.fingerprint)  \(s.added)  \(s.name)") }
        }
    }

    struct TrustRemove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Stop trusting a signer (by fingerprint, its start, or key file).",
            discussion: """
            Examples:
              airgap-import trust rm 3f2a9c1b7d4e
              airgap-import trust rm site-a.pub
            """, aliases: ["remove"])
        @OptionGroup var globals: GlobalOptions
        @Argument(help: "Fingerprint (or at least its first 12 characters), or the key file.") var signer: String

        func run() async throws {
            let removed = try TrustedSigners(storeRoot: globals.storeRoot).remove(signer)
            print("Removed: \(removed.fingerprint) (\(removed.name))")
        }
    }
}
