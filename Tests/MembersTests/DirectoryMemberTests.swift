import Foundation
import Members
import PolicyCore
import Testing

@Suite struct DirectoryMemberTests {
    static func object(_ name: String, spec: String = "a", managed: Bool = true) -> RenderedObject {
        var labels: [Value.MapEntry] = []
        if managed { labels.append(Value.MapEntry(HubAnnotation.managedByKey, .string(HubAnnotation.managedByValue))) }
        let value = Value.map([
            Value.MapEntry("apiVersion", .string("neuvector.com/v1")),
            Value.MapEntry("kind", .string("NvClusterSecurityRule")),
            Value.MapEntry("metadata", .map([Value.MapEntry("labels", .map(labels)), Value.MapEntry("name", .string(name))])),
            Value.MapEntry("spec", .map([Value.MapEntry("x", .string(spec))])),
        ])
        return RenderedObject(identity: ObjectIdentity(kind: .clusterSecurityRule, namespace: "", name: name),
                              source: "policies/global/\(name).yaml", hash: ContentHash.of(.string(spec)), value: value)
    }

    @Test func createsUpdatesDeletesAndLeavesOthersAlone() async throws {
        let root = NSTemporaryDirectory() + "policyhub-dir-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root) }
        let member = DirectoryMember(cluster: "c1", root: root)
        var outcome = try await member.push([Self.object("a"), Self.object("b")])
        #expect(outcome.created.map(\.name) == ["a", "b"] && outcome.updated.isEmpty && outcome.deleted.isEmpty)
        // a file someone else put there, without the hub's label
        let foreign = root + "/cluster/nvclustersecurityrules/theirs.yaml"
        try "apiVersion: neuvector.com/v1\nkind: NvClusterSecurityRule\nmetadata: {name: theirs}\n"
            .write(toFile: foreign, atomically: true, encoding: .utf8)
        outcome = try await member.push([Self.object("a"), Self.object("b", spec: "changed")])
        #expect(outcome.created.isEmpty && outcome.updated.map(\.name) == ["b"] && outcome.unchanged == 1)
        outcome = try await member.push([Self.object("b", spec: "changed")])
        #expect(outcome.deleted.map(\.name) == ["a"])
        #expect(FileManager.default.fileExists(atPath: foreign))
        let held = try await member.managedObjects()
        #expect(held.keys.map(\.name) == ["b"])
        #expect(held.values.first?["spec"]?["x"] == .string("changed"))
    }

    /// A push that trusts the store's record does not walk the folder: it sweeps only when a killed push left
    /// its marker, and leaves no marker after it.
    @Test func aPushSweepsWhereAnInterruptedPushLeftItsMarker() async throws {
        let root = NSTemporaryDirectory() + "policyhub-marker-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root) }
        let member = DirectoryMember(cluster: "c1", root: root)
        let first = try await member.push([Self.object("a"), Self.object("b")])
        let marker = root + "/.policyhub-tmp.push-in-progress"
        #expect(!FileManager.default.fileExists(atPath: marker))
        // what a push killed between its writes and its renames leaves: the marker and a temporary file
        let folder = root + "/cluster/nvclustersecurityrules"
        let leftover = folder + "/.policyhub-tmp.4242.7.b.yaml"
        try "half a file".write(toFile: leftover, atomically: false, encoding: .utf8)
        try "".write(toFile: marker, atomically: false, encoding: .utf8)
        let previous = Dictionary(uniqueKeysWithValues: first.applied.map { ($0.identity, $0) })
        let second = try await member.push(PushRequest(objects: [Self.object("a"), Self.object("b", spec: "changed")], revision: 2,
                                                       previous: previous))
        #expect(second.updated.map(\.name) == ["b"] && second.unchanged == 1)
        #expect(!FileManager.default.fileExists(atPath: leftover) && !FileManager.default.fileExists(atPath: marker))
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(names == ["a.yaml", "b.yaml"])
    }

    @Test func aFileWhereTheFolderShouldBeIsNamedInTheError() async throws {
        let root = NSTemporaryDirectory() + "policyhub-file-" + UUID().uuidString
        try "x".write(toFile: root, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: root) }
        do {
            _ = try await DirectoryMember(cluster: "c9", root: root).push([Self.object("a")])
            Issue.record("pushed into a file")
        } catch {
            #expect(error.cluster == "c9")
            #expect(error.description.contains(root))
        }
    }
}
