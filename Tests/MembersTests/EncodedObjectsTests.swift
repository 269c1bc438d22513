import Foundation
@testable import Members
import PolicyCore
import PolicyYAML
import Testing

/// The encodings shared by the members of a process: one per distinct object, revision annotation and format,
/// never one object's bytes for another.
@Suite struct EncodedObjectsTests {
    static func object(_ name: String, spec: String, revision: String) -> RenderedObject {
        let value = Value.map([
            Value.MapEntry("apiVersion", .string("neuvector.com/v1")),
            Value.MapEntry("kind", .string("NvClusterSecurityRule")),
            Value.MapEntry("metadata", .map([
                Value.MapEntry("annotations", .map([Value.MapEntry(HubAnnotation.revision, .string(revision))])),
                Value.MapEntry("name", .string(name)),
            ])),
            Value.MapEntry("spec", .map([Value.MapEntry("x", .string(spec))])),
        ])
        return RenderedObject(identity: ObjectIdentity(kind: .clusterSecurityRule, namespace: "", name: name),
                              source: "policies/global/\(name).yaml", hash: ContentHash.of(.string(spec)), value: value)
    }

    @Test func eachDistinctObjectRevisionAndFormatHasItsOwnBytes() {
        let cache = EncodedObjects(limit: 1 << 20)
        let a = Self.object("a", spec: "one", revision: "r1")
        let sameContent = Self.object("a", spec: "one", revision: "r1")
        let changed = Self.object("a", spec: "two", revision: "r1")
        let later = Self.object("a", spec: "one", revision: "r2")
        #expect(a.appliedHash == later.appliedHash && a.appliedHash != changed.appliedHash)
        let yaml = cache.bytes(of: a, hash: a.appliedHash, format: .yaml)
        #expect(yaml == Array(YAMLWriter.document(a.value).utf8))
        #expect(cache.bytes(of: sameContent, hash: sameContent.appliedHash, format: .yaml) == yaml)
        #expect(cache.count == 1)
        #expect(cache.bytes(of: changed, hash: changed.appliedHash, format: .yaml) == Array(YAMLWriter.document(changed.value).utf8))
        // the same content at a later revision carries that revision's annotation
        let laterYAML = cache.bytes(of: later, hash: later.appliedHash, format: .yaml)
        #expect(laterYAML == Array(YAMLWriter.document(later.value).utf8) && laterYAML != yaml)
        #expect(cache.bytes(of: a, hash: a.appliedHash, format: .json) == JSONWriter.compactBytes(a.value))
        #expect(cache.count == 4)
    }

    @Test func aFullCacheForgetsRatherThanGrows() {
        let one = Self.object("a", spec: "one", revision: "r1")
        let size = Array(YAMLWriter.document(one.value).utf8).count
        let cache = EncodedObjects(limit: size * 3)
        for index in 0..<10 {
            let object = Self.object("a", spec: "spec-\(index)", revision: "r1")
            #expect(cache.bytes(of: object, hash: object.appliedHash, format: .yaml) == Array(YAMLWriter.document(object.value).utf8))
            #expect(cache.count <= 3)
        }
    }
}

/// What a push judged from the store's record sends, keeps, deletes and records.
@Suite struct PushChangesTests {
    @Test func fromTheRecordOnlyTheChangedObjectsAreWrittenAndTheRestKeepTheirRevision() {
        let objects = ["a", "b", "c"].map { EncodedObjectsTests.object($0, spec: $0 == "b" ? "new" : "old", revision: "r5") }
        let hashes = objects.map(\.appliedHash)
        let old = EncodedObjectsTests.object("b", spec: "old", revision: "r2")
        func held(_ object: RenderedObject, _ revision: Int64) -> AppliedObject {
            AppliedObject(identity: object.identity, hash: object.appliedHash, revision: revision)
        }
        let gone = EncodedObjectsTests.object("z", spec: "old", revision: "r1")
        let previous = [objects[0].identity: held(objects[0], 2), old.identity: held(old, 2), objects[2].identity: held(objects[2], 3),
                        gone.identity: held(gone, 1)]
        let changes = PushRequest(objects: objects, hashes: hashes, revision: 5, previous: previous).changes(live: nil)
        #expect(changes.send.map(\.object.identity.name) == ["b"] && changes.delete.map(\.name) == ["z"])
        let applied = changes.applied(sent: changes.send, revision: 5)
        #expect(applied.map(\.identity.name) == ["a", "b", "c"] && applied.map(\.revision) == [2, 5, 3])
        #expect(changes.applied(sent: [], revision: 5).map(\.identity.name) == ["a", "c"])
        let recorded = changes.recordChanges(sent: changes.send, revision: 5)
        #expect(recorded?.write == [AppliedObject(identity: objects[1].identity, hash: hashes[1], revision: 5)])
        #expect(recorded?.remove == [gone.identity])
        // judged from the member (no record): the whole set replaces the record's
        #expect(PushRequest(objects: objects, hashes: hashes, revision: 5, previous: nil).changes(live: [:]).recordChanges(sent: [], revision: 5) == nil)
    }
}
