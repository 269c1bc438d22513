import PolicyCore
import Testing

/// The byte-level fast path of a drift check against the value comparison it stands in for.
@Suite struct DriftComparisonTests {
    static let identity = ObjectIdentity(kind: .securityRule, namespace: "demo", name: "nv.web.demo")
    static let spec = Value.map([
        Value.MapEntry("egress", .list([.map([Value.MapEntry("action", .string("allow")), Value.MapEntry("name", .string("to-db")),
                                                Value.MapEntry("ports", .string("tcp/5432"))])])),
        Value.MapEntry("target", .map([Value.MapEntry("selector", .map([Value.MapEntry("name", .string("web"))]))])),
    ])

    static func object(spec: Value, revision: String) -> Value {
        .map([
            Value.MapEntry("kind", .string("NvSecurityRule")),
            Value.MapEntry("metadata", .map([
                Value.MapEntry("annotations", .map([Value.MapEntry(HubAnnotation.revision, .string(revision))])),
                Value.MapEntry("labels", .map([Value.MapEntry(HubAnnotation.managedByKey, .string(HubAnnotation.managedByValue))])),
                Value.MapEntry("name", .string(identity.name)), Value.MapEntry("namespace", .string("demo")),
            ])),
            Value.MapEntry("spec", spec),
        ])
    }

    static let desired = RenderedObject(identity: identity, source: "policies/namespaces/demo/web.yaml",
                                        hash: ContentHash.of(spec), value: object(spec: spec, revision: "r2"))

    /// What the member holds: the object of an earlier revision with its spec sent as `specText`.
    static func held(_ specText: String) -> HeldObjects {
        var metadataOnly = object(spec: .null, revision: "r1")
        if case .map(let entries) = metadataOnly { metadataOnly = .map(entries.filter { $0.key != "spec" }) }
        let bytes = Array(specText.utf8)
        return HeldObjects(managed: [identity: HeldObject(value: metadataOnly, specJSON: bytes[...])], unmanaged: [])
    }

    static func findings(_ specText: String) -> [DriftFinding] {
        DriftComparison.compare(cluster: "c1", desired: [desired], held: held(specText))
    }

    @Test func theSameSpecInAnyFormIsNoDrift() {
        let canonical = String(decoding: JSONWriter.compactBytes(Self.spec), as: UTF8.self)
        #expect(Self.findings(canonical).isEmpty)
        // keys in another order, spaces, and Go's escaping of '/' : other bytes, the same value
        let other = #"{ "target": {"selector": {"name": "web"}}, "egress": [{"ports": "tcp\/5432", "name": "to-db", "action": "allow"}] }"#
        #expect(Self.findings(other).isEmpty)
    }

    @Test func aChangedSpecIsModifiedWithItsField() {
        let changed = #"{"egress":[{"action":"deny","name":"to-db","ports":"tcp/5432"}],"target":{"selector":{"name":"web"}}}"#
        let found = Self.findings(changed)
        #expect(found.map(\.kind) == [.modified])
        #expect(found.first?.fields == ["spec.egress[to-db].action"])
        #expect(found.first?.message.contains("hub allow, member deny") == true, "\(found)")
    }

    @Test func aSpecThatIsNotJSONIsReportedNotACrash() {
        let found = Self.findings(#"{"egress":[{"action":"allow""#)
        #expect(found.map(\.kind) == [.modified])
        #expect(found.first?.fields == ["(whole object)"])
        #expect(found.first?.message.hasPrefix("the live object is not valid NeuVector YAML") == true)
    }

    @Test func aChangedLabelIsFoundEvenWhenTheSpecBytesAreEqual() {
        let canonical = String(decoding: JSONWriter.compactBytes(Self.spec), as: UTF8.self)
        var held = Self.held(canonical)
        var object = held.managed[Self.identity]!
        if case .map(var entries) = object.value, let index = entries.firstIndex(where: { $0.key == "metadata" }),
           case .map(var meta) = entries[index].value, let labels = meta.firstIndex(where: { $0.key == "labels" }) {
            meta[labels].value = .map([Value.MapEntry(HubAnnotation.managedByKey, .string(HubAnnotation.managedByValue)),
                                       Value.MapEntry("team", .string("ops"))])
            entries[index].value = .map(meta)
            object.value = .map(entries)
        }
        held.managed[Self.identity] = object
        let found = DriftComparison.compare(cluster: "c1", desired: [Self.desired], held: held)
        #expect(found.map(\.fields) == [["metadata.labels.team"]], "\(found)")
    }
}
