import Foundation
import PolicyCore

/// One policy document as a revision holds it: stored once, by content hash.
public struct StoredDocument: Sendable, Hashable {
    /// `sha256:` of the source path and the canonical object.
    public var hash: String
    public var identity: ObjectIdentity
    /// Repository path the document was read from.
    public var source: String
    /// The object as compact canonical JSON.
    public var body: String

    public init(hash: String, identity: ObjectIdentity, source: String, body: String) {
        self.hash = hash
        self.identity = identity
        self.source = source
        self.body = body
    }

    /// The stored form of a validated document.
    public init(_ document: PlacedDocument) {
        let value = document.object.wireValue
        self.init(hash: ContentHash.of(.map([Value.MapEntry("source", .string(document.source)),
                                            Value.MapEntry("object", value)])),
                  identity: document.object.identity, source: document.source, body: JSONWriter.compact(value))
    }
}

/// An immutable snapshot of an environment's desired policy tree (SEMANTICS §4).
public struct Revision: Sendable, Hashable {
    public var id: Int64
    public var environment: String
    public var parent: Int64?
    public var author: String
    /// Seconds since 1970.
    public var createdAt: Double
    /// What produced it: `apply`, `promote`, `rollback`, `api`.
    public var cause: String
    /// Hash of the set of its documents: two revisions with the same documents have the same tree hash.
    public var treeHash: String
    public var documentCount: Int
    /// The git commit it was recorded from (a promotion or rollback carries its source's); nil when the
    /// repository is not a git work tree, or for a document write through the API.
    public var commit: CommitProvenance?

    public init(id: Int64, environment: String, parent: Int64?, author: String, createdAt: Double, cause: String,
                treeHash: String, documentCount: Int, commit: CommitProvenance? = nil) {
        self.commit = commit
        self.id = id
        self.environment = environment
        self.parent = parent
        self.author = author
        self.createdAt = createdAt
        self.cause = cause
        self.treeHash = treeHash
        self.documentCount = documentCount
    }
}

/// What the hub knows of one member cluster.
public struct ClusterState: Sendable, Hashable {
    public var cluster: String
    public var environment: String
    public var appliedRevision: Int64?
    /// The hash of the effective policy last applied (see `EffectivePolicy.contentHash`).
    public var appliedHash: String?
    /// When the cluster first held its applied revision.
    public var appliedAt: Double?
    public var lastPushAt: Double?
    /// `ok` or `failed`.
    public var lastResult: String?
    public var lastError: String?
    /// The target the applied policy was pushed to (`HubSession.targetKey`): a cluster whose target changed
    /// is not in step until it is pushed to the new one (SEMANTICS §5).
    public var appliedTarget: String?
    /// Why the cluster does not hold what the store says it applied (drift found, objects NeuVector rejected,
    /// a failed push); nil when it does. The next push compares with what the member holds.
    public var outOfStep: String?

    public init(cluster: String, environment: String, appliedRevision: Int64? = nil, appliedHash: String? = nil,
                appliedAt: Double? = nil, lastPushAt: Double? = nil, lastResult: String? = nil, lastError: String? = nil,
                appliedTarget: String? = nil, outOfStep: String? = nil) {
        self.cluster = cluster
        self.environment = environment
        self.appliedRevision = appliedRevision
        self.appliedHash = appliedHash
        self.appliedAt = appliedAt
        self.lastPushAt = lastPushAt
        self.lastResult = lastResult
        self.lastError = lastError
        self.appliedTarget = appliedTarget
        self.outOfStep = outOfStep
    }
}

/// The outcome of pushing one cluster.
public struct PushRecord: Sendable, Hashable {
    public var cluster: String
    public var environment: String
    public var revision: Int64
    public var desiredHash: String
    public var startedAt: Double
    public var finishedAt: Double
    public var created: Int
    public var updated: Int
    public var deleted: Int
    /// Nil when the push succeeded.
    public var error: String?
    /// Where it was pushed (`ClusterState.appliedTarget`).
    public var target: String?
    /// What the cluster holds after the push, every object the hub manages there; nil keeps the stored set.
    /// A successful push replaces the set; a failed one keeps it and leaves the cluster out of step.
    public var objects: [AppliedObject]?
    /// What the push changed in the stored set, when it started from that set (`PushOutcome.recordChanges`): a store
    /// then writes only these rows, not the whole of `objects`.
    public var objectChanges: AppliedChanges?

    public init(cluster: String, environment: String, revision: Int64, desiredHash: String, startedAt: Double,
                finishedAt: Double, created: Int, updated: Int, deleted: Int, error: String?, target: String? = nil,
                objects: [AppliedObject]? = nil) {
        self.target = target
        self.objects = objects
        self.cluster = cluster
        self.environment = environment
        self.revision = revision
        self.desiredHash = desiredHash
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.created = created
        self.updated = updated
        self.deleted = deleted
        self.error = error
    }
}

