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
}
