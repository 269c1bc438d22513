import PolicyCore

/// Decodes composed YAML into the NeuVector model, collecting a located diagnostic for every
/// problem of shape (wrong node kind, missing field, unknown enum value, unknown field).
///
/// Semantic checks (names, ports, coverage, uniqueness) belong to `PolicyValidator` in `PolicyCore`.
public struct PolicyDecoder {
    public let file: String
    public private(set) var diagnostics: [Diagnostic] = []

    public init(file: String) { self.file = file }

    /// Reads every object of a file: single documents, several documents, and `kind: List` wrappers.
    public static func decodeFile(_ bytes: [UInt8], file: String, limits: YAMLLimits = .default)
        -> (objects: [PolicyObject], diagnostics: [Diagnostic])
    {
        switch YAMLParser.parseDocuments(bytes, file: file, limits: limits) {
        case .failure(let diagnostic):
            return ([], [diagnostic])
        case .success(let documents):
            var decoder = PolicyDecoder(file: file)
            var objects: [PolicyObject] = []
            for document in documents where !document.isNull {
                objects += decoder.decodeDocument(document)
            }
            return (objects, decoder.diagnostics)
        }
    }

    // MARK: - Reporting

    mutating func error(_ message: String, _ node: YAMLNode) {
        diagnostics.append(.error(message, at: node.location(in: file), rule: schemaRule))
    }

    mutating func warning(_ message: String, _ node: YAMLNode) {
        diagnostics.append(.warning(message, at: node.location(in: file), rule: schemaRule))
    }

    /// The check a decoding problem belongs to: the fleet's files or the policy documents.
    var schemaRule: String { file.hasPrefix("clusters/") ? "fleet-schema" : "policy-schema" }

    func origin(_ node: YAMLNode, _ pairs: [YAMLPair]) -> Origin {
        Origin(location: node.location(in: file),
               fields: pairs.map { (name: $0.key.scalarText ?? "", line: $0.value.line, column: $0.value.column) })
    }

    // MARK: - Scalars

    mutating func pairs(_ node: YAMLNode, _ what: String) -> [YAMLPair]? {
        switch node.content {
        case .mapping(let pairs): return pairs
        case .scalar, .sequence:
            error("\(what) must be a mapping, not \(node.kindName)", node)
            return nil
        }
    }

    /// A list, where `null` reads as empty (NeuVector exports write both).
    mutating func list(_ node: YAMLNode, _ what: String) -> [YAMLNode]? {
        if node.isNull { return [] }
        switch node.content {
        case .sequence(let items): return items
        case .scalar, .mapping:
            error("\(what) must be a list, not \(node.kindName)", node)
            return nil
        }
    }

    mutating func string(_ node: YAMLNode, _ what: String) -> String? {
        switch node.content {
        case .scalar(let text, _):
            if node.isNull { return "" }
            return text
        case .sequence, .mapping:
            error("\(what) must be a string, not \(node.kindName)", node)
            return nil
        }
    }

    mutating func optionalString(_ node: YAMLNode, _ what: String) -> String? {
        if node.isNull { return nil }
        return string(node, what)
    }

    mutating func bool(_ node: YAMLNode, _ what: String) -> Bool? {
        if node.isNull { return nil }
        switch node.value {
        case .bool(let b): return b
        case .string(let s) where s == "true" || s == "false": return s == "true"
        case .null, .int, .number, .string, .list, .map:
            error("\(what) must be true or false", node)
            return nil
        }
    }

    mutating func int(_ node: YAMLNode, _ what: String) -> Int? {
        if node.isNull { return nil }
        switch node.value {
        case .int(let i): return i
        case .string(let s) where Int(s) != nil: return Int(s)
        case .null, .bool, .number, .string, .list, .map:
            error("\(what) must be a whole number", node)
            return nil
        }
    }

    mutating func strings(_ node: YAMLNode, _ what: String) -> [String]? {
        guard let items = list(node, what) else { return nil }
        var out: [String] = []
        for item in items {
            if let s = string(item, "an item of \(what)") { out.append(s) }
        }
        return out
    }

    mutating func stringMap(_ node: YAMLNode, _ what: String) -> [String: String] {
        if node.isNull { return [:] }
        guard let pairs = pairs(node, what) else { return [:] }
        var out: [String: String] = [:]
        for pair in pairs {
            guard let key = string(pair.key, "a key of \(what)"),
                  let value = string(pair.value, "\(what).\(key)") else { continue }
            out[key] = value
        }
        return out
    }

    mutating func enumeration<E: RawRepresentable & CaseIterable>(_ node: YAMLNode, _ what: String, _: E.Type)
        -> E? where E.RawValue == String
    {
        guard let text = string(node, what) else { return nil }
        if let value = E(rawValue: text) { return value }
        let allowed = E.allCases.map { $0.rawValue }.joined(separator: ", ")
        error("\(what) '\(text)' is not one of: \(allowed)", node)
        return nil
    }

    /// A field the decoder does not know. In a NeuVector spec it is an error (`strict`): the CRD's structural
    /// schema prunes unknown fields, so a misspelt `applications:` would push an allow rule for every
    /// application (SEMANTICS §2). The hub's own fleet files only warn. Either way the nearest known name is
    /// offered when it is one or two edits away.
    mutating func unknownField(_ pair: YAMLPair, in what: String, known: [String], strict: Bool = true) {
        let name = pair.key.scalarText ?? "?"
        let near = EditDistance.nearest(name, among: known).map { " (did you mean '\($0)'?)" } ?? ""
        if strict {
            error("unknown field '\(name)' in \(what)\(near); NeuVector's schema would drop it silently. Known fields: \(known.joined(separator: ", "))",
                  pair.key)
        } else {
            warning("unknown field '\(name)' in \(what) is ignored\(near)", pair.key)
        }
    }

    mutating func missing(_ field: String, in what: String, _ node: YAMLNode) {
        error("\(what) is missing required field '\(field)'", node)
    }
}
