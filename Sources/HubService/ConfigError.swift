import PolicyCore
import PolicyYAML

/// A problem in `hub.yaml` or the tokens file, printed as `path:line:col: error: message`.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(path: String, line: Int, column: Int, message: String) {
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    init(_ diagnostic: Diagnostic) {
        self.init(path: diagnostic.location.file, line: diagnostic.location.line, column: diagnostic.location.column,
                  message: diagnostic.message)
    }

    public var description: String {
        line > 0 ? "\(path):\(line):\(column): error: \(message)" : "\(path): error: \(message)"
    }
}

extension YAMLNode {
    /// The value under `key` of a mapping node.
    subscript(key: String) -> YAMLNode? {
        guard case .mapping(let pairs) = content else { return nil }
        return pairs.first { $0.key.scalarText == key }?.value
    }

    /// The items of a sequence node (none for anything else).
    var items: [YAMLNode] {
        if case .sequence(let items) = content { return items }
        return []
    }

    /// A scalar's text, nil for a null or a collection.
    var scalar: String? { isNull ? nil : scalarText }

    /// The keys of a mapping node with their nodes.
    var pairs: [YAMLPair] {
        if case .mapping(let pairs) = content { return pairs }
        return []
    }
}
