import PolicyCore
import PolicyYAML
import Testing

/// Hostile YAML is rejected with a clear, located error, in bounded time and memory.
@Suite struct HostileInputTests {
    func firstError(_ bytes: [UInt8]) -> Diagnostic? {
        PolicyDecoder.decodeFile(bytes, file: "policies/global/evil.yaml").diagnostics.first { $0.isError }
    }

    @Test func billionLaughs() throws {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1..<12 {
            let refs = Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ")
            text += "a\(i): &a\(i) [\(refs)]\n"
        }
        let error = try #require(firstError(Array(text.utf8)))
        #expect(error.message.contains("alias expansion exceeds"))
        #expect(error.location.line > 1)
    }

    @Test func smallAliasesAreFine() {
        let text = """
            apiVersion: neuvector.com/v1
            kind: NvClusterSecurityRule
            metadata: {name: x}
            spec:
              target:
                selector: &c {name: containers, criteria: [{key: container, op: '=', value: '*'}]}
              ingress: []
            """
        let decoded = PolicyDecoder.decodeFile(Array(text.utf8), file: "policies/global/a.yaml")
        #expect(!decoded.diagnostics.hasErrors)
        #expect(decoded.objects.count == 1)
    }

    @Test func nestingDeeperThan64() throws {
        let text = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        let error = try #require(firstError(Array(text.utf8)))
        #expect(error.message.contains("nesting is deeper than 64"))
        #expect(error.location == SourceLocation(file: "policies/global/evil.yaml", line: 1, column: 65))
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(firstError(Array(ok.utf8))?.message.contains("nesting") != true)
    }

    @Test func deepBlockNesting() throws {
        var text = ""
        for depth in 0..<100 { text += String(repeating: "  ", count: depth) + "k\(depth):\n" }
        let error = try #require(firstError(Array(text.utf8)))
        #expect(error.message.contains("nesting is deeper than 64"))
        #expect(error.location.line == 65)
    }

    @Test func fileOver4MiB() throws {
        let bytes = [UInt8](repeating: UInt8(ascii: "#"), count: 4 * 1024 * 1024 + 1)
        let error = try #require(firstError(bytes))
        #expect(error.message.contains("4 MiB"))
        #expect(error.location.line == 1)
    }

    @Test func invalidUTF8() throws {
        var bytes = Array("apiVersion: neuvector.com/v1\nkind: NvClusterSecurityRule\nmetadata:\n  name: ab".utf8)
        bytes += [0xC3, 0x28]
        bytes += Array("\n".utf8)
        let error = try #require(firstError(bytes))
        #expect(error.message.hasPrefix("invalid UTF-8"))
        #expect(error.location.line == 4)
        #expect(error.location.column == 12)  // libyaml points at the invalid trailing octet, 0x28
    }

    @Test func hugeFlatMappingIsLinear() throws {
        // 200,000 keys: a quadratic duplicate-key check would take minutes; this must finish promptly.
        var text = ""
        for i in 0..<200_000 { text += "k\(i): v\n" }
        text += "k7: again\n"
        let error = try #require(firstError(Array(text.utf8)))
        #expect(error.message.contains("duplicate key 'k7'"))
        #expect(error.location.line == 200_001)
    }

    @Test func tabOnlyLinesAroundSeparatorAreAccepted() {
        let text = "apiVersion: v1\nkind: List\nitems: []\n\t\n---\n\t\napiVersion: v1\nkind: List\nitems: []\n"
        let decoded = PolicyDecoder.decodeFile(Array(text.utf8), file: "policies/global/t.yaml")
        #expect(decoded.diagnostics.isEmpty)
    }
}
