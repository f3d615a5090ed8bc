import Foundation

/// Sizes for people, as Docker prints them.
public enum ByteCount {
    /// go-units HumanSize: decimal units, 3 significant digits ("72.8MB", "0B").
    public static func human(_ bytes: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB", "PB"]
        var value = Double(bytes)
        var i = 0
        while value >= 1000 && i < units.count - 1 { value /= 1000; i += 1 }
        var text = String(format: "%.3g", value)
        if text.contains("e") { text = String(format: "%.0f", value) }
        return text + units[i]
    }
}
