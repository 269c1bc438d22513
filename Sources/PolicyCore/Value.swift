/// A generic YAML/JSON value: the wire form of every object, and the model of kinds the hub passes
/// through unchanged (admission, DLP, WAF, response rules, group definitions).
public indirect enum Value: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    /// A number that is not an integer, kept as written so that it prints back unchanged.
    case number(String)
    case string(String)
    case list([Value])
    /// A mapping with string keys, in the order given.
    case map([MapEntry])

    /// One key of a mapping.
    public struct MapEntry: Sendable, Hashable {
        public var key: String
        public var value: Value
        public init(_ key: String, _ value: Value) {
            self.key = key
            self.value = value
        }
    }

    /// The value of `key` when this is a mapping that has it.
    public subscript(key: String) -> Value? {
        guard case .map(let entries) = self else { return nil }
        for entry in entries where entry.key == key { return entry.value }
        return nil
    }

    /// The string when this is a string scalar.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The same value with every mapping's keys sorted: the canonical form used for output and hashing.
    public var canonical: Value {
        switch self {
        case .null, .bool, .int, .number, .string: return self
        case .list(let items): return .list(items.map(\.canonical))
        case .map(let entries):
            return .map(entries.map { MapEntry($0.key, $0.value.canonical) }.sorted { $0.key < $1.key })
        }
    }
}

/// Builds a mapping from entries, leaving out keys whose value is nil.
public struct ValueMapBuilder {
    public private(set) var entries: [Value.MapEntry] = []
    public init() {}
    public mutating func set(_ key: String, _ value: Value?) {
        if let value { entries.append(Value.MapEntry(key, value)) }
    }
    public var value: Value { .map(entries) }
}