/// One line of the audit log: who did what, when.
public struct AuditEntry: Sendable, Hashable {
    public var id: Int64
    public var at: Double
    public var actor: String
    public var action: String
    public var detail: String

    public init(id: Int64, at: Double, actor: String, action: String, detail: String) {
        self.id = id
        self.at = at
        self.actor = actor
        self.action = action
        self.detail = detail
    }
}

/// Errors of the store, each naming the state file.
public enum HubStoreError: Error, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case failed(path: String, operation: String, reason: String)
    case unknownRevision(Int64)
    /// Another writer changed the environment's desired revision first.
    case conflict(environment: String, expected: Int64?, current: Int64?)
    /// A fence of the task (`StoreFence`) no longer holds: this replica lost the lease or claim it wrote under,
    /// so nothing was written.
    case fenced(StoreFence)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): return "cannot open the state \(HubStoreError.what(path)) \(path): \(reason)"
        case .failed(let path, let operation, let reason): return "state \(HubStoreError.what(path)) \(path): \(operation) failed: \(reason)"
        case .unknownRevision(let id): return "revision \(id) does not exist"
        case .conflict(let environment, let expected, let current):
            return "\(environment) changed while this was prepared: its desired revision is now \(current.map { "r\($0)" } ?? "none"), not \(expected.map { "r\($0)" } ?? "none"); nothing was recorded, try again"
        case .fenced(let fence):
            return "this replica no longer holds \(fence) (it expired or another replica took it over); nothing was written"
        }
    }
}

extension HubStoreError {
    /// "database" for a PostgreSQL location, "file" for a SQLite one.
    static func what(_ path: String) -> String { path.hasPrefix("postgres") ? "database" : "file" }
}

/// What a revision's parent must be for it to be recorded (optimistic concurrency).
public enum ExpectedParent: Sendable, Hashable {
    case any
    /// The environment's desired revision must still be this one (nil: it must have none).
    case mustBe(Int64?)
}

/// The hub's durable state: the seam the engine writes through. `SQLiteHubStore` keeps it in a file;
/// `MemoryHubStore` in this process (tests of the engine and the API). Both pass `HubStoreContractTests`.
public protocol HubStore: Sendable {
    /// Where the state's lock files go (`<base>.lock`, `<base>.push.lock`); nil for a store that lives in
    /// this process only, whose locks are in-process (`inProcessLock`).
    var lockBase: String? { get }
    /// The in-process lock of a store without a lock base, one per purpose name.
    func inProcessLock(_ purpose: String) -> InProcessLock
    /// Records a revision of `environment` with these documents (from `commit`, when known), as its new
    /// desired revision, and audits it.
    func recordRevision(environment: String, documents: [StoredDocument], author: String, cause: String,
                        at: Double, expectedParent: ExpectedParent, commit: CommitProvenance?) throws(HubStoreError) -> Revision
    /// The environment's desired revision, or nil before its first.
    func desiredRevision(environment: String) throws(HubStoreError) -> Revision?
    func revision(id: Int64) throws(HubStoreError) -> Revision
    /// The documents of a revision, sorted by identity.
    func documents(revision: Int64) throws(HubStoreError) -> [StoredDocument]
    /// Revisions, newest first, of one environment or of all.
    func revisions(environment: String?) throws(HubStoreError) -> [Revision]
    func clusterStates() throws(HubStoreError) -> [ClusterState]
    /// One cluster's state, or nil before its first push.
    func clusterState(named cluster: String) throws(HubStoreError) -> ClusterState?
    /// Stores a drift report (its JSON) and one drift check per environment, as one change.
    func recordDriftReport(json: String, findings: Int, byEnvironment: [String: Int], at: Double) throws(HubStoreError) -> Int64
    /// Drift reports, newest first.
    func driftReports(limit: Int) throws(HubStoreError) -> [StoredDriftReport]
    /// Records a push; a successful one also sets the cluster's applied revision, hash, target and objects and
    /// clears `outOfStep`; a failed one sets `outOfStep` to its error.
    func recordPush(_ push: PushRecord) throws(HubStoreError)
    /// Records several pushes as `recordPush` does each, as one change where the store can (a fleet's pushes
    /// finish by the hundred a second; one transaction each was most of recording them): each push's error,
    /// or nil where it was recorded.
    func recordPushes(_ pushes: [PushRecord]) -> [HubStoreError?]
    /// When the first successful push to `cluster` of a revision of `environment` with an id from `first`
    /// through `last` finished; nil when there was none (the soak of one document: since when the cluster has
    /// held one of the revisions that all carry that document as it is now).
    func firstSuccessfulPush(cluster: String, environment: String, revisions first: Int64, through last: Int64) throws(HubStoreError) -> Double?
    /// Marks a cluster as holding `revision` without a push (its effective policy did not change).
    func markApplied(cluster: String, environment: String, revision: Int64, hash: String, at: Double) throws(HubStoreError)
    /// The objects last applied to a cluster, by identity (empty before its first push).
    func appliedObjects(cluster: String) throws(HubStoreError) -> [ObjectIdentity: AppliedObject]
    /// `appliedObjects(cluster:)` of each of `clusters`, read at once where the store can; a cluster never
    /// pushed has an empty set.
    func appliedObjects(clusters: [String]) throws(HubStoreError) -> [String: [ObjectIdentity: AppliedObject]]
    /// Records that a cluster does not hold what was applied (drift found it), with why; the next push
    /// compares with the member. A cluster never pushed gets a row too. Nil: it holds it again.
    func markOutOfStep(cluster: String, environment: String, reason: String?) throws(HubStoreError)
    /// Records the outcome of a drift check of an environment (how many findings).
    func recordDriftCheck(environment: String, findings: Int, at: Double) throws(HubStoreError)
    func latestDriftCheck(environment: String) throws(HubStoreError) -> (at: Double, findings: Int)?
    func audit(actor: String, action: String, detail: String, at: Double) throws(HubStoreError)
    func auditLog(limit: Int) throws(HubStoreError) -> [AuditEntry]
}

