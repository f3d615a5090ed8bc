import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapSignatures
import Foundation

/// Puts the simple-signing (GPG) signatures a bundle carries where the inside's containers tools
/// look for them: the lookaside store registries.d names for each image's new name (its
/// `lookaside-staging`, else its `lookaside`; only `file://` can be written), so that a
/// `signedBy` policy (with `remapIdentity` for the new names) accepts the pushed images.
public enum LookasideCopy {
    public struct Outcome: Sendable {
        public var written = 0
        public var alreadyThere = 0
        /// Images whose destination has no writable lookaside (an `http(s)://` one).
        public var skipped: [String] = []
    }

    public static func write(_ metadata: BundleMetadata, documents: [Digest: Data], registriesD: RegistriesD,
                             rename: (Reference) -> Reference) throws -> Outcome {
        var outcome = Outcome()
        for image in metadata.images {
            guard let signatures = image.lookasideSignatures, !signatures.isEmpty, let name = try? Reference(parsing: image.reference) else { continue }
            let destination = rename(name)
            let entry = registriesD.entry(for: destination)
            let base = entry?.staging ?? entry?.lookaside ?? LookasideFiles.defaultURL
            guard LookasideFiles.path(base) != nil else {
                outcome.skipped.append("\(destination.familiarDescription) (\(base) cannot be written)")
                continue
            }
            for subject in Set(signatures.map(\.subject)).sorted() {
                let bytes = signatures.filter { $0.subject == subject }.compactMap { documents[$0.digest] }
                let directory = LookasideFiles.path(RegistriesD.directory(base: base, repository: destination, digest: subject))!
                let added = try LookasideFiles.add(bytes, directory: directory)
                outcome.written += added
                outcome.alreadyThere += bytes.count - added
            }
        }
        return outcome
    }
}
