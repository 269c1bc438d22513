/// Prints values as JSON: compact (for hashing and wire bodies) or indented (for people and pipelines).
/// Works on UTF-8 bytes, so that large renders do not pay for character-by-character string building.
public enum JSONWriter {
    /// Compact JSON, keys in the value's own order.
    public static func compact(_ value: Value) -> String {
        String(decoding: compactBytes(value), as: UTF8.self)
    }

    /// Compact JSON as UTF-8 bytes.
    public static func compactBytes(_ value: Value) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(value, into: &out, indent: false, level: 0)
        return out
    }

    /// JSON indented by two spaces, ending in a newline.
    public static func pretty(_ value: Value) -> String {
        var out: [UInt8] = []
        write(value, into: &out, indent: true, level: 0)
        out.append(10)
        return String(decoding: out, as: UTF8.self)
    }

    static func write(_ value: Value, into out: inout [UInt8], indent: Bool, level: Int) {
        switch value {
        case .null: out += "null".utf8
        case .bool(let b): out += (b ? "true" : "false").utf8
        case .int(let i): out += String(i).utf8
        case .number(let n): out += jsonNumber(n).utf8
        case .string(let s): writeString(s, into: &out)
        case .list(let items):
            if items.isEmpty {
                out += "[]".utf8
                return
            }
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                newline(&out, indent: indent, level: level + 1)
                write(item, into: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent: indent, level: level)
            out.append(UInt8(ascii: "]"))
        case .map(let entries):
            if entries.isEmpty {
                out += "{}".utf8
                return
            }
            out.append(UInt8(ascii: "{"))
            for (index, entry) in entries.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                newline(&out, indent: indent, level: level + 1)
                writeString(entry.key, into: &out)
                out.append(UInt8(ascii: ":"))
                if indent { out.append(UInt8(ascii: " ")) }
                write(entry.value, into: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent: indent, level: level)
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func newline(_ out: inout [UInt8], indent: Bool, level: Int) {
        guard indent else { return }
        out.append(10)
        for _ in 0..<level { out += "  ".utf8 }
    }

    /// YAML floats such as `.inf` have no JSON form; they are written as strings.
    private static func jsonNumber(_ text: String) -> String {
        if text.contains("inf") || text.contains("Inf") || text.contains("INF") || text.lowercased().contains("nan") {
            var out: [UInt8] = []
            writeString(text, into: &out)
            return String(decoding: out, as: UTF8.self)
        }
        var t = Substring(text)
        if t.hasPrefix("+") { t = t.dropFirst() }
        if t.hasPrefix(".") { return "0" + t }
        if t.hasPrefix("-.") { return "-0" + t.dropFirst() }
        if t.hasSuffix(".") { return String(t) + "0" }
        return String(t)
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += "\\\"".utf8
            case UInt8(ascii: "\\"): out += "\\\\".utf8
            case 10: out += "\\n".utf8
            case 13: out += "\\r".utf8
            case 9: out += "\\t".utf8
            case 0..<0x20:
                out += "\\u00".utf8
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0f)])
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
