/// Reads JSON text into a `Value` (RFC 8259), straight from UTF-8 bytes: the fast path for API server
/// answers, which are JSON, where the YAML composer would do much more work per byte.
public enum JSONReader {
    /// A malformed document, with the byte offset where reading stopped.
    public struct Failure: Error, Sendable, Equatable {
        public var offset: Int
        public var message: String
    }

    /// With `sortingKeys`, every mapping comes out with its keys sorted: the value is already `canonical`,
    /// without a second pass that rebuilds it (mappings that arrive sorted, as most do, are not re-sorted).
    public static func parse(_ bytes: [UInt8], sortingKeys: Bool = false) throws(Failure) -> Value {
        try bytes.withUnsafeBufferPointer { buffer throws(Failure) -> Value in
            var reader = Cursor(bytes: buffer, sortingKeys: sortingKeys)
            reader.skipSpace()
            let value = try reader.value(depth: 0)
            reader.skipSpace()
            guard reader.index == buffer.count else { throw Failure(offset: reader.index, message: "trailing characters") }
            return value
        }
    }

    struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        let sortingKeys: Bool
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>, sortingKeys: Bool = false) {
            self.bytes = bytes
            self.sortingKeys = sortingKeys
        }

        func finished(_ entries: [Value.MapEntry]) -> Value {
            guard sortingKeys, entries.count > 1 else { return .map(entries) }
            for index in 1..<entries.count where entries[index].key < entries[index - 1].key {
                return .map(entries.sorted { $0.key < $1.key })
            }
            return .map(entries)
        }

        mutating func skipSpace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0a || bytes[index] == 0x0d || bytes[index] == 0x09 {
                index += 1
            }
        }

        func fail(_ message: String) -> Failure { Failure(offset: index, message: message) }

        mutating func expect(_ literal: StaticString, _ value: Value) throws(Failure) -> Value {
            let count = literal.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw fail("unexpected end") }
            for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] { throw fail("unexpected character") }
            index += count
            return value
        }

        mutating func value(depth: Int) throws(Failure) -> Value {
            guard depth < 512 else { throw fail("nesting is too deep") }
            guard index < bytes.count else { throw fail("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                return try mapping(depth: depth) { (reader: inout Self, _: String) throws(Failure) -> Value? in
                    try reader.value(depth: depth + 1)
                }
            case UInt8(ascii: "["):
                var items: [Value] = []
                try elements(depth: depth) { (reader: inout Self) throws(Failure) in items.append(try reader.value(depth: depth + 1)) }
                return .list(items)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            default: return try number()
            }
        }

        mutating func number() throws(Failure) -> Value {
            let start = index
            var integral = true
            while index < bytes.count {
                let b = bytes[index]
                if (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "-") || b == UInt8(ascii: "+") {
                    index += 1
                } else if b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E") {
                    integral = false
                    index += 1
                } else {
                    break
                }
            }
            guard index > start else { throw fail("unexpected character") }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if integral, let int = Int(text) { return .int(int) }
            guard Double(text) != nil else { throw Failure(offset: start, message: "'\(text)' is not a number") }
            return .number(text)
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            guard index + 4 <= bytes.count else { throw fail("short \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[index]
                let digit: UInt32
                switch b {
                case 0x30...0x39: digit = UInt32(b - 0x30)
                case 0x41...0x46: digit = UInt32(b - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(b - 0x61 + 10)
                default: throw fail("bad \\u escape")
                }
                value = value << 4 | digit
                index += 1
            }
            return value
        }

        mutating func string() throws(Failure) -> String {
            index += 1  // the opening quote
            let start = index
            // fast path: no escapes
            while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\") {
                guard bytes[index] >= 0x20 else { throw fail("control character in a string") }
                index += 1
            }
            guard index < bytes.count else { throw fail("unterminated string") }
            if bytes[index] == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            var out = Array(bytes[start..<index])
            while index < bytes.count {
                let b = bytes[index]
                if b == UInt8(ascii: "\"") {
                    index += 1
                    return String(decoding: out, as: UTF8.self)
                }
                guard b >= 0x20 else { throw fail("control character in a string") }
                guard b == UInt8(ascii: "\\") else {
                    out.append(b)
                    index += 1
                    continue
                }
                index += 1
                guard index < bytes.count else { throw fail("unterminated escape") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5c)
                case UInt8(ascii: "/"): out.append(0x2f)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw fail("lone surrogate")
                        }
                        index += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("bad surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid code point") }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default:
                    throw fail("unknown escape")
                }
            }
            throw fail("unterminated string")
        }
    }
}

