import PolicyCore
import PolicyYAML
import Testing

@Suite struct YAMLWriterTests {
    /// Strings a YAML reader could take for something else are quoted, so they read back as strings.
    @Test(arguments: ["=", "true", "false", "null", "~", "", "5", "-3", "0x1f", "1.5", "yes", "no", "on", "*",
                      "a: b", "- x", "#c", "tcp/22", "N/A", "multi\nline", "ünïcode", "'quoted'", "\"dq\"", " lead"])
    func stringsReadBack(_ text: String) throws {
        let value = Value.map([Value.MapEntry("k", .string(text))])
        let yaml = YAMLWriter.document(value)
        let nodes = try YAMLParser.parseDocuments(Array(yaml.utf8), file: "t").get()
        #expect(nodes.first?.value == value, "\(yaml)")
    }

    @Test func scalarsResolveByTheCoreSchema() throws {
        let yaml = "a: 1\nb: true\nc: null\nd: '1'\ne: =\nf: 1.5\ng: ~\nh:\n"
        let nodes = try YAMLParser.parseDocuments(Array(yaml.utf8), file: "t").get()
        #expect(nodes.first?.value == .map([
            .init("a", .int(1)), .init("b", .bool(true)), .init("c", .null), .init("d", .string("1")),
            .init("e", .string("=")), .init("f", .number("1.5")), .init("g", .null), .init("h", .null),
        ]))
    }

    @Test func jsonEscapes() {
        #expect(JSONWriter.compact(.map([.init("a\"b", .string("x\ny\u{1}"))])) == #"{"a\"b":"x\ny\u0001"}"#)
    }
}
