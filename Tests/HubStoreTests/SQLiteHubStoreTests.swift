import Foundation
import HubStore
import PolicyCore
import Testing

@Suite struct SQLiteHubStoreTests {
    static func withStore<T>(_ body: (SQLiteHubStore, String) throws -> T) throws -> T {
        let folder = NSTemporaryDirectory() + "policyhub-store-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/state.sqlite"
        return try body(try SQLiteHubStore(path: path), path)
    }

    static func document(_ name: String, body: String = "{}") -> StoredDocument {
        StoredDocument(hash: ContentHash.of(.string(name + body)),
                       identity: ObjectIdentity(kind: .clusterSecurityRule, namespace: "", name: name),
                       source: "policies/global/\(name).yaml", body: body)
    }

    @Test func freshFileHasTheSchemaInWALMode() throws {
        try Self.withStore { store, path in
            #expect(try store.schemaVersions() == ["v1-revisions-pushes-audit", "v2-applied-at-drift-checks", "v3-drift-reports", "v4-applied-objects-target-out-of-step", "v5-revision-commits", "v6-push-by-cluster"])
            #expect(try store.integrityCheck() == "ok")
            #expect(FileManager.default.fileExists(atPath: path + "-wal"))
            // opening again migrates nothing and keeps the data
            _ = try store.recordRevision(environment: "staging", documents: [Self.document("a")], author: "t",
                                         cause: "apply", at: 1)
            let again = try SQLiteHubStore(path: path)
            #expect(try again.revisions(environment: nil).count == 1)
        }
    }

    @Test func revisionsShareDocumentsAndChainParents() throws {
        try Self.withStore { store, _ in
            #expect(try store.desiredRevision(environment: "staging") == nil)
            let a = Self.document("a")
            let b = Self.document("b")
            let r1 = try store.recordRevision(environment: "staging", documents: [a, b], author: "alice", cause: "apply", at: 10)
            let r2 = try store.recordRevision(environment: "staging", documents: [a], author: "bob", cause: "apply", at: 20)
            let p1 = try store.recordRevision(environment: "production", documents: [b], author: "carol", cause: "promote", at: 30)
            #expect(r1.parent == nil && r2.parent == r1.id && p1.parent == nil)
            #expect(try store.desiredRevision(environment: "staging") == r2)
            #expect(try store.desiredRevision(environment: "production") == p1)
            #expect(try store.documents(revision: r1.id).map(\.identity.name) == ["a", "b"])
            #expect(try store.documents(revision: r2.id) == [a])
            #expect(try store.revisions(environment: "staging").map(\.id) == [r2.id, r1.id])
            #expect(r1.treeHash != r2.treeHash)
            #expect(SQLiteHubStore.treeHash([b, a]) == r1.treeHash)
            let audit = try store.auditLog(limit: 10)
            #expect(audit.count == 3)
            #expect(audit.first?.actor == "carol")
        }
    }

    @Test func aStaleParentIsAConflictAndRecordsNothing() throws {
        try Self.withStore { (store: SQLiteHubStore, _: String) throws in
            let r1 = try store.recordRevision(environment: "production", documents: [Self.document("a")], author: "a",
                                              cause: "promote", at: 1, expectedParent: .mustBe(nil))
            do throws(HubStoreError) {
                _ = try store.recordRevision(environment: "production", documents: [Self.document("b")], author: "b",
                                             cause: "promote", at: 2, expectedParent: .mustBe(nil))
                Issue.record("a promotion from a stale base was recorded")
            } catch {
                #expect(error.description.hasPrefix("production changed while this was prepared: its desired revision is now r\(r1.id), not none"))
            }
            #expect(try store.revisions(environment: "production").count == 1)
        }
    }

    @Test func unknownRevisionIsAClearError() throws {
        try Self.withStore { (store: SQLiteHubStore, _: String) throws in
            #expect((try? store.documents(revision: 42)) == nil)
            do throws(HubStoreError) {
                _ = try store.revision(id: 42)
            } catch {
                #expect(error.description == "revision 42 does not exist")
            }
        }
    }

    @Test func pushesUpdateClusterState() throws {
        try Self.withStore { store, _ in
            let r1 = try store.recordRevision(environment: "staging", documents: [Self.document("a")], author: "t",
                                              cause: "apply", at: 1)
            try store.recordPush(PushRecord(cluster: "c1", environment: "staging", revision: r1.id, desiredHash: "h1",
                                            startedAt: 2, finishedAt: 3, created: 1, updated: 0, deleted: 0, error: nil))
            var state = try #require(try store.clusterStates().first)
            #expect(state.appliedRevision == r1.id && state.appliedHash == "h1" && state.lastResult == "ok")
            let r2 = try store.recordRevision(environment: "staging", documents: [Self.document("b")], author: "t",
                                              cause: "apply", at: 4)
            try store.recordPush(PushRecord(cluster: "c1", environment: "staging", revision: r2.id, desiredHash: "h2",
                                            startedAt: 5, finishedAt: 6, created: 0, updated: 0, deleted: 0,
                                            error: "cluster c1: connection refused"))
            state = try #require(try store.clusterStates().first)
            // a failed push keeps what was applied and says why
            #expect(state.appliedRevision == r1.id && state.appliedHash == "h1")
            #expect(state.lastResult == "failed" && state.lastError == "cluster c1: connection refused")
            try store.markApplied(cluster: "c1", environment: "staging", revision: r2.id, hash: "h2", at: 7)
            state = try #require(try store.clusterStates().first)
            #expect(state.appliedRevision == r2.id)
        }
    }

    @Test func aForeignKeyViolationIsRejectedWhole() throws {
        try Self.withStore { (store: SQLiteHubStore, _: String) throws in
            let push = PushRecord(cluster: "c1", environment: "staging", revision: 999, desiredHash: "h",
                                  startedAt: 1, finishedAt: 2, created: 0, updated: 0, deleted: 0, error: nil)
            do throws(HubStoreError) {
                try store.recordPush(push)
                Issue.record("a push of an unknown revision was recorded")
            } catch {
                #expect(error.description.contains("FOREIGN KEY"))
            }
            #expect(try store.clusterStates().isEmpty)
        }
    }

    @Test func anUnwritableLocationFailsWithThePath() {
        do throws(HubStoreError) {
            _ = try SQLiteHubStore(path: "/proc/no-such-dir/state.sqlite")
            Issue.record("opened an impossible path")
        } catch {
            #expect(error.description.hasPrefix("cannot open the state file /proc/no-such-dir/state.sqlite"))
        }
    }
}
