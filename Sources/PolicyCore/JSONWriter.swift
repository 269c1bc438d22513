/// Prints values as JSON: compact (for hashing and wire bodies) or indented (for people and pipelines).
public enum JSONWriter {
    /// Compact JSON, keys in the value's own order.
    public static func compact(_ value: Value) -> String {
        var out = ""
        write(value, into: &out, indent: nil, level: 0)
        return out
    }

    /// JSON indented by two spaces, ending in a newline.
    public static func pretty(_ value: Value) -> String {
        var out = ""
        write(value, into: &out, indent: "  ", level: 0)
        out += "\n"
        return out
    }

    static func write(_ value: Value, into out: inout String, indent: String?, level: Int) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .number(let n): out += jsonNumber(n)
        case .string(let s): writeString(s, into: &out)
        case .list(let items):
            if items.isEmpty {
                out += "[]"
                return
            }
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                newline(&out, indent: indent, level: level + 1)
                write(item, into: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent: indent, level: level)
            out += "]"
        case .map(let entries):
            if entries.isEmpty {
                out += "{}"
                return
            }
            out += "{"
            for (index, entry) in entries.enumerated() {
                if index > 0 { out += "," }
                newline(&out, indent: indent, level: level + 1)
                writeString(entry.key, into: &out)
                out += indent == nil ? ":" : ": "
                write(entry.value, into: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent: indent, level: level)
            out += "}"
        }
    }

    private static func newline(_ out: inout String, indent: String?, level: Int) {
        guard let indent else { return }
        out += "\n"
        for _ in 0..<level { out += indent }
    }

    /// YAML floats such as `.inf` have no JSON form; they are written as strings.
    private static func jsonNumber(_ text: String) -> String {
        if text.contains("inf") || text.contains("Inf") || text.contains("INF") || text.lowercased().contains("nan") {
            var out = ""
            writeString(text, into: &out)
            return out
        }
        var t = Substring(text)
        if t.hasPrefix("+") { t = t.dropFirst() }
        if t.hasPrefix(".") { return "0" + t }
        if t.hasPrefix("-.") { return "-0" + t.dropFirst() }
        if t.hasSuffix(".") { return String(t) + "0" }
        return String(t)
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
