import Foundation
import PolicyCore

/// `HubStore` in this process's memory, with the same rules as `SQLiteHubStore` (compare-and-swap of a
/// desired revision, applied times kept while the revision stays, every revision audited). For tests of
/// the engine and the API; nothing survives the process.
public final class MemoryHubStore: HubStore, @unchecked Sendable {
    private let mutex = NSLock()
    private var documentsByHash: [String: StoredDocument] = [:]
    private var revisionsByID: [Int64: Revision] = [:]
    private var revisionDocuments: [Int64: Set<String>] = [:]
    private var desired: [String: Int64] = [:]
    private var clusters: [String: ClusterState] = [:]
    private var pushes: [PushRecord] = []
    private var applied: [String: [ObjectIdentity: AppliedObject]] = [:]
    private var driftChecks: [(environment: String, at: Double, findings: Int)] = []
    private var reports: [StoredDriftReport] = []
    private var auditEntries: [AuditEntry] = []
    private var nextRevision: Int64 = 1
    private let locks = InProcessLocks()

    public init() {}

    public var lockBase: String? { nil }

    public func inProcessLock(_ purpose: String) -> InProcessLock { locks.lock(purpose) }

    private func locked<T>(_ body: () throws(HubStoreError) -> T) throws(HubStoreError) -> T {
        mutex.lock()
        defer { mutex.unlock() }
        return try body()
    }

    private func locked<T>(_ body: () -> T) -> T {
        mutex.lock()
        defer { mutex.unlock() }
        return body()
    }

    /// Every push recorded, oldest first (tests read what the engine pushed).
    public var pushRecords: [PushRecord] { locked { pushes } }

    public func recordRevision(environment: String, documents: [StoredDocument], author: String, cause: String,
                               at: Double, expectedParent: ExpectedParent, commit: CommitProvenance?) throws(HubStoreError) -> Revision {
        try locked { () throws(HubStoreError) -> Revision in
            let parent = desired[environment]
            if case .mustBe(let expected) = expectedParent, expected != parent {
                throw HubStoreError.conflict(environment: environment, expected: expected, current: parent)
            }
            for document in documents where documentsByHash[document.hash] == nil { documentsByHash[document.hash] = document }
            let id = nextRevision
            nextRevision += 1
            let revision = Revision(id: id, environment: environment, parent: parent, author: author, createdAt: at, cause: cause,
                                    treeHash: StoredDocument.treeHash(documents), documentCount: documents.count, commit: commit)
            revisionsByID[id] = revision
            revisionDocuments[id] = Set(documents.map(\.hash))
            desired[environment] = id
            appendAudit(actor: author, action: "revision", detail: Self.revisionAuditDetail(revision), at: at)
            return revision
        }
    }

    public func desiredRevision(environment: String) throws(HubStoreError) -> Revision? {
        locked { desired[environment].flatMap { revisionsByID[$0] } }
    }

    public func revision(id: Int64) throws(HubStoreError) -> Revision {
        guard let found = locked({ revisionsByID[id] }) else { throw .unknownRevision(id) }
        return found
    }

    public func documents(revision: Int64) throws(HubStoreError) -> [StoredDocument] {
        _ = try self.revision(id: revision)
        return locked {
            (revisionDocuments[revision] ?? []).compactMap { documentsByHash[$0] }.sorted { $0.identity < $1.identity }
        }
    }

    public func revisions(environment: String?) throws(HubStoreError) -> [Revision] {
        locked { revisionsByID.values.filter { environment == nil || $0.environment == environment }.sorted { $0.id > $1.id } }
    }

    public func clusterStates() throws(HubStoreError) -> [ClusterState] {
        locked { clusters.values.sorted { $0.cluster < $1.cluster } }
    }

    public func clusterState(named cluster: String) throws(HubStoreError) -> ClusterState? {
        locked { clusters[cluster] }
    }

