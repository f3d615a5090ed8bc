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

    /// The signatures of a verified read: only for names index.json gives (bundle.json lists them,
    /// and only what index.json names gets a name inside), their bytes from the verified documents.
    public static func write(_ read: BundleReadResult, registriesD: RegistriesD, rename: (Reference) -> Reference) throws -> Outcome {
        var outcome = Outcome()
        let named = Set(read.index?.manifests.compactMap(\.refName) ?? [])
        let documents = read.documents
        for image in read.metadata?.images ?? [] where named.contains(image.reference) {
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
