/// Errors about spec values: each message says what is wrong and with which input.
public enum OCIError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidDigest(String, reason: String)
    case invalidReference(String, reason: String)
    case invalidPlatform(String, reason: String)
    case invalidDocument(String, reason: String)

    public var description: String {
        switch self {
        case .invalidDigest(let text, let reason): "invalid digest '\(text)': \(reason)"
        case .invalidReference(let text, let reason): "invalid image reference '\(text)': \(reason)"
        case .invalidPlatform(let text, let reason): "invalid platform '\(text)': \(reason); use OS/ARCH[/VARIANT] such as linux/arm64"
        case .invalidDocument(let what, let reason): "invalid \(what): \(reason)"
        }
    }
}