extension JSONReader {
    /// One item of a list answer: the item read with keys sorted, less the value under the kept key, which is
    /// checked for syntax and kept as its JSON text (read later only if needed).
    public struct ListItem: Sendable {
        public var value: Value
        public var kept: ArraySlice<UInt8>?
    }

    /// The `items` of a Kubernetes list answer (`{"kind": "...List", "items": [...], ...}`). In each item the value
    /// under `keptKey` is not read into values but kept as its JSON text, and of `metadata` only the keys in
    /// `metadataKeys` are read (the rest, such as a real API server's large `managedFields`, is skipped). Every
    /// part read is read as `parse(sortingKeys: true)` would; the whole answer must be well-formed JSON, kept and
    /// skipped values included (their syntax is checked without building them). An answer without `items` has none.
    public static func listItems(_ bytes: [UInt8], keeping keptKey: String,
                                 metadataKeys: [String] = ["name", "namespace", "labels", "annotations"]) throws(Failure) -> [ListItem] {
        try listPage(bytes, keeping: keptKey, metadataKeys: metadataKeys).items
    }

    /// One page of a Kubernetes list answer: its items (as `listItems` reads them), the list's
    /// `metadata.continue` token (nil or empty on the last page) and its `metadata.resourceVersion` (where a
    /// watch starts).
    public static func listPage(_ bytes: [UInt8], keeping keptKey: String,
                                metadataKeys: [String] = ["name", "namespace", "labels", "annotations"]) throws(Failure)
        -> (items: [ListItem], continueToken: String?, resourceVersion: String?)
    {
        let (items, ranges, meta) = try bytes.withUnsafeBufferPointer { buffer throws(Failure) -> ([Value], [Range<Int>?], Value?) in
            var reader = Cursor(bytes: buffer, sortingKeys: true)
            var items: [Value] = []
            var ranges: [Range<Int>?] = []
            var meta: Value?
            reader.skipSpace()
            try reader.members(depth: 0) { (reader: inout Cursor, key: String) throws(Failure) in
                if key == "metadata" {
                    meta = try reader.value(depth: 1)
                    return
                }
                guard key == "items" else { return try reader.skipValue(depth: 1) }
                guard reader.index < buffer.count, buffer[reader.index] == UInt8(ascii: "[") else {
                    throw reader.fail("items is not a list")
                }
                try reader.elements(depth: 1) { (reader: inout Cursor) throws(Failure) in
                    var kept: Range<Int>?
                    let item = try reader.mapping(depth: 2) { (reader: inout Cursor, key: String) throws(Failure) -> Value? in
                        if key == keptKey {
                            let start = reader.index
                            try reader.skipValue(depth: 3)
                            kept = start..<reader.index
                            return nil
                        }
                        guard key == "metadata", reader.index < buffer.count, buffer[reader.index] == UInt8(ascii: "{") else {
                            return try reader.value(depth: 3)
                        }
                        return try reader.mapping(depth: 3) { (reader: inout Cursor, key: String) throws(Failure) -> Value? in
                            guard metadataKeys.contains(key) else {
                                try reader.skipValue(depth: 4)
                                return nil
                            }
                            return try reader.value(depth: 4)
                        }
                    }
                    items.append(item)
                    ranges.append(kept)
                }
            }
            reader.skipSpace()
            guard reader.index == buffer.count else { throw Failure(offset: reader.index, message: "trailing characters") }
            return (items, ranges, meta)
        }
        return (zip(items, ranges).map { ListItem(value: $0, kept: $1.map { bytes[$0] }) }, meta?["continue"]?.stringValue,
                meta?["resourceVersion"]?.stringValue)
    }
}

extension JSONReader.Cursor {
    typealias Failure = JSONReader.Failure

