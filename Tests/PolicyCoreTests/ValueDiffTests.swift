import PolicyCore
import Testing

/// Plan and drift lines say what changed: rules are matched by NeuVector's own keys, not by position.
@Suite struct ValueDiffTests {
    static func process(_ name: String, _ path: String, _ action: String) -> Value {
        .map([Value.MapEntry("action", .string(action)), Value.MapEntry("name", .string(name)), Value.MapEntry("path", .string(path))])
    }

    static func file(_ filter: String, _ behavior: String) -> Value {
        .map([Value.MapEntry("behavior", .string(behavior)), Value.MapEntry("filter", .string(filter))])
    }

    @Test func aSecondProcessOfOneNameIsAnAdditionNotAChangedPath() {
        let old = Value.map([Value.MapEntry("process", .list([Self.process("nc", "/usr/bin/nc", "deny")]))])
        let new = Value.map([Value.MapEntry("process", .list([Self.process("nc", "/usr/bin/nc", "deny"),
                                                              Self.process("nc", "/bin/nc", "deny")]))])
        let changes = ValueDiff.changes(from: old, to: new, path: "spec").map(\.description)
        #expect(changes == [#"+ spec.process[nc /bin/nc]: {"action":"deny","name":"nc","path":"/bin/nc"}"#])
    }

    @Test func aNewFileRuleIsAnAdditionAndAChangedOneSaysWhichField() {
        let old = Value.map([Value.MapEntry("file", .list([Self.file("/etc/passwd", "monitor_change")]))])
        let new = Value.map([Value.MapEntry("file", .list([Self.file("/etc/shadow", "block_access"),
                                                           Self.file("/etc/passwd", "block_access")]))])
        let changes = ValueDiff.changes(from: old, to: new, path: "spec").map(\.description)
        #expect(changes == [
            #"+ spec.file[/etc/shadow]: {"behavior":"block_access","filter":"/etc/shadow"}"#,
            "~ spec.file[/etc/passwd].behavior: monitor_change -> block_access",
        ])
    }

    @Test func keysThatRepeatFallBackToPositions() {
        let old = Value.list([Self.process("sh", "/bin/sh", "allow"), Self.process("sh", "/bin/sh", "deny")])
        let new = Value.list([Self.process("sh", "/bin/sh", "allow"), Self.process("sh", "/bin/sh", "allow")])
        #expect(ValueDiff.changes(from: old, to: new, path: "p").map(\.description) == ["~ p[1].action: deny -> allow"])
    }
}
