/// A Kubernetes label selector over cluster labels (plus `environment`), e.g.
/// `environment=production,region in (eu,us),!canary`.
public struct LabelSelector: Sendable, Hashable, CustomStringConvertible {
    /// One requirement of a selector.
    public enum Requirement: Sendable, Hashable {
        case equals(String, String)
        case notEquals(String, String)
        case isIn(String, [String])
        case notIn(String, [String])
        case exists(String)
        case doesNotExist(String)
    }

    /// A parse error with the 1-based column in the selector text where it was found.
    public struct ParseError: Error, Sendable, Equatable {
        public var column: Int
        public var message: String
    }

    public var requirements: [Requirement]
    public var text: String

    /// The selector that matches every cluster.
    public static let everything = LabelSelector(requirements: [], text: "")

    init(requirements: [Requirement], text: String) {
        self.requirements = requirements
        self.text = text
    }

    public var description: String { text }

    /// Whether `labels` satisfy every requirement.
    public func matches(_ labels: [String: String]) -> Bool {
        for requirement in requirements {
            switch requirement {
            case .equals(let k, let v): if labels[k] != v { return false }
            case .notEquals(let k, let v): if labels[k] == v { return false }
            case .isIn(let k, let values):
                guard let v = labels[k], values.contains(v) else { return false }
            case .notIn(let k, let values):
                if let v = labels[k], values.contains(v) { return false }
            case .exists(let k): if labels[k] == nil { return false }
            case .doesNotExist(let k): if labels[k] != nil { return false }
            }
        }
        return true
    }

    /// Parses the Kubernetes selector syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`,
    /// separated by commas.
    public static func parse(_ text: String) throws(ParseError) -> LabelSelector {
        var scanner = SelectorScanner(Array(text.unicodeScalars))
        var requirements: [Requirement] = []
        scanner.skipSpaces()
        if scanner.atEnd { return LabelSelector(requirements: [], text: text) }
        while true {
            requirements.append(try scanner.requirement())
            scanner.skipSpaces()
            if scanner.atEnd { break }
            guard scanner.take(",") else {
                throw ParseError(column: scanner.column, message: "expected ',' between requirements")
            }
        }
        return LabelSelector(requirements: requirements, text: text)
    }

    /// Checks label keys and values as Kubernetes does: optional DNS prefix, then a name of at most 63
    /// characters of alphanumerics, `-`, `_` and `.`, starting and ending with an alphanumeric.
    public static func isValidLabelKey(_ key: String) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return isValidLabelName(Substring(key))
        case 2: return !parts[0].isEmpty && parts[0].count <= 253 && isValidLabelName(parts[1])
        default: return false
        }
    }

    /// A label value: empty, or a label name.
    public static func isValidLabelValue(_ value: String) -> Bool {
        value.isEmpty || isValidLabelName(Substring(value))
    }

    static func isValidLabelName(_ name: Substring) -> Bool {
        guard !name.isEmpty, name.count <= 63, let first = name.unicodeScalars.first,
              let last = name.unicodeScalars.last, isAlnum(first), isAlnum(last) else { return false }
        return name.unicodeScalars.allSatisfy { isAlnum($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }

    static func isAlnum(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
    }
}

private struct SelectorScanner {
    let chars: [Unicode.Scalar]
    var index = 0

    init(_ chars: [Unicode.Scalar]) { self.chars = chars }

    var atEnd: Bool { index >= chars.count }
    var column: Int { index + 1 }

    mutating func skipSpaces() {
        while index < chars.count, chars[index] == " " { index += 1 }
    }

    mutating func take(_ s: String) -> Bool {
        let scalars = Array(s.unicodeScalars)
        guard index + scalars.count <= chars.count, Array(chars[index..<index + scalars.count]) == scalars else {
            return false
        }
        index += scalars.count
        return true
    }

    static func isWordChar(_ c: Unicode.Scalar) -> Bool {
        LabelSelector.isAlnum(c) || c == "-" || c == "_" || c == "." || c == "/"
    }

    mutating func word(_ what: String) throws(LabelSelector.ParseError) -> String {
        skipSpaces()
        let start = index
        while index < chars.count, SelectorScanner.isWordChar(chars[index]) { index += 1 }
        guard index > start else {
            throw LabelSelector.ParseError(column: column, message: "expected \(what)")
        }
        return String(String.UnicodeScalarView(chars[start..<index]))
    }

    mutating func key() throws(LabelSelector.ParseError) -> String {
        skipSpaces()
        let at = column
        let k = try word("a label key")
        guard LabelSelector.isValidLabelKey(k) else {
            throw LabelSelector.ParseError(column: at, message: "'\(k)' is not a valid label key")
        }
        return k
    }

    mutating func value() throws(LabelSelector.ParseError) -> String {
        skipSpaces()
        let at = column
        let start = index
        while index < chars.count, SelectorScanner.isWordChar(chars[index]) { index += 1 }
        let v = String(String.UnicodeScalarView(chars[start..<index]))
        guard LabelSelector.isValidLabelValue(v), !v.contains("/") else {
            throw LabelSelector.ParseError(column: at, message: "'\(v)' is not a valid label value")
        }
        return v
    }

    mutating func valueSet() throws(LabelSelector.ParseError) -> [String] {
        skipSpaces()
        guard take("(") else { throw LabelSelector.ParseError(column: column, message: "expected '('") }
        var values: [String] = []
        while true {
            values.append(try value())
            skipSpaces()
            if take(")") { break }
            guard take(",") else {
                throw LabelSelector.ParseError(column: column, message: "expected ',' or ')' in a value set")
            }
        }
        return values
    }

    mutating func requirement() throws(LabelSelector.ParseError) -> LabelSelector.Requirement {
        skipSpaces()
        if take("!") { return .doesNotExist(try key()) }
        let k = try key()
        skipSpaces()
        if take("!=") { return .notEquals(k, try value()) }
        if take("==") || take("=") { return .equals(k, try value()) }
        let save = index
        if atEnd || chars[index] == "," { return .exists(k) }
        let op = try word("an operator (=, !=, in, notin)")
        switch op {
        case "in": return .isIn(k, try valueSet())
        case "notin": return .notIn(k, try valueSet())
        default:
            index = save
            throw LabelSelector.ParseError(column: column, message: "unknown operator '\(op)'; expected =, !=, in or notin")
        }
    }
}