    public func recordPush(_ push: PushRecord) throws(HubStoreError) {
        try locked { () throws(HubStoreError) in
            guard revisionsByID[push.revision] != nil else { throw .unknownRevision(push.revision) }
            pushes.append(push)
            var state = clusters[push.cluster] ?? ClusterState(cluster: push.cluster, environment: push.environment)
            state.environment = push.environment
            state.lastPushAt = push.finishedAt
            if push.error == nil {
                if state.appliedRevision != push.revision { state.appliedAt = push.finishedAt }
                state.appliedRevision = push.revision
                state.appliedHash = push.desiredHash
                state.lastResult = "ok"
                state.lastError = nil
                state.appliedTarget = push.target
                state.outOfStep = nil
            } else {
                state.lastResult = "failed"
                state.lastError = push.error
                state.outOfStep = push.error
            }
            clusters[push.cluster] = state
            if push.error == nil, let changes = push.objectChanges {
                for object in changes.write { applied[push.cluster, default: [:]][object.identity] = object }
                for identity in changes.remove { applied[push.cluster]?[identity] = nil }
            } else if let objects = push.objects {
                applied[push.cluster] = Dictionary(objects.map { ($0.identity, $0) }, uniquingKeysWith: { _, b in b })
            }
        }
    }

    public func appliedObjects(cluster: String) throws(HubStoreError) -> [ObjectIdentity: AppliedObject] {
        locked { applied[cluster] ?? [:] }
    }

    public func markOutOfStep(cluster: String, environment: String, reason: String?) throws(HubStoreError) {
        locked {
            var state = clusters[cluster] ?? ClusterState(cluster: cluster, environment: environment)
            state.outOfStep = reason
            clusters[cluster] = state
        }
    }

    public func firstSuccessfulPush(cluster: String, environment: String, revisions first: Int64, through last: Int64) throws(HubStoreError) -> Double? {
        locked {
            pushes.filter { $0.cluster == cluster && $0.environment == environment && $0.error == nil && (first...last).contains($0.revision) }
                .map(\.finishedAt).min()
        }
    }

    public func markApplied(cluster: String, environment: String, revision: Int64, hash: String, at: Double) throws(HubStoreError) {
        try locked { () throws(HubStoreError) in
            guard revisionsByID[revision] != nil else { throw .unknownRevision(revision) }
            var state = clusters[cluster] ?? ClusterState(cluster: cluster, environment: environment)
            state.environment = environment
            if state.appliedRevision != revision { state.appliedAt = at }
            state.appliedRevision = revision
            state.appliedHash = hash
            clusters[cluster] = state
        }
    }

    public func recordDriftReport(json: String, findings: Int, byEnvironment: [String: Int], at: Double) throws(HubStoreError) -> Int64 {
        locked {
            let id = Int64(reports.count + 1)
            reports.append(StoredDriftReport(id: id, at: at, findings: findings, json: json))
            for (environment, count) in byEnvironment.sorted(by: { $0.key < $1.key }) {
                driftChecks.append((environment, at, count))
            }
            return id
        }
    }

    public func driftReports(limit: Int) throws(HubStoreError) -> [StoredDriftReport] {
        locked { Array(reports.reversed().prefix(max(0, limit))) }
    }

    public func recordDriftCheck(environment: String, findings: Int, at: Double) throws(HubStoreError) {
        locked { driftChecks.append((environment, at, findings)) }
    }

    public func latestDriftCheck(environment: String) throws(HubStoreError) -> (at: Double, findings: Int)? {
        locked { driftChecks.last { $0.environment == environment }.map { (at: $0.at, findings: $0.findings) } }
    }

    public func audit(actor: String, action: String, detail: String, at: Double) throws(HubStoreError) {
        locked { appendAudit(actor: actor, action: action, detail: detail, at: at) }
    }

    /// Called with the mutex held.
    private func appendAudit(actor: String, action: String, detail: String, at: Double) {
        auditEntries.append(AuditEntry(id: Int64(auditEntries.count + 1), at: at, actor: actor, action: action, detail: detail))
    }

    public func auditLog(limit: Int) throws(HubStoreError) -> [AuditEntry] {
        locked { Array(auditEntries.reversed().prefix(max(0, limit))) }
    }
}
