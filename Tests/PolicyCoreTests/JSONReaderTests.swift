import PolicyCore
import Testing

@Suite struct JSONReaderTests {
    @Test func readsWhatTheWriterWrites() throws {
        let value = Value.map([
            Value.MapEntry("s", .string("a\"b\\c\n\t\u{1}é😀")), Value.MapEntry("i", .int(-42)), Value.MapEntry("n", .number("1.5e3")),
            Value.MapEntry("b", .bool(true)), Value.MapEntry("z", .null),
            Value.MapEntry("l", .list([.int(1), .map([]), .list([])])),
        ])
        #expect(try JSONReader.parse(JSONWriter.compactBytes(value)) == value)
        #expect(try JSONReader.parse(Array(JSONWriter.pretty(value).utf8)) == value)
    }

    @Test func sortingKeysGivesTheCanonicalValue() throws {
        let text = #"{"z":1,"a":{"y":[{"q":1,"b":2},{"a":3}],"b":null},"m":{"a":1,"b":2}}"#
        let plain = try JSONReader.parse(Array(text.utf8))
        let sorted = try JSONReader.parse(Array(text.utf8), sortingKeys: true)
        #expect(sorted == plain.canonical)
        #expect(sorted != plain)
    }

    @Test func escapesAndSurrogates() throws {
        #expect(try JSONReader.parse(Array(#"{"k":"\u00e9\ud83d\ude00\/"}"#.utf8)) == .map([Value.MapEntry("k", .string("é😀/"))]))
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "[1] x", "{\"a\":01x}", "\"\u{1}\"", "\"\\ud800\""])
    func rejectsMalformedInput(_ text: String) {
        #expect((try? JSONReader.parse(Array(text.utf8))) == nil, "accepted \(text)")
    }

    @Test func deepNestingIsRefused() {
        let deep = Array(String(repeating: "[", count: 600).utf8) + Array(String(repeating: "]", count: 600).utf8)
        #expect((try? JSONReader.parse(deep)) == nil)
    }

    // MARK: list answers read for a drift check

    /// The exact text of `key`'s value in `text` (for the kept slices).
    static func text(of value: Value) -> String { String(decoding: JSONWriter.compactBytes(value), as: UTF8.self) }

    @Test func listItemsKeepTheSpecAsTextAndReadTheRest() throws {
        let spec = #"{"rules":[{"name":"a \"quoted\" \\ name","ports":"tcp/80"},{"x":"\u003cb\u003e","y":[1,2.5,true,null]}],"b":{}}"#
        let text = """
            {"apiVersion":"neuvector.com/v1","items":[
              {"spec": \(spec) , "metadata":{"uid":"u-1","name":"one","managedFields":[{"manager":"m","fieldsV1":{"f:spec":{}}}],
               "labels":{"z":"1","a":"2"},"namespace":"demo","resourceVersion":"7","annotations":{"k":"v"}},"kind":"NvSecurityRule"},
              {"kind":"NvSecurityRule","metadata":{"name":"two"}}
            ],"kind":"NvSecurityRuleList","metadata":{"resourceVersion":"9"}}
            """
        let items = try JSONReader.listItems(Array(text.utf8), keeping: "spec")
        try #require(items.count == 2)
        #expect(items[0].kept.map { String(decoding: $0, as: UTF8.self) } == spec)
        #expect(try items[0].kept.map { try JSONReader.parse(Array($0), sortingKeys: true) } == (try JSONReader.parse(Array(spec.utf8)).canonical))
        let expected = try JSONReader.parse(Array(#"""
            {"kind":"NvSecurityRule","metadata":{"name":"one","labels":{"z":"1","a":"2"},"namespace":"demo","annotations":{"k":"v"}}}
            """#.utf8)).canonical
        #expect(items[0].value == expected, "metadata keeps name, namespace, labels and annotations only, keys sorted")
        #expect(items[1].kept == nil)
        #expect(items[1].value == .map([Value.MapEntry("kind", .string("NvSecurityRule")),
                                       Value.MapEntry("metadata", .map([Value.MapEntry("name", .string("two"))]))]))
        #expect(try JSONReader.listItems(Array(#"{"kind":"List"}"#.utf8), keeping: "spec").isEmpty)
    }

    /// Strings of every length around the eight-byte steps, with a quote, a backslash or a control character
    /// escaped at every position: the kept text must end exactly where the string does.
    @Test func keptStringsEndWhereTheyEnd() throws {
        for length in 0..<20 {
            for position in 0...length {
                for special in ["\"", "\\", "\n", "é"] {
                    var characters = Array(repeating: "x", count: length)
                    characters.insert(special, at: position)
                    let spec = Value.map([Value.MapEntry("s", .string(characters.joined())), Value.MapEntry("t", .string("}]\""))])
                    let text = #"{"items":[{"spec":"# + Self.text(of: spec) + #","kind":"K"}]}"#
                    let items = try JSONReader.listItems(Array(text.utf8), keeping: "spec")
                    #expect(items.first?.kept.map { String(decoding: $0, as: UTF8.self) } == Self.text(of: spec))
                }
            }
        }
    }

    @Test(arguments: [
        #"{"items":[{"spec":{"a":"b}]}"#,             // unterminated string inside the kept value
        "{\"items\":[{\"spec\":{\"a\":\"b\u{1}\"}}]}",   // a control character inside it
        "{\"items\":[{\"spec\":{\"a\":\"0123456789\u{9}abcdefghijklmnopqrstuvwxyz\"}}]}",  // in an eight-byte step without a quote
        #"{"items":[{"spec":{"a":"\q"}}]}"#,           // an unknown escape
        #"{"items":[{"spec":{"a" "b"}}]}"#,            // a missing colon
        #"{"items":[{"spec":[1,]}]}"#,                 // a trailing comma
        #"{"items":[{"spec":tru}]}"#,                   // a broken literal
        #"{"items":[{"metadata":{"managedFields":[}}]}"#,  // inside a skipped value
        #"{"items":{"spec":{}}}"#,                     // items that are not a list
        #"{"items":[{"spec":{}}]} x"#,                 // trailing characters
    ])
    func listItemsRejectMalformedInput(_ text: String) {
        #expect((try? JSONReader.listItems(Array(text.utf8), keeping: "spec")) == nil, "accepted \(text)")
    }
}