    /// Reads a mapping at the cursor, calling `each` with the cursor on each key's value; `each` must move past it.
    /// Without `readingKeys` the keys are only checked and `each` gets "" for each.
    mutating func members(depth: Int, readingKeys: Bool = true, _ each: (inout Self, String) throws(Failure) -> Void) throws(Failure) {
        try sequence(depth: depth, open: UInt8(ascii: "{"), close: UInt8(ascii: "}")) { (reader: inout Self) throws(Failure) in
            guard reader.index < reader.bytes.count, reader.bytes[reader.index] == UInt8(ascii: "\"") else {
                throw reader.fail("expected a key")
            }
            let key: String
            if readingKeys {
                key = try reader.string()
            } else {
                try reader.skipString()
                key = ""
            }
            reader.skipSpace()
            guard reader.index < reader.bytes.count, reader.bytes[reader.index] == UInt8(ascii: ":") else {
                throw reader.fail("expected ':'")
            }
            reader.index += 1
            reader.skipSpace()
            try each(&reader, key)
        }
    }

    /// Reads a list at the cursor, calling `each` with the cursor on each element; `each` must move past it.
    mutating func elements(depth: Int, _ each: (inout Self) throws(Failure) -> Void) throws(Failure) {
        try sequence(depth: depth, open: UInt8(ascii: "["), close: UInt8(ascii: "]"), each)
    }

    /// `open`, then entries read by `each` separated by commas, then `close`: the frame of mappings and lists.
    mutating func sequence(depth: Int, open: UInt8, close: UInt8, _ each: (inout Self) throws(Failure) -> Void) throws(Failure) {
        guard depth < 512 else { throw fail("nesting is too deep") }
        guard index < bytes.count, bytes[index] == open else { throw fail("expected '\(Character(Unicode.Scalar(open)))'") }
        index += 1
        skipSpace()
        if index < bytes.count, bytes[index] == close {
            index += 1
            return
        }
        while true {
            skipSpace()
            try each(&self)
            skipSpace()
            guard index < bytes.count else { throw fail("unexpected end") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == close else { throw fail("expected ',' or '\(Character(Unicode.Scalar(close)))'") }
            index += 1
            return
        }
    }

    /// A mapping whose values `each` reads (nil leaves the key out), its keys sorted when the cursor sorts keys.
    mutating func mapping(depth: Int, _ each: (inout Self, String) throws(Failure) -> Value?) throws(Failure) -> Value {
        var entries: [Value.MapEntry] = []
        try members(depth: depth) { (reader: inout Self, key: String) throws(Failure) in
            if let value = try each(&reader, key) { entries.append(Value.MapEntry(key, value)) }
        }
        return finished(entries)
    }

    /// Moves past one value, checking its syntax, without building it.
    mutating func skipValue(depth: Int) throws(Failure) {
        guard index < bytes.count else { throw fail("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            try members(depth: depth, readingKeys: false) { (reader: inout Self, _: String) throws(Failure) in
                try reader.skipValue(depth: depth + 1)
            }
        case UInt8(ascii: "["):
            try elements(depth: depth) { (reader: inout Self) throws(Failure) in try reader.skipValue(depth: depth + 1) }
        case UInt8(ascii: "\""): try skipString()
        default: _ = try value(depth: depth)  // a scalar: true, false, null or a number
        }
    }

    /// Moves past a string, eight bytes at a time while none of them is a quote, a backslash or a control
    /// character. A string with escapes is read (rare) to check them as `string()` does.
    mutating func skipString() throws(Failure) {
        let start = index
        index += 1
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ x: UInt64) -> Bool { (x &- ones) & ~x & highs != 0 }
        while true {
            while index + 8 <= bytes.count {
                let word = UnsafeRawBufferPointer(bytes).loadUnaligned(fromByteOffset: index, as: UInt64.self)
                let special = hasZeroByte(word ^ (ones &* 0x22)) || hasZeroByte(word ^ (ones &* 0x5c))
                    || (word &- ones &* 0x20) & ~word & highs != 0  // a byte below 0x20
                if special { break }
                index += 8
            }
            guard index < bytes.count else { throw fail("unterminated string") }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                index += 1
                return
            case UInt8(ascii: "\\"):
                index = start
                _ = try string()
                return
            case 0..<0x20: throw fail("control character in a string")
            default: index += 1
            }
        }
    }
}
