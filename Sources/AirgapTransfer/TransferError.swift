import AirgapOCI
import AirgapStore

/// Failures of a transfer; `isVerificationFailure` maps to exit code 3.
public struct TransferError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case verification, invalidInput, failure }
    public let kind: Kind
    public let message: String
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    public var description: String { message }
    public var isVerificationFailure: Bool { kind == .verification }

    static func bad(_ message: String) -> TransferError { TransferError(.verification, message) }

    /// A source (an archive, a layout) asked for an image it does not hold, with what it holds.
    static func noImage(named reference: String, in what: String, holds: [String]) -> TransferError {
        TransferError(.invalidInput, "\(what) holds no image named \(reference)\(holds.isEmpty ? "" : " (it holds \(holds.joined(separator: ", ")))")")
    }
}
