import HubEngine
import HubStore
import HubTransport
import PolicyCore

/// What the hub does for the API and the scheduler: the same engine, store and members the CLI uses.
/// The CLI supplies the live implementation (`policyhub serve`); results are JSON-shaped `Value`s.
public protocol HubOperations: Sendable {
    /// Every cluster with its environment, desired and applied revision and last push.
    func clusters() async throws(OperationError) -> Value
    /// One cluster's status.
    func cluster(named name: String) async throws(OperationError) -> Value
    /// The effective policy of a cluster for its environment's desired revision, as JSON (clusters of one
    /// placement class share their objects, so implementations may keep them encoded).
    func effectivePolicy(cluster: String) async throws(OperationError) -> [UInt8]
    /// Environments with their desired revision.
    func environments() async throws(OperationError) -> Value
    /// The revisions of an environment, newest first.
    func revisions(environment: String, limit: Int) async throws(OperationError) -> Value
    /// The documents of the root environment's desired revision (identity, source, hash).
    func documents() async throws(OperationError) -> Value
    /// One document of the root environment: its identity, source and YAML.
    func document(_ identity: ObjectIdentity) async throws(OperationError) -> Value
    /// Validates `yaml` as the new version of `identity` (or, with nil, a removal) in the root environment's
    /// tree and records a revision by `author`; a document equal to the one held records nothing. With a
    /// `precondition`, a change of this document since (never of another one) makes it a conflict.
    func writeDocument(_ identity: ObjectIdentity, yaml: [UInt8]?, precondition: DocumentPrecondition?, author: String)
        async throws(OperationError) -> Value
    /// A promotion (`dryRun` records nothing).
    func promote(_ request: PromotionRequest, author: String) async throws(OperationError) -> Value
    /// A rollback of `environment` to revision `to`, with why.
    func rollback(environment: String, to: Int64, author: String, reason: String) async throws(OperationError) -> Value
    /// Runs a drift report now, stores it and returns it with the number of new findings.
    func runDriftReport(author: String) async throws(OperationError) -> DriftRun
    /// The latest stored drift report.
    func latestDriftReport() async throws(OperationError) -> Value
    /// Earlier drift reports (id, time, findings).
    func driftReports(limit: Int) async throws(OperationError) -> Value
    /// The time of the latest stored drift report, if any.
    func lastDriftReportTime() async throws(OperationError) -> Double?
    /// One sync of the followed branch (fetch, record each new commit or reject it, push); nil when the
    /// daemon follows no branch.
    func followBranch() async throws(OperationError) -> FollowRun?
    /// Pushes every cluster whose applied revision is not its environment's desired one.
    func reconcile(author: String) async throws(OperationError) -> ReconcileRun
    /// One turn of tamper detection: hand-made changes reported at once (a drift report, returned when one
    /// was recorded), and put back on the clusters of `selfHeal` environments.
    func heal(author: String) async throws(OperationError) -> SelfHealRun
    /// The same turn limited to `clusters` (those a watch saw changed).
    func heal(author: String, clusters: Set<String>) async throws(OperationError) -> SelfHealRun
    /// The clusters the daemon watches (or those of `clusters`; of those, the ones `owned` accepts),
    /// Kubernetes members talking through `transport`.
    func watchTargets(clusters: Set<String>?, owned: (@Sendable (String) -> Bool)?, transport: any HTTPTransport) async throws(OperationError)
        -> (targets: [WatchTarget], problems: [String])
    /// Each environment's desired revision (the watches follow a change of any of them).
    func desiredRevisions() async throws(OperationError) -> [String: Int64]
    /// The audit log, newest first.
    func audit(limit: Int) async throws(OperationError) -> Value
    /// Whether the store and the repository can be read (for /readyz), or why not.
    func readiness() async -> Readiness
    /// Writes a refused request (401 or 403) to the audit log: who (a token's name, or "anonymous"), the
    /// route and the path asked for. A failure to write is logged, never answered.
    func auditDenied(principal: String, method: String, route: String, path: String, status: Int) async
    /// The store when replicas share it (PostgreSQL): the daemon then elects a leader for its scheduled jobs.
    var sharedStore: (any WorkSharing)? { get }
}

extension HubOperations {
    public var sharedStore: (any WorkSharing)? { nil }
}

/// What `/readyz` answers.
public enum Readiness: Sendable, Hashable {
    /// Everything reads.
    case ready
    /// Serving, but from the last valid state (SEMANTICS §8): why, in words.
    case degraded(String)
    /// Cannot serve: why.
    case notReady(String)
}

