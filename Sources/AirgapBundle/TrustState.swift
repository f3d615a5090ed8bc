import AirgapOCI
import AirgapStore
import enum Crypto.Curve25519
import Foundation

/// A signer the inside trusts: recorded once (`airgap-import trust add NAME.pub`), after the
/// operator compared its fingerprint with the one the outside gave them out of band.
public struct TrustedSigner: Codable, Sendable, Equatable {
    public var fingerprint: String
    public var publicKey: String
    /// The file it was added from, for `trust ls`.
    public var name: String
    public var added: String
}

/// The trusted signers of a store: `STORE/.airgap/trusted-signers.json`, changed under a lock.
public struct TrustedSigners: Sendable {
    public let path: String
    public init(storeRoot: String) { path = storeRoot + "/.airgap/trusted-signers.json" }

    struct File: Codable { var signers: [TrustedSigner] }

    public func list() throws -> [TrustedSigner] {
        guard FileIO.exists(path) else { return [] }
        let data = try FileIO.readFile(path, limit: 4 << 20)
        do { return try JSONDecoder().decode(File.self, from: data).signers } catch {
            throw BundleError.format("\(path) is damaged (\(error)); remove it and add the signers again")
        }
    }

    public func keys() throws -> [Curve25519.Signing.PublicKey] {
        try list().map { try BundleKeys.publicKey(pem: $0.publicKey, path: path) }
    }

    /// Adds the key in `pemPath`; false when it was already trusted.
    @discardableResult
    public func add(pemPath: String, now: Date = Date()) throws -> (signer: TrustedSigner, added: Bool) {
        let key = try BundleKeys.loadPublicKey(path: pemPath)
        let signer = TrustedSigner(fingerprint: BundleKeys.fingerprint(key), publicKey: BundleKeys.publicPEM(key),
                                   name: (pemPath as NSString).lastPathComponent, added: BundleTime.format(now))
        return try update { signers in
            if let existing = signers.first(where: { $0.fingerprint == signer.fingerprint }) { return (existing, false) }
            signers.append(signer)
            return (signer, true)
        }
    }

    /// Removes a signer named by fingerprint (or its unambiguous start), file name or key file.
    public func remove(_ what: String) throws -> TrustedSigner {
        let fingerprint = FileIO.exists(what) ? (try? BundleKeys.fingerprint(BundleKeys.loadPublicKey(path: what))) : nil
        return try update { signers in
            let matches = signers.filter { s in
                s.fingerprint == fingerprint || s.name == what || s.fingerprint == what
                    || what.count >= 12 && (s.fingerprint.hasPrefix(what) || s.fingerprint.hasPrefix("sha256:" + what))
            }
            guard matches.count == 1 else {
                throw BundleError.key(matches.isEmpty ? "no trusted signer matches '\(what)'; 'airgap-import trust ls' lists them"
                                                      : "'\(what)' matches \(matches.count) trusted signers; give the whole fingerprint")
            }
            signers.removeAll { $0.fingerprint == matches[0].fingerprint }
            return matches[0]
        }
    }

    private func update<T>(_ body: (inout [TrustedSigner]) throws -> T) throws -> T {
        try FileIO.makeDirectories((path as NSString).deletingLastPathComponent)
        let lock = try FileLock(path: path + ".lock", exclusive: true)
        defer { lock.unlock() }
        var signers = try list()
        let result = try body(&signers)
        try FileIO.writeAtomically(try CanonicalJSON.encode(File(signers: signers), pretty: true), to: path)
        return result
    }
}

/// Which bundle set each tag, per signer: `STORE/.airgap/tag-history.json`. A signed bundle older
/// than the one that set a tag may not move that tag (no rollback to an older, perhaps vulnerable,
/// image by replaying an old genuine bundle).
public struct TagHistory: Sendable {
    public struct Record: Codable, Sendable, Equatable {
        /// `store`, or `registry HOST[/PREFIX]` for push targets.
        public var destination: String
        public var signer: String
        public var tag: String
        public var digest: String
        public var created: String
        public var bundle: String
    }
    struct File: Codable { var records: [Record] }

    /// A tag the bundle would move back to older content.
    public struct Rollback: Sendable, CustomStringConvertible {
        public var tag: String
        public var previous: Record
        public var bundleCreated: String
        public var description: String {
            "\(tag) was set by a bundle created \(previous.created); this bundle was created \(bundleCreated), earlier, and would move it back"
        }
    }

    public let path: String
    public init(storeRoot: String) { path = storeRoot + "/.airgap/tag-history.json" }

    func records() throws -> [Record] {
        guard FileIO.exists(path) else { return [] }
        let data = try FileIO.readFile(path, limit: 256 << 20)
        do { return try JSONDecoder().decode(File.self, from: data).records } catch {
            throw BundleError.format("\(path) is damaged (\(error)); restore it from a backup, or remove it to forget which bundles set the tags")
        }
    }

    /// The tags (name → digest) that this bundle, by `signer`, would move back.
    public func rollbacks(destination: String, signer: String, created: String, tags: [(String, Digest)]) throws -> [Rollback] {
        let known = Dictionary(try records().filter { $0.destination == destination && $0.signer == signer }.map { ($0.tag, $0) },
                               uniquingKeysWith: { _, b in b })
        let when = BundleTime.parse(created) ?? .distantPast
        return tags.compactMap { tag, digest in
            guard let previous = known[tag], previous.digest != digest.description,
                  when < (BundleTime.parse(previous.created) ?? .distantPast) else { return nil }
            return Rollback(tag: tag, previous: previous, bundleCreated: created)
        }
    }

    /// Remembers that this bundle set these tags.
    public func record(destination: String, signer: String, created: String, bundle: String, tags: [(String, Digest)]) throws {
        try FileIO.makeDirectories((path as NSString).deletingLastPathComponent)
        let lock = try FileLock(path: path + ".lock", exclusive: true)
        defer { lock.unlock() }
        var all = try records()
        for (tag, digest) in tags {
            all.removeAll { $0.destination == destination && $0.signer == signer && $0.tag == tag }
            all.append(Record(destination: destination, signer: signer, tag: tag, digest: digest.description, created: created, bundle: bundle))
        }
        try FileIO.writeAtomically(try CanonicalJSON.encode(File(records: all), pretty: true), to: path)
    }
}

/// Bundle creation times: RFC 3339 in UTC, whole seconds; `SOURCE_DATE_EPOCH` when set, so a
/// reproducible build stays byte-identical.
public enum BundleTime {
    public static func now(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if let epoch = environment["SOURCE_DATE_EPOCH"] {
            guard let seconds = Int64(epoch.trimmingCharacters(in: .whitespaces)), seconds >= 0 else {
                throw BundleError.format("SOURCE_DATE_EPOCH=\(epoch) is not a number of seconds since 1970")
            }
            return format(Date(timeIntervalSince1970: TimeInterval(seconds)))
        }
        return format(Date())
    }

    public static func format(_ date: Date) -> String { RFC3339.format(Int64(date.timeIntervalSince1970.rounded(.down))) }
    public static func parse(_ text: String) -> Date? { RFC3339.parse(text) }
}
