import AirgapOCI
import Foundation

/// What the inside already holds (written by `airgap-import receipt`, read by `bundle --since`).
public struct Receipt: Codable, Sendable {
    public struct Describes: Codable, Sendable {
        public var store: String?
        public var registry: String?
        public init(store: String?, registry: String?) { self.store = store; self.registry = registry }
    }
    public struct Image: Codable, Sendable {
        public var reference: String
        public var digest: Digest
        public init(reference: String, digest: Digest) { self.reference = reference; self.digest = digest }
    }
    public var formatVersion: Int = 1
    public var kind: String = "airgap-receipt"
    public var tool: String
    public var describes: Describes
    public var blobs: [Digest]
    public var images: [Image]

    public init(tool: String, describes: Describes, blobs: [Digest], images: [Image]) {
        self.tool = tool; self.describes = describes; self.blobs = blobs.sorted(); self.images = images
    }

    public static func load(path: String) throws -> (Receipt, sha256: String) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BundleError.format("cannot read the receipt \(path); check the path given to --since")
        }
        do {
            let receipt = try JSONDecoder().decode(Receipt.self, from: data)
            guard receipt.kind == "airgap-receipt" else { throw BundleError.format("\(path) is not an airgap receipt") }
            return (receipt, Digest.sha256(of: data).encoded)
        } catch let error as BundleError { throw error } catch {
            throw BundleError.format("\(path) is not a valid airgap receipt (\(error)); write one with 'airgap-import receipt'")
        }
    }
}
