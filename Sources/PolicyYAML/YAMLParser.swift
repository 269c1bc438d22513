import CYAML
import PolicyCore

/// Limits that keep hostile input from exhausting time or memory.
public struct YAMLLimits: Sendable {
    /// Largest accepted file, in bytes.
    public var maxBytes: Int = 4 * 1024 * 1024
    /// Deepest accepted nesting of lists and mappings.
    public var maxDepth: Int = 64
    /// Most nodes that aliases may add by expansion, per file.
    public var maxAliasExpansion: Int = 10_000

    public init() {}
    public static let `default` = YAMLLimits()
}

/// Parses YAML bytes into positioned nodes with the system libyaml's event API, under `YAMLLimits`.
public enum YAMLParser {
    /// Parses every document of `bytes`. Errors are diagnostics located in `file`.
    ///
    /// NeuVector's exports are accepted as NeuVector's own importer accepts them: lines holding only
    /// white space (tabs included) are treated as blank before parsing; line numbers are unchanged.
    public static func parseDocuments(_ bytes: [UInt8], file: String, limits: YAMLLimits = .default)
        -> Result<[YAMLNode], Diagnostic>
    {
        if bytes.count > limits.maxBytes {
            return .failure(.error(
                "file is \(bytes.count) bytes; the limit is \(limits.maxBytes) bytes (4 MiB)",
                at: .start(of: file), rule: "file-size"))
        }
        let input = blankWhitespaceOnlyLines(bytes)
        var composer = Composer(file: file, limits: limits)
        return input.withUnsafeBufferPointer { buffer in composer.run(buffer) }.mapError { $0.ruled("yaml-syntax") }
    }

    /// The bare libyaml event scan of `bytes`: parse every event and build nothing. The floor that
    /// `policyhub bench parse` compares the full parse and validation against. Returns the event count,
    /// or nil when the YAML is invalid.
    public static func scanEvents(_ bytes: [UInt8]) -> Int? {
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else { return nil }
        defer { yaml_parser_delete(parser) }
        return bytes.withUnsafeBufferPointer { buffer -> Int? in
            guard let base = buffer.baseAddress else { return 0 }
            yaml_parser_set_input_string(parser, base, buffer.count)
            var event = yaml_event_t()
            var count = 0
            while true {
                guard yaml_parser_parse(parser, &event) == 1 else { return nil }
                let done = event.type == YAML_STREAM_END_EVENT
                yaml_event_delete(&event)
                count += 1
                if done { return count }
            }
        }
    }

    /// Replaces lines that hold only spaces and tabs, with at least one tab, by empty lines.
    static func blankWhitespaceOnlyLines(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.contains(9) else { return bytes }
        var out = bytes
        var lineStart = 0
        var onlyBlank = true
        var sawTab = false
        var write = [UInt8]()
        write.reserveCapacity(bytes.count)
        for index in 0...bytes.count {
            let b: UInt8 = index < bytes.count ? bytes[index] : 10
            if b == 10 || b == 13 {
                if onlyBlank && sawTab {
                    // drop the blank characters of this line
                } else {
                    write.append(contentsOf: bytes[lineStart..<index])
                }
                if index < bytes.count { write.append(b) }
                lineStart = index + 1
                onlyBlank = true
                sawTab = false
            } else if b == 9 {
                sawTab = true
            } else if b != 32 {
                onlyBlank = false
            }
        }
        out = write
        return out
    }
}

/// Builds nodes from libyaml events, with bounds on depth and alias expansion.
struct Composer {
    let file: String
    let limits: YAMLLimits

    /// An open list or mapping. Mutated in place on the stack, so that appending never copies.
    private struct Frame {
        var isMapping: Bool
        var items: [YAMLNode] = []
        var pairs: [YAMLPair] = []
        var key: YAMLNode?
        /// The text of `key` when it is a scalar, read once.
        var keyText: String?
        /// Keys seen so far, built once a mapping is large enough for a linear scan to matter.
        var keySet: Set<String>?
        var line: Int32
        var column: Int32
        var tag: String?
        var anchor: String?
        var start: Int
    }

    private var stack: [Frame] = []
    private var anchors: [String: (node: YAMLNode, size: Int)] = [:]
    private var documents: [YAMLNode] = []
    private var nodeCount = 0
    private var aliasExpansion = 0

    init(file: String, limits: YAMLLimits) {
        self.file = file
        self.limits = limits
    }

    mutating func run(_ buffer: UnsafeBufferPointer<UInt8>) -> Result<[YAMLNode], Diagnostic> {
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else {
            return .failure(.error("cannot initialise the YAML parser", at: .start(of: file)))
        }
        defer { yaml_parser_delete(parser) }
        if let base = buffer.baseAddress {
            yaml_parser_set_input_string(parser, base, buffer.count)
        } else {
            var empty: UInt8 = 0
            yaml_parser_set_input_string(parser, &empty, 0)
        }
        var event = yaml_event_t()
        while true {
            guard yaml_parser_parse(parser, &event) == 1 else {
                return .failure(parserError(parser.pointee, buffer))
            }
            defer { yaml_event_delete(&event) }
            let type = event.type
            if type == YAML_STREAM_END_EVENT { break }
            if let failure = handle(&event) { return .failure(failure) }
        }
        return .success(documents)
    }