/// A stored drift report: id, time, drift findings and the report's compact JSON.
public struct StoredDriftReport: Sendable, Hashable {
    public var id: Int64
    public var at: Double
    public var findings: Int
    public var json: String

    public init(id: Int64, at: Double, findings: Int, json: String) {
        self.id = id
        self.at = at
        self.findings = findings
        self.json = json
    }
}

extension HubStore {
    public func recordPushes(_ pushes: [PushRecord]) -> [HubStoreError?] { recordEach(pushes) }

    /// One `recordPush` after the other, each push's error or nil.
    public func recordEach(_ pushes: [PushRecord]) -> [HubStoreError?] {
        pushes.map { push in
            do throws(HubStoreError) {
                try recordPush(push)
                return nil
            } catch {
                return error
            }
        }
    }

    /// One `appliedObjects(cluster:)` after the other.
    public func appliedObjects(clusters: [String]) throws(HubStoreError) -> [String: [ObjectIdentity: AppliedObject]] {
        var out: [String: [ObjectIdentity: AppliedObject]] = [:]
        for cluster in clusters { out[cluster] = try appliedObjects(cluster: cluster) }
        return out
    }

    /// Records a revision that no commit is known for.
    public func recordRevision(environment: String, documents: [StoredDocument], author: String, cause: String,
                               at: Double, expectedParent: ExpectedParent) throws(HubStoreError) -> Revision {
        try recordRevision(environment: environment, documents: documents, author: author, cause: cause, at: at,
                           expectedParent: expectedParent, commit: nil)
    }

    /// The audit line of a recorded revision (the same in every store).
    public static func revisionAuditDetail(_ revision: Revision) -> String {
        "revision \(revision.id) of \(revision.environment) (\(revision.cause), \(revision.documentCount) documents)"
            + (revision.commit.map { ", " + $0.summary } ?? "")
    }
}

extension StoredDocument {
    /// The tree hash a revision of these documents gets (the same in every store).
    public static func treeHash(_ documents: [StoredDocument]) -> String {
        ContentHash.of(.list(documents.map(\.hash).sorted().map(Value.string)))
    }
}

/// A lock held in the database, across processes and machines (a PostgreSQL advisory lock on a connection
/// of its own); released by `release()`, or by the database when the holder's connection ends (a killed
/// process holds nothing).
public protocol DatabaseLock: AnyObject, Sendable {
    func release()
}

/// Stores whose locks live in the database itself.
public protocol DatabaseLocking: HubStore {
    /// Takes the lock named `purpose` when it is free; nil when another holder has it.
    func tryDatabaseLock(_ purpose: String) throws(HubStoreError) -> (any DatabaseLock)?
}

/// A lock held within one process (a store without lock files): taken by polling, released by any thread,
/// so that async code that resumes elsewhere can release it.
public final class InProcessLock: @unchecked Sendable {
    private let mutex = NSLock()
    private var held = false

    public init() {}

    /// Takes the lock when it is free; false when another holder has it.
    public func tryAcquire() -> Bool {
        mutex.lock()
        defer { mutex.unlock() }
        if held { return false }
        held = true
        return true
    }

    /// Takes the lock, polling every `poll` seconds for up to `timeout` seconds; false when it stayed taken.
    public func acquire(timeout: Double, poll: Double = 0.005) -> Bool {
        var waited = 0.0
        while !tryAcquire() {
            if waited >= timeout { return false }
            usleep(UInt32(poll * 1e6))
            waited += poll
        }
        return true
    }

    public func release() {
        mutex.lock()
        held = false
        mutex.unlock()
    }
}

/// In-process locks by name, each made on first use.
public final class InProcessLocks: @unchecked Sendable {
    private let mutex = NSLock()
    private var byName: [String: InProcessLock] = [:]

    public init() {}

    public func lock(_ name: String) -> InProcessLock {
        mutex.withLock {
            if let known = byName[name] { return known }
            let made = InProcessLock()
            byName[name] = made
            return made
        }
    }
}
