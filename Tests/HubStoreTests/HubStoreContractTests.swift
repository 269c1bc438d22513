import Foundation
import HubStore
import HubStorePostgres
import PolicyHubTesting
import PolicyCore
import Testing

/// One suite for every `HubStore`: what the engine and the daemon rely on holds the same for the SQLite
/// file, the in-memory store and PostgreSQL (a throwaway server, `TestPostgres`), so that engine and API
/// tests on the in-memory one say something about the real ones.
@Suite struct HubStoreContractTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case sqlite, memory, postgres
        var testDescription: String { rawValue }
    }

    /// A fresh store of `kind` (a SQLite file in a temporary folder, removed after).
    static func withStore(_ kind: Kind, _ body: (any HubStore) throws -> Void) throws {
        switch kind {
        case .memory:
            try body(MemoryHubStore())
        case .sqlite:
            let folder = NSTemporaryDirectory() + "policyhub-contract-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try body(try SQLiteHubStore(path: folder + "/state.sqlite"))
        case .postgres:
            let store = try PostgresHubStore(url: try TestPostgres.freshDatabase())
            defer { store.shutdown() }
            try body(store)
        }
    }

    static func document(_ name: String, body: String = "{}") -> StoredDocument {
        StoredDocument(hash: ContentHash.of(.string(name + body)),
                       identity: ObjectIdentity(kind: .clusterSecurityRule, namespace: "", name: name),
                       source: "policies/global/\(name).yaml", body: body)
    }

    @Test(arguments: Kind.allCases) func revisionsChainShareDocumentsAndAreAudited(kind: Kind) throws {
        try Self.withStore(kind) { (store: any HubStore) throws in
            #expect(try store.desiredRevision(environment: "dev") == nil)
            let a = Self.document("a"), b = Self.document("b")
            let r1 = try store.recordRevision(environment: "dev", documents: [b, a], author: "alice", cause: "apply", at: 10,
                                              expectedParent: .any)
            let r2 = try store.recordRevision(environment: "dev", documents: [a], author: "bob", cause: "apply", at: 20,
                                              expectedParent: .mustBe(r1.id))
            let p1 = try store.recordRevision(environment: "prod", documents: [b], author: "carol", cause: "promote", at: 30,
                                              expectedParent: .mustBe(nil))
            #expect(r1.parent == nil && r2.parent == r1.id && p1.parent == nil)
            #expect(r2.id > r1.id && p1.id > r2.id)
            #expect(try store.desiredRevision(environment: "dev") == r2)
            #expect(try store.revision(id: r1.id) == r1)
            // documents come back sorted by identity, whatever order they were recorded in
            #expect(try store.documents(revision: r1.id).map(\.identity.name) == ["a", "b"])
            #expect(try store.revisions(environment: "dev").map(\.id) == [r2.id, r1.id])
            #expect(try store.revisions(environment: nil).map(\.id) == [p1.id, r2.id, r1.id])
            #expect(r1.treeHash == StoredDocument.treeHash([a, b]) && r1.treeHash != r2.treeHash)
            #expect(r1.documentCount == 2 && r1.createdAt == 10 && r1.cause == "apply")
            let audit = try store.auditLog(limit: 2)
            #expect(audit.map(\.actor) == ["carol", "bob"])
            #expect(audit.first?.action == "revision")
        }
    }

    @Test(arguments: Kind.allCases) func aRevisionKeepsTheCommitItCameFromAndAuditsIt(kind: Kind) throws {
        try Self.withStore(kind) { (store: any HubStore) throws in
            let commit = CommitProvenance(commit: String(repeating: "ab", count: 20), author: "Alice <a@example.com>",
                                          committer: "Hub <hub@example.com>", committedAt: 1_700_000_000, subject: "tighten egress",
                                          signature: .good, signer: "Sec <sec@example.com>", signingKey: "04DA9567",
                                          dirty: false, signatureRequired: true)
            let r1 = try store.recordRevision(environment: "dev", documents: [Self.document("a")], author: "alice", cause: "apply",
                                              at: 10, expectedParent: .any, commit: commit)
            let r2 = try store.recordRevision(environment: "dev", documents: [Self.document("b")], author: "api", cause: "api",
                                              at: 20, expectedParent: .mustBe(r1.id))
            #expect(r1.commit == commit && r2.commit == nil)
            #expect(try store.revision(id: r1.id).commit == commit)
            #expect(try store.revisions(environment: "dev").map(\.commit) == [nil, commit])
            #expect(try store.revisions(environment: nil).map(\.commit) == [nil, commit])
            _ = try store.recordRevision(environment: "prod", documents: [Self.document("a")], author: "carol", cause: "promote",
                                         at: 30, expectedParent: .any, commit: commit)
            #expect(try store.desiredRevision(environment: "prod")?.commit == commit)
            let audit = try store.auditLog(limit: 3).map(\.detail)
            #expect(audit.last?.contains("commit ababababab" + "ab (signature good by Sec <sec@example.com> key 04DA9567)") == true, "\(audit)")
        }
    }

    /// Writers racing on one environment with the same parent (two promotions, two replicas): exactly one
    /// lands, every other one gets the conflict, and the chain stays linear.
    @Test(arguments: Kind.allCases) func racingWritersOfOneEnvironmentLandOnce(kind: Kind) throws {
        try Self.withStore(kind) { (store: any HubStore) throws in
            let base = try store.recordRevision(environment: "prod", documents: [Self.document("a")], author: "a", cause: "promote",
                                                at: 1, expectedParent: .mustBe(nil))
            let outcomes = NSLock()
            nonisolated(unsafe) var landed: [Int64] = [], conflicts = 0, others: [String] = []
            DispatchQueue.concurrentPerform(iterations: 8) { index in
                do throws(HubStoreError) {
                    let revision = try store.recordRevision(environment: "prod", documents: [Self.document("w\(index)")], author: "w\(index)",
                                                            cause: "promote", at: 2, expectedParent: .mustBe(base.id))
                    outcomes.withLock { landed.append(revision.id) }
                } catch {
                    if case .conflict = error { outcomes.withLock { conflicts += 1 } } else { outcomes.withLock { others.append("\(error)") } }
                }
            }
            #expect(landed.count == 1 && conflicts == 7 && others.isEmpty, "landed \(landed), conflicts \(conflicts), errors \(others)")
            #expect(try store.desiredRevision(environment: "prod")?.id == landed.first)
            #expect(try store.revisions(environment: "prod").count == 2)
        }
    }

    @Test(arguments: Kind.allCases) func aStaleParentIsAConflictAndRecordsNothing(kind: Kind) throws {
        try Self.withStore(kind) { (store: any HubStore) throws in
            let r1 = try store.recordRevision(environment: "prod", documents: [Self.document("a")], author: "a", cause: "promote",
                                              at: 1, expectedParent: .mustBe(nil))
            #expect(throws: HubStoreError.self) {
                try store.recordRevision(environment: "prod", documents: [], author: "b", cause: "promote", at: 2,
                                         expectedParent: .mustBe(nil))
            }
            do throws(HubStoreError) {
                _ = try store.recordRevision(environment: "prod", documents: [], author: "b", cause: "promote", at: 2,
                                             expectedParent: .mustBe(r1.id + 100))
                Issue.record("a stale parent was recorded")
            } catch {
                guard case .conflict(let environment, _, let current) = error else {
                    Issue.record("expected a conflict, got \(error)")
                    return
                }
                #expect(environment == "prod" && current == r1.id)
            }
            #expect(try store.desiredRevision(environment: "prod") == r1)
            #expect(try store.revisions(environment: nil).count == 1)
        }
    }

    @Test(arguments: Kind.allCases) func unknownRevisionsAreErrors(kind: Kind) throws {
        try Self.withStore(kind) { (store: any HubStore) throws in
            #expect(throws: HubStoreError.self) { try store.revision(id: 42) }
            #expect(throws: HubStoreError.self) { try store.documents(revision: 42) }
            // a push of a revision that does not exist is refused, and no cluster state appears
            #expect(throws: HubStoreError.self) {
                try store.recordPush(PushRecord(cluster: "c", environment: "dev", revision: 42, desiredHash: "h", startedAt: 1,
                                                finishedAt: 2, created: 0, updated: 0, deleted: 0, error: nil))
            }
            #expect(try store.clusterStates().isEmpty)
        }
    }

    @Test(arguments: Kind.allCases) func pushesSetTheAppliedRevisionAndKeepItsTime(kind: Kind) throws {
        try Self.withStore(kind) { (store: any HubStore) throws in
            let r1 = try store.recordRevision(environment: "dev", documents: [Self.document("a")], author: "a", cause: "apply",
                                              at: 1, expectedParent: .any)
            let r2 = try store.recordRevision(environment: "dev", documents: [Self.document("b")], author: "a", cause: "apply",
                                              at: 2, expectedParent: .any)
            func push(_ revision: Int64, at: Double, error: String? = nil) throws {
                try store.recordPush(PushRecord(cluster: "dev-1", environment: "dev", revision: revision, desiredHash: "h\(revision)",
                                                startedAt: at - 1, finishedAt: at, created: 1, updated: 0, deleted: 0, error: error))
            }
            try push(r1.id, at: 100)
            var state = try #require(try store.clusterState(named: "dev-1"))
            #expect(state.appliedRevision == r1.id && state.appliedHash == "h\(r1.id)" && state.appliedAt == 100)
            #expect(state.lastResult == "ok" && state.lastError == nil && state.lastPushAt == 100)
            // pushed again at the same revision: the soak clock does not restart
            try push(r1.id, at: 200)
            state = try #require(try store.clusterState(named: "dev-1"))
            #expect(state.appliedAt == 100 && state.lastPushAt == 200)
            // a failed push keeps what the cluster holds and says why
            try push(r2.id, at: 300, error: "cluster dev-1: 503 Service Unavailable")
            state = try #require(try store.clusterState(named: "dev-1"))
            #expect(state.appliedRevision == r1.id && state.lastResult == "failed")
            #expect(state.lastError == "cluster dev-1: 503 Service Unavailable" && state.lastPushAt == 300)
            // marked applied without a push: a new revision starts a new applied time
            try store.markApplied(cluster: "dev-1", environment: "dev", revision: r2.id, hash: "h2", at: 400)
            state = try #require(try store.clusterState(named: "dev-1"))
            #expect(state.appliedRevision == r2.id && state.appliedAt == 400)
            try store.markApplied(cluster: "dev-1", environment: "dev", revision: r2.id, hash: "h2", at: 500)
            #expect(try store.clusterState(named: "dev-1")?.appliedAt == 400)
            #expect(try store.clusterStates().map(\.cluster) == ["dev-1"])
            #expect(try store.clusterState(named: "nope") == nil)
        }
    }

    /// A push replaces a cluster's applied objects; one that started from the stored set writes only what it
    /// changed there (changed, added, removed) and the rest stays; a failed push keeps the set.
    @Test(arguments: Kind.allCases) func appliedObjectsAreReplacedOrChangedInPlace(kind: Kind) throws {
        try Self.withStore(kind) { (store: any HubStore) throws in
            let r1 = try store.recordRevision(environment: "dev", documents: [Self.document("a")], author: "a", cause: "apply",
                                              at: 1, expectedParent: .any)
            func object(_ name: String, _ hash: String, _ revision: Int64, namespace: String = "") -> AppliedObject {
                AppliedObject(identity: ObjectIdentity(kind: namespace.isEmpty ? .clusterSecurityRule : .securityRule,
                                                       namespace: namespace, name: name), hash: hash, revision: revision)
            }
            func push(_ objects: [AppliedObject]?, changes: AppliedChanges? = nil, error: String? = nil) throws {
                var record = PushRecord(cluster: "dev-1", environment: "dev", revision: r1.id, desiredHash: "h", startedAt: 1,
                                        finishedAt: 2, created: 0, updated: 0, deleted: 0, error: error, objects: objects)
                record.objectChanges = changes
                try store.recordPush(record)
            }
            func held() throws -> [AppliedObject] { try store.appliedObjects(cluster: "dev-1").values.sorted { $0.identity < $1.identity } }
            let first = [object("a", "ha", 1), object("b", "hb", 1), object("c", "hc", 1, namespace: "demo")]
            try push(first)
            #expect(try held() == first)
            // from the stored set: b changed, c removed, d added; a untouched
            let second = [object("a", "ha", 1), object("b", "hb2", 2), object("d", "hd", 2)]
            try push(second, changes: AppliedChanges(write: [object("b", "hb2", 2), object("d", "hd", 2)],
                                                     remove: [object("c", "hc", 1, namespace: "demo").identity]))
            #expect(try held() == second.sorted { $0.identity < $1.identity })
            // a failed push keeps the set; a push without objects keeps it too
            try push(nil, error: "cluster dev-1: 503")
            try push(nil)
            #expect(try held() == second.sorted { $0.identity < $1.identity })
            // a full replace (no stored set trusted) drops whatever is not in it
            try push([object("z", "hz", 3)])
            #expect(try held() == [object("z", "hz", 3)])
            #expect(try store.appliedObjects(cluster: "other").isEmpty)
        }
    }

    /// The soak of one document reads the first successful push of a run of revisions to a cluster.
    /// Pushes recorded as a batch are recorded as one by one would be: each cluster's state and objects, a
    /// record the store refuses costing only itself; objects read for many clusters are each one's own set.
    @Test(arguments: Kind.allCases) func batchesOfPushesAndOfAppliedObjectsMatchOneByOne(kind: Kind) throws {
        try Self.withStore(kind) { (store: any HubStore) throws in
            let r1 = try store.recordRevision(environment: "dev", documents: [Self.document("a")], author: "a", cause: "apply",
                                              at: 1, expectedParent: .any)
            func record(_ cluster: String, revision: Int64, error: String? = nil) -> PushRecord {
                let objects = (0..<(cluster.hasSuffix("7") ? 0 : 3)).map { index in
                    AppliedObject(identity: ObjectIdentity(kind: .securityRule, namespace: "ns", name: "\(cluster)-\(index)"),
                                  hash: "h\(index)", revision: revision)
                }
                return PushRecord(cluster: cluster, environment: "dev", revision: revision, desiredHash: "h-" + cluster, startedAt: 1,
                                  finishedAt: 2, created: objects.count, updated: 0, deleted: 0, error: error,
                                  objects: error == nil ? objects : nil)
            }
            // more clusters than one read of the batch takes
            let names = (0..<600).map { "c\($0)" }
            let errors = store.recordPushes(names.map { record($0, revision: r1.id, error: $0 == "c5" ? "cluster c5: 503" : nil) })
            #expect(errors.count == names.count && errors.compactMap { $0 }.isEmpty)
            let states = Dictionary(uniqueKeysWithValues: try store.clusterStates().map { ($0.cluster, $0) })
            #expect(states.count == 600)
            #expect(states["c1"]?.appliedHash == "h-c1" && states["c1"]?.lastResult == "ok")
            #expect(states["c5"]?.lastResult == "failed" && states["c5"]?.lastError == "cluster c5: 503")
            let read = try store.appliedObjects(clusters: names + ["never-pushed"])
            #expect(read.count == 601 && read["never-pushed"]?.isEmpty == true && read["c7"]?.isEmpty == true)
            for name in ["c0", "c5", "c7", "c499", "c500", "c599"] {
                #expect(read[name] == (try store.appliedObjects(cluster: name)), "\(name)")
            }
            #expect(read["c599"]?.count == 3)
            // a record the store refuses on its own (a revision it does not have) fails alone in a batch too
            let refusedAlone: Bool
            do { try store.recordPush(record("alone", revision: 999)); refusedAlone = false } catch { refusedAlone = true }
            let mixed = store.recordPushes([record("m1", revision: r1.id), record("m2", revision: 999), record("m3", revision: r1.id)])
            let failed = mixed.map { $0 != nil }
            #expect(failed == [false, refusedAlone, false])
            #expect(try store.clusterState(named: "m1")?.appliedHash == "h-m1" && store.clusterState(named: "m3")?.appliedHash == "h-m3")
        }
    }

    @Test(arguments: Kind.allCases) func theFirstSuccessfulPushOfARunOfRevisions(kind: Kind) throws {
        try Self.withStore(kind) { (store: any HubStore) throws in
            var ids: [Int64] = []
            for index in 0..<3 {
                ids.append(try store.recordRevision(environment: "dev", documents: [Self.document("d\(index)")], author: "a", cause: "apply",
                                                    at: Double(index), expectedParent: .any).id)
            }
            let other = try store.recordRevision(environment: "prod", documents: [Self.document("p")], author: "a", cause: "promote",
                                                 at: 9, expectedParent: .any).id
            func push(_ cluster: String, _ environment: String, _ revision: Int64, at: Double, error: String? = nil) throws {
                try store.recordPush(PushRecord(cluster: cluster, environment: environment, revision: revision, desiredHash: "h",
                                                startedAt: at - 1, finishedAt: at, created: 1, updated: 0, deleted: 0, error: error))
            }
            try push("dev-1", "dev", ids[0], at: 100)
            try push("dev-1", "dev", ids[1], at: 200, error: "refused")
            try push("dev-1", "dev", ids[1], at: 300)
            try push("dev-1", "dev", ids[2], at: 400)
            try push("prod-1", "prod", other, at: 50)
            #expect(try store.firstSuccessfulPush(cluster: "dev-1", environment: "dev", revisions: ids[0], through: ids[2]) == 100)
            #expect(try store.firstSuccessfulPush(cluster: "dev-1", environment: "dev", revisions: ids[1], through: ids[2]) == 300,
                    "a failed push does not count")
            #expect(try store.firstSuccessfulPush(cluster: "dev-1", environment: "dev", revisions: ids[2], through: ids[2]) == 400)
            #expect(try store.firstSuccessfulPush(cluster: "prod-1", environment: "dev", revisions: ids[0], through: other) == nil,
                    "another environment's pushes do not count")
            #expect(try store.firstSuccessfulPush(cluster: "dev-2", environment: "dev", revisions: ids[0], through: ids[2]) == nil)
        }
    }

    @Test(arguments: Kind.allCases) func driftReportsAndChecksComeBackNewestFirst(kind: Kind) throws {
        try Self.withStore(kind) { (store: any HubStore) throws in
            #expect(try store.driftReports(limit: 5).isEmpty)
            #expect(try store.latestDriftCheck(environment: "dev") == nil)
            let first = try store.recordDriftReport(json: "{\"n\":1}", findings: 3, byEnvironment: ["dev": 3, "prod": 0], at: 10)
            let second = try store.recordDriftReport(json: "{\"n\":2}", findings: 0, byEnvironment: ["dev": 0], at: 20)
            #expect(second > first)
            let reports = try store.driftReports(limit: 5)
            #expect(reports.map(\.id) == [second, first] && reports.map(\.json) == ["{\"n\":2}", "{\"n\":1}"])
            #expect(reports.last?.findings == 3 && reports.last?.at == 10)
            #expect(try store.driftReports(limit: 1).map(\.id) == [second])
            #expect(try store.latestDriftCheck(environment: "dev")?.findings == 0)
            #expect(try store.latestDriftCheck(environment: "prod")?.at == 10)
            try store.recordDriftCheck(environment: "prod", findings: 7, at: 30)
            #expect(try store.latestDriftCheck(environment: "prod")?.findings == 7)
        }
    }

    @Test(arguments: Kind.allCases) func theAuditLogIsNewestFirstAndLimited(kind: Kind) throws {
        try Self.withStore(kind) { (store: any HubStore) throws in
            for index in 1...5 { try store.audit(actor: "u\(index)", action: "denied", detail: "403 GET /v1/x", at: Double(index)) }
            let entries = try store.auditLog(limit: 3)
            #expect(entries.map(\.actor) == ["u5", "u4", "u3"])
            #expect(entries.first?.detail == "403 GET /v1/x" && entries.first?.at == 5)
        }
    }

    @Test func locksOfAStoreWithoutLockFilesAreExclusive() {
        let store = MemoryHubStore()
        #expect(store.lockBase == nil)
        let state = store.inProcessLock("state")
        #expect(state === store.inProcessLock("state"))
        #expect(state !== store.inProcessLock("push"))
        #expect(state.tryAcquire())
        #expect(!state.tryAcquire())
        state.release()
        #expect(state.tryAcquire())
    }
}