/// A promotion asked for through the API, with the CLI's selection words.
public struct PromotionRequest: Sendable, Hashable {
    public var to: String
    public var namespaces: [String]
    public var globals: [String]
    public var documents: [String]
    public var all: Bool
    public var force: Bool
    public var dryRun: Bool
    /// The target's desired revision the caller saw; a different current one is a conflict (409).
    public var baseRevision: Int64?
    /// Why gates are overridden (required with `force` when one fails).
    public var reason: String?
    /// The source revision to promote (`rN` or a commit id); nil: the source's desired one.
    public var from: String?

    public init(to: String, namespaces: [String] = [], globals: [String] = [], documents: [String] = [], all: Bool = false,
                force: Bool = false, dryRun: Bool = false, baseRevision: Int64? = nil, reason: String? = nil, from: String? = nil) {
        self.reason = reason
        self.from = from
        self.to = to
        self.namespaces = namespaces
        self.globals = globals
        self.documents = documents
        self.all = all
        self.force = force
        self.dryRun = dryRun
        self.baseRevision = baseRevision
    }
}

/// The outcome of a drift report run.
/// What one self-heal turn did: the drift report it recorded (nil: nothing new) and the clusters it put back.
public struct SelfHealRun: Sendable {
    public var report: DriftRun?
    /// Each repaired cluster with how many findings it had.
    public var repaired: [String: Int]
    public var failures: [String]
    /// True when another push held the push lock and nothing was looked at.
    public var skipped = false

    public init(report: DriftRun?, repaired: [String: Int], failures: [String], skipped: Bool = false) {
        self.report = report
        self.repaired = repaired
        self.failures = failures
        self.skipped = skipped
    }
}

public struct DriftRun: Sendable {
    public var report: Value
    /// Findings that are drift (unmanaged objects are reported, not drift).
    public var driftFindings: Int
    /// Findings new since the previous report.
    public var newFindings: Int
    /// Drift findings per cluster, every cluster of the report (0 for a clean one).
    public var findingsByCluster: [String: Int]
    /// Clusters the self-heal put back after this report (the webhook's event is then `self-heal`).
    public var repaired: [String] = []

    public init(report: Value, driftFindings: Int, newFindings: Int, findingsByCluster: [String: Int] = [:]) {
        self.report = report
        self.driftFindings = driftFindings
        self.newFindings = newFindings
        self.findingsByCluster = findingsByCluster
    }
}

/// The outcome of a reconcile.
public struct ReconcileRun: Sendable {
    public var pushed: Int
    public var failed: Int
    public var inStep: Int
    public var failures: [String]
    /// Each pushed cluster and whether its push succeeded.
    public var outcomes: [(cluster: String, ok: Bool)]

    public init(pushed: Int, failed: Int, inStep: Int, failures: [String], outcomes: [(cluster: String, ok: Bool)] = []) {
        self.pushed = pushed
        self.failed = failed
        self.inStep = inStep
        self.failures = failures
        self.outcomes = outcomes
    }
}

/// Why an operation did not happen; each kind maps to one HTTP status.
public struct OperationError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// 404: no such cluster, environment, revision or document.
        case notFound
        /// 422: the request is well formed but invalid (policy that does not validate, an empty selection).
        case invalid
        /// 409: another change landed first; `currentRevision` says which.
        case conflict
        /// 412: promotion gates failed and `force` was not set.
        case gateFailed
        /// 503: the hub cannot answer now (the repository never read valid since the start); not a fault.
        case unavailable
        /// 500: the store, repository or a member failed.
        case failure
    }

    public var kind: Kind
    public var message: String
    /// `path:line:col: error: message` lines, for invalid policy.
    public var diagnostics: [String]
    public var currentRevision: Int64?
    /// The gates that failed (412), each `gate: reason`.
    public var gates: [String]

    public init(_ kind: Kind, _ message: String, diagnostics: [String] = [], currentRevision: Int64? = nil, gates: [String] = []) {
        self.kind = kind
        self.message = message
        self.diagnostics = diagnostics
        self.currentRevision = currentRevision
        self.gates = gates
    }

    /// An engine error as the API answers it.
    public init(_ error: EngineError) {
        let diagnostics = error.diagnostics.prefix(1000).map(\.description)
        switch error {
        case .notFound(let message): self.init(.notFound, message)
        case .invalid(let message, _): self.init(.invalid, message, diagnostics: diagnostics)
        case .conflict(let message, let current): self.init(.conflict, message, currentRevision: current)
        case .gateFailed(let failures, let message): self.init(.gateFailed, message, gates: failures.map(\.description))
        case .unavailable(let message, _): self.init(.unavailable, message, diagnostics: diagnostics)
        case .memberFailed, .failure: self.init(.failure, error.message)
        }
    }

    public var description: String { message }
}
