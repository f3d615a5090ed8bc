/// One `WWW-Authenticate` challenge: `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
public struct AuthChallenge: Sendable, Equatable {
    public var scheme: String
    public var parameters: [String: String]

    public var realm: String? { parameters["realm"] }
    public var service: String? { parameters["service"] }
    public var scope: String? { parameters["scope"] }

    /// Parses a header value that may hold several challenges.
    public static func parse(_ header: String) -> [AuthChallenge] {
        var result: [AuthChallenge] = []
        var chars = Array(header)
        var i = 0
        func skipSpaces() { while i < chars.count && (chars[i] == " " || chars[i] == ",") { i += 1 } }
        func token() -> String {
            let start = i
            while i < chars.count && chars[i] != " " && chars[i] != "=" && chars[i] != "," { i += 1 }
            return String(chars[start..<i])
        }
        chars.append(" ")
        while true {
            skipSpaces()
            guard i < chars.count - 1 else { break }
            let scheme = token()
            guard !scheme.isEmpty else { break }
            var challenge = AuthChallenge(scheme: scheme.lowercased(), parameters: [:])
            // Parameters: key=value or key="quoted, value", until the next bare token (a new scheme).
            while true {
                skipSpaces()
                let save = i
                let key = token()
                guard !key.isEmpty, i < chars.count, chars[i] == "=" else { i = save; break }
                i += 1
                var value = ""
                if i < chars.count && chars[i] == "\"" {
                    i += 1
                    while i < chars.count && chars[i] != "\"" {
                        if chars[i] == "\\" && i + 1 < chars.count { i += 1 }
                        value.append(chars[i]); i += 1
                    }
                    i += 1
                } else {
                    while i < chars.count && chars[i] != "," && chars[i] != " " { value.append(chars[i]); i += 1 }
                }
                challenge.parameters[key.lowercased()] = value
            }
            result.append(challenge)
        }
        return result
    }
}