    private func parserError(_ parser: yaml_parser_t, _ buffer: UnsafeBufferPointer<UInt8>) -> Diagnostic {
        let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
        var message = problem
        if let context = parser.context.map({ String(cString: $0) }) {
            message += " (\(context))"
        }
        if problem.contains("UTF-8") || problem.contains("octet") {
            message = "invalid UTF-8: " + message
        }
        if parser.error == YAML_READER_ERROR {
            // Reader errors (bad encoding, control characters) carry a byte offset, not a mark.
            return .error(message, at: Composer.location(ofByte: parser.problem_offset, in: buffer, file: file))
        }
        let mark = parser.problem_mark
        return .error(message, at: SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1))
    }

    /// The line and column (in characters) of a byte offset.
    static func location(ofByte offset: Int, in buffer: UnsafeBufferPointer<UInt8>, file: String) -> SourceLocation {
        var line = 1
        var column = 1
        for index in 0..<min(offset, buffer.count) {
            let byte = buffer[index]
            if byte == 10 {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return SourceLocation(file: file, line: line, column: column)
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let pointer else { return nil }
        return String(cString: pointer)
    }

    private mutating func handle(_ event: inout yaml_event_t) -> Diagnostic? {
        let line = Int32(clamping: event.start_mark.line + 1)
        let column = Int32(clamping: event.start_mark.column + 1)
        var here: SourceLocation { SourceLocation(file: file, line: Int(line), column: Int(column)) }
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            anchors.removeAll()
            return nil
        case YAML_SCALAR_EVENT:
            let data = event.data.scalar
            let text: String
            if let value = data.value, data.length > 0 {
                text = String(decoding: UnsafeBufferPointer(start: value, count: data.length), as: UTF8.self)
            } else {
                text = ""
            }
            let style: YAMLNode.ScalarStyle = data.style == YAML_PLAIN_SCALAR_STYLE ? .plain : .quoted
            let node = YAMLNode(.scalar(text, style), line: line, column: column, tag: Composer.string(data.tag))
            if let anchor = Composer.string(data.anchor) { anchors[anchor] = (node, 1) }
            return add(node, size: 1)
        case YAML_ALIAS_EVENT:
            guard let name = Composer.string(event.data.alias.anchor), let target = anchors[name] else {
                return .error("unknown alias", at: here)
            }
            aliasExpansion += target.size
            if aliasExpansion > limits.maxAliasExpansion {
                return .error(
                    "alias expansion exceeds \(limits.maxAliasExpansion) nodes (a \"billion laughs\" document?)",
                    at: here)
            }
            var node = target.node
            node.line = line
            node.column = column
            return add(node, size: target.size)
        case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
            if stack.count >= limits.maxDepth {
                return .error("nesting is deeper than \(limits.maxDepth) levels", at: here)
            }
            let isMapping = event.type == YAML_MAPPING_START_EVENT
            let (tag, anchor) = isMapping ? (event.data.mapping_start.tag, event.data.mapping_start.anchor)
                : (event.data.sequence_start.tag, event.data.sequence_start.anchor)
            stack.append(Frame(isMapping: isMapping, line: line, column: column, tag: Composer.string(tag),
                               anchor: Composer.string(anchor), start: nodeCount))
            return nil
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let frame = stack.popLast() else { return .error("unbalanced YAML events", at: here) }
            let node = YAMLNode(frame.isMapping ? .mapping(frame.pairs) : .sequence(frame.items),
                                line: frame.line, column: frame.column, tag: frame.tag)
            let anchor = frame.anchor
            let start = frame.start
            let size = nodeCount - start + 1
            if let anchor { anchors[anchor] = (node, size) }
            return add(node, size: 1)
        default:
            return nil
        }
    }

    private mutating func add(_ node: YAMLNode, size: Int) -> Diagnostic? {
        nodeCount += size
        let top = stack.count - 1
        guard top >= 0 else {
            documents.append(node)
            return nil
        }
        guard stack[top].isMapping else {
            stack[top].items.append(node)
            return nil
        }
        guard let key = stack[top].key else {
            stack[top].key = node
            stack[top].keyText = node.scalarText
            return nil
        }
        let keyText = stack[top].keyText
        stack[top].key = nil
        stack[top].keyText = nil
        if let text = keyText {
            if stack[top].keySet == nil, stack[top].pairs.count >= 16 {
                stack[top].keySet = Set(stack[top].pairs.compactMap { $0.key.scalarText })
            }
            let duplicate: Bool
            if stack[top].keySet != nil {
                duplicate = !(stack[top].keySet?.insert(text).inserted ?? true)
            } else {
                duplicate = stack[top].pairs.contains { pair in
                    if case .scalar(let other, _) = pair.key.content { return other == text }
                    return false
                }
            }
            if duplicate {
                return .error("duplicate key '\(text)' in mapping", at: key.location(in: file))
            }
        }
        stack[top].pairs.append(YAMLPair(key: key, value: node))
        return nil
    }
}
