import PolicyCore

/// A composed YAML node with the 1-based line and column where it starts.
public struct YAMLNode: Sendable {
    /// How a scalar was written; plain scalars are resolved (null, bool, int), others are strings.
    public enum ScalarStyle: Sendable {
        case plain
        case quoted
    }

    public enum Content: Sendable {
        case scalar(String, ScalarStyle)
        case sequence([YAMLNode])
        case mapping([YAMLPair])
    }

    public var content: Content
    public var line: Int32
    public var column: Int32
    /// An explicit tag such as `tag:yaml.org,2002:str`, when one was written.
    public var tag: String?

    public init(_ content: Content, line: Int32, column: Int32, tag: String? = nil) {
        self.content = content
        self.line = line
        self.column = column
        self.tag = tag
    }

    /// The node's location in `file`.
    public func location(in file: String) -> SourceLocation {
        SourceLocation(file: file, line: Int(line), column: Int(column))
    }

    /// What kind of node this is, in words, for error messages.
    public var kindName: String {
        switch content {
        case .scalar: return "a scalar"
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }

    /// The generic value of this node, with plain scalars resolved (YAML 1.2 core schema).
    public var value: Value {
        switch content {
        case .scalar(let text, let style): return YAMLNode.resolve(text, style: style, tag: tag)
        case .sequence(let items): return .list(items.map(\.value))
        case .mapping(let pairs):
            return .map(pairs.map { Value.MapEntry($0.key.scalarText ?? "", $0.value.value) })
        }
    }

    /// The text of a scalar node, whatever it resolves to.
    public var scalarText: String? {
        if case .scalar(let text, _) = content { return text }
        return nil
    }

    /// True for a plain `null`, `~` or empty scalar.
    public var isNull: Bool {
        if case .scalar(let text, .plain) = content, tag == nil { return YAMLNode.isNullText(text) }
        return false
    }

    static func isNullText(_ text: String) -> Bool {
        text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }

    /// Resolves a scalar the way the YAML 1.2 core schema does.
    public static func resolve(_ text: String, style: ScalarStyle, tag: String?) -> Value {
        if let tag, tag.hasSuffix(":str") { return .string(text) }
        guard style == .plain else { return .string(text) }
        if isNullText(text) { return .null }
        switch text {
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        if let int = parseInt(text) { return .int(int) }
        if looksLikeFloat(text) { return .number(text) }
        return .string(text)
    }

    static func parseInt(_ text: String) -> Int? {
        var utf8 = Substring(text)
        if utf8.hasPrefix("0x") { return Int(utf8.dropFirst(2), radix: 16) }
        if utf8.hasPrefix("0o") { return Int(utf8.dropFirst(2), radix: 8) }
        if utf8.hasPrefix("+") { utf8 = utf8.dropFirst() }
        guard let first = utf8.utf8.first, first == UInt8(ascii: "-") || (first >= 48 && first <= 57) else {
            return nil
        }
        return Int(utf8)
    }

    static func looksLikeFloat(_ text: String) -> Bool {
        switch text {
        case ".inf", ".Inf", ".INF", "+.inf", "-.inf", "-.Inf", "+.Inf", ".nan", ".NaN", ".NAN": return true
        default: break
        }
        var sawDigit = false
        var sawDotOrExp = false
        var index = text.utf8.startIndex
        let bytes = text.utf8
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            index = bytes.index(after: index)
        }
        var exponent = false
        while index < bytes.endIndex {
            let b = bytes[index]
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): sawDigit = true
            case UInt8(ascii: "."):
                if sawDotOrExp { return false }
                sawDotOrExp = true
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                if exponent || !sawDigit { return false }
                exponent = true
                sawDotOrExp = true
                let next = bytes.index(after: index)
                if next < bytes.endIndex, bytes[next] == UInt8(ascii: "-") || bytes[next] == UInt8(ascii: "+") {
                    index = next
                }
            default: return false
            }
            index = bytes.index(after: index)
        }
        return sawDigit && sawDotOrExp
    }
}

/// One key and value of a mapping node.
public struct YAMLPair: Sendable {
    public var key: YAMLNode
    public var value: YAMLNode
}
