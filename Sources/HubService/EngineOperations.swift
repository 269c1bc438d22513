import Foundation
import HubEngine
import HubTransport
import HubStore
import Logging
import Members
import PolicyCore
import PolicyYAML

/// The daemon's operations: the engine's, with a read repository kept for a few seconds, renders kept by
/// revision and placement class, and the last valid session served while the repository does not read
/// (SEMANTICS §8). Each method calls the engine and encodes its typed result; nothing here parses a
/// command line or reads printed output back.
public final class EngineOperations: HubOperations, @unchecked Sendable {
    let engine: HubEngine
    let pushConcurrency: Int
    /// The branch the daemon follows (its checkout is the engine's repository); nil: the repository is a folder.
    let followed: FollowedBranch?
    /// How long a read repository is reused before it is read again (writes through the API drop it at once).
    let sessionLifetime: Double
    private let lock = NSLock()
    private var cachedSession: (session: HubSession, loadedAt: Double)?
    /// A reload in progress: other requests keep using the previous session meanwhile.
    private var reloading = false
    /// Encoded objects and hash of each placement class's effective policy, by revision.
    private var policies: [PolicyKey: (objects: [UInt8], hash: String)] = [:]
    private var renderers: [Int64: Renderer] = [:]
    /// The store for audit lines written outside a session (refused requests).
    private var auditStore: (any HubStore)?
    /// The last session that read: served while the repository does not.
    private var lastValid: HubSession?
    /// What is wrong with the repository now, for /readyz.
    private var treeProblem: String?

    struct PolicyKey: Hashable {
        var revision: Int64
        var placement: Renderer.PlacementClass
    }

    /// `engine`'s events go to `logger` (warnings of the tree, recorded revisions, push progress).
    public init(engine: HubEngine, logger: Logger = Logger(label: "policyhub"), pushConcurrency: Int = 16, sessionLifetime: Double = 5,
                followed: FollowedBranch? = nil) {
        self.followed = followed
        self.engine = engine.logging(to: EngineLog { event in
            switch event {
            case .diagnostic(let diagnostic): logger.warning("\(diagnostic.description)")
            case .note(let line): logger.info("\(line)")
            case .progress(let done, let total, let line): logger.info("[\(done)/\(total)] \(line)")
            case .progressEnd: break
            case .waiting(let lines): for line in lines { logger.debug("\(line)") }  // every slow cluster of a large fleet would have one
            }
        })
        self.pushConcurrency = pushConcurrency
        self.sessionLifetime = sessionLifetime
    }

    func now() -> Double { engine.clock.now() }

    /// Runs an engine call, its error as the API answers it.
    func run<T>(_ body: () throws(EngineError) -> T) throws(OperationError) -> T {
        do {
            return try body()
        } catch {
            throw OperationError(error)
        }
    }

    func run<T>(_ body: () async throws(EngineError) -> T) async throws(OperationError) -> T {
        do {
            return try await body()
        } catch {
            throw OperationError(error)
        }
    }

    // MARK: - The session

    func session() async throws(OperationError) -> HubSession {
        let lifetime = sessionLifetime
        // fresh: use it; stale while another request reloads: use the stale one (one reload at a time)
        let (cached, mustLoad) = lock.withLock { () -> (HubSession?, Bool) in
            if let cached = cachedSession, now() - cached.loadedAt < lifetime || reloading { return (cached.session, false) }
            reloading = true
            return (nil, true)
        }
        if let cached, !mustLoad { return cached }
        do throws(EngineError) {
            // an invalid policies/ is named and worked around (stored revisions); an invalid clusters/ is not
            let session = try engine.open(workingTree: .optional)
            lock.withLock {
                cachedSession = (session, now())
                lastValid = session
                policies = [:]
                renderers = [:]
                reloading = false
            }
            note(session.treeProblem)
            return session
        } catch {
            // the repository stopped reading: the last valid session goes on serving, and says why
            let fallback = lock.withLock { () -> HubSession? in
                reloading = false
                if let lastValid { cachedSession = (lastValid, now()) }
                return lastValid
            }
            note("the repository does not read (\(error.message)); serving the last valid state")
            if let fallback { return fallback }
            throw OperationError(.unavailable, "the repository has not read valid since the daemon started: \(error.message)",
                                 diagnostics: error.diagnostics.prefix(1000).map(\.description))
        }
    }

    /// Keeps what is wrong with the repository for /readyz, and logs each new problem once.
    func note(_ problem: String?) {
        let changed = lock.withLock { () -> Bool in
            defer { treeProblem = problem }
            return treeProblem != problem
        }
        if changed, let problem { engine.log.note("policyhub: \(problem)") }
    }

    /// Forgets the cached repository and renders (after an API write changed a repository file).
    func invalidate() {
        lock.withLock {
            cachedSession = nil
            policies = [:]
            renderers = [:]
        }
    }

    static func revisionValue(_ revision: Revision?) -> Value { revision.map { $0.fields().value } ?? .null }

    // MARK: - Reading

    public func clusters() async throws(OperationError) -> Value {
        let session = try await session()
        let rows = try run { () throws(EngineError) in try ClusterStatus.all(fleet: session.fleet, store: session.store, targets: session.targetKey) }
        return .map([Value.MapEntry("clusters", .list(rows.map(\.value)))])
    }

    public func cluster(named name: String) async throws(OperationError) -> Value {
        let session = try await session()
        guard session.fleet.cluster(named: name) != nil else {
            throw OperationError(.notFound, EditDistance.unknown("cluster", name, known: session.fleet.clusters.map(\.name)))
        }
        let rows = try run { () throws(EngineError) in try ClusterStatus.all(fleet: session.fleet, store: session.store, only: name, targets: session.targetKey) }
        return rows.first?.value ?? .null
    }

    public func effectivePolicy(cluster name: String) async throws(OperationError) -> [UInt8] {
        let session = try await session()
        guard let cluster = session.fleet.cluster(named: name) else {
            throw OperationError(.notFound, EditDistance.unknown("cluster", name, known: session.fleet.clusters.map(\.name)))
        }
        guard let revision = try run({ () throws(EngineError) in
            try stored { () throws(HubStoreError) in try session.store.desiredRevision(environment: cluster.environment) }
        }) else {
            throw OperationError(.notFound, "environment \(cluster.environment) of \(name) has no desired revision yet (no promotion)")
        }
        let key = PolicyKey(revision: revision.id, placement: Renderer.PlacementClass(environment: cluster.environment,
                                                                                     labels: cluster.placementLabels))
        var rendered = lock.withLock { policies[key] }
        if rendered == nil {
            let renderer: Renderer
            if let known = lock.withLock({ renderers[revision.id] }) {
                renderer = known
            } else {
                renderer = try run { () throws(EngineError) in try session.renderer(for: revision) }
                lock.withLock { renderers[revision.id] = renderer }
            }
            let policy = renderer.render(cluster: cluster)
            let made = (objects: JSONWriter.compactBytes(.list(policy.objects.map(\.value))), hash: policy.contentHash)
            lock.withLock { policies[key] = made }
            rendered = made
        }
        guard let rendered else { throw OperationError(.failure, "no policy for \(name)") }
        // the cluster's own fields around the class's encoded objects
        var head = JSONWriter.compactBytes(.map([
            Value.MapEntry("cluster", .string(name)), Value.MapEntry("environment", .string(cluster.environment)),
            Value.MapEntry("revision", .string("r\(revision.id)")), Value.MapEntry("hash", .string(rendered.hash)),
            Value.MapEntry("objects", .null),
        ]))
        head.removeLast("null}".utf8.count)
        return head + rendered.objects + [UInt8(ascii: "}")]
    }

    public func environments() async throws(OperationError) -> Value {
        let session = try await session()
        var out: [Value] = []
        for environment in session.fleet.environments {
            let desired = try run { () throws(EngineError) in
                try stored { () throws(HubStoreError) in try session.store.desiredRevision(environment: environment.name) }
            }
            var gates = ValueMapBuilder()
            gates.set("requireInSync", .bool(environment.gates.requireInSync))
            gates.set("requireNoDrift", .bool(environment.gates.requireNoDrift))
            gates.set("requireSignedCommits", .bool(environment.gates.requireSignedCommits))
            gates.set("minimumSoakSeconds", environment.gates.minimumSoakSeconds.map { .int($0) } ?? .null)
            var map = ValueMapBuilder()
            map.set("name", .string(environment.name))
            map.set("promotesFrom", environment.promotesFrom.map(Value.string) ?? .null)
            map.set("desiredRevision", EngineOperations.revisionValue(desired))
            map.set("gates", gates.value)
            out.append(map.value)
        }
        return .map([Value.MapEntry("environments", .list(out))])
    }

    public func revisions(environment: String, limit: Int) async throws(OperationError) -> Value {
        let session = try await session()
        guard session.fleet.environment(named: environment) != nil else {
            throw OperationError(.notFound, EditDistance.unknown("environment", environment, known: session.fleet.environments.map(\.name)))
        }
        let revisions = try run { () throws(EngineError) in
            try stored { () throws(HubStoreError) in try session.store.revisions(environment: environment) }
        }
        return .map([Value.MapEntry("revisions", .list(revisions.prefix(limit).map(EngineOperations.revisionValue)))])
    }

    public func documents() async throws(OperationError) -> Value {
        let session = try await session()
        let (revision, documents) = try run { () throws(EngineError) in try session.rootDocuments() }
        return .map([
            Value.MapEntry("revision", revision.map { .string("r\($0.id)") } ?? .null),
            Value.MapEntry("documents", .list(documents.sorted { $0.identity < $1.identity }.map { document in
                .map([Value.MapEntry("kind", .string(document.identity.kind.rawValue)),
                      Value.MapEntry("namespace", .string(document.identity.namespace)),
                      Value.MapEntry("name", .string(document.identity.name)),
                      Value.MapEntry("source", .string(document.source)), Value.MapEntry("hash", .string(document.hash))])
            })),
        ])
    }

    public func document(_ identity: ObjectIdentity) async throws(OperationError) -> Value {
        let session = try await session()
        let (revision, documents) = try run { () throws(EngineError) in try session.rootDocuments() }
        guard let document = documents.first(where: { $0.identity == identity }) else {
            throw OperationError(.notFound, "\(identity) is not in the root environment's revision")
        }
        let object = (try? JSONReader.parse(Array(document.body.utf8))) ?? .null
        return .map([Value.MapEntry("revision", revision.map { .string("r\($0.id)") } ?? .null),
                     Value.MapEntry("source", .string(document.source)), Value.MapEntry("hash", .string(document.hash)),
                     Value.MapEntry("object", object), Value.MapEntry("yaml", .string(YAMLWriter.document(object)))])
    }

    // MARK: - Writing

    public func writeDocument(_ identity: ObjectIdentity, yaml: [UInt8]?, precondition: DocumentPrecondition?, author: String)
        async throws(OperationError) -> Value
    {
        let session = try await session()  // the documents come from the store; the session gives the fleet
        guard session.policy != nil, lock.withLock({ treeProblem }) == nil else {
            // a write records the root environment and its file: never on top of a tree that does not validate
            let problems = session.workspace.policyErrors
            throw OperationError(.conflict, "policies/ in the repository is invalid (\(problems.count) error\(problems.count == 1 ? "" : "s")); fix it before writing through the API",
                                 diagnostics: problems.prefix(50).map(\.description))
        }
        let written = try run { () throws(EngineError) in
            try session.writeDocument(identity, yaml: yaml, precondition: precondition, author: author, branch: followed?.branch)
        }
        if !written.unchanged { invalidate() }
        return .map([Value.MapEntry("revision", EngineOperations.revisionValue(written.revision)),
                     Value.MapEntry("source", .string(written.source)), Value.MapEntry("hash", written.hash.map(Value.string) ?? .null),
                     Value.MapEntry("unchanged", .bool(written.unchanged))])
    }

    public func promote(_ request: PromotionRequest, author: String) async throws(OperationError) -> Value {
        var selectors = request.namespaces.map(PromotionSelector.namespace) + request.globals.map(PromotionSelector.global)
        for text in request.documents {
            guard let selector = PromotionSelector.document(text) else {
                throw OperationError(.invalid, "document '\(text)' is not KIND/NAMESPACE/NAME (e.g. NvSecurityRule/demo/nv.web.demo)")
            }
            selectors.append(selector)
        }
        if request.all { selectors.append(.all) }
        if selectors.isEmpty { throw OperationError(.invalid, "select what to promote: namespaces, globals, documents or all") }
        let session = try await session()
        let input = PromotionInput(target: request.to, selectors: selectors, force: request.force, author: author,
                                   baseRevision: request.baseRevision, reason: request.reason, from: request.from)
        let (prepared, revision) = try run { () throws(EngineError) -> (PreparedPromotion, Revision?) in
            let prepared = try session.preparePromotion(input)
            if request.dryRun { return (prepared, nil) }
            return (prepared, try session.commit(prepared))
        }
        var output = prepared.changeLines.map { $0 + "\n" }.joined()
        if request.dryRun && !prepared.isNoChange {
            output += try run { () throws(EngineError) in try session.difference(of: prepared) }.text
        }
        var shown = revision
        if shown == nil {
            shown = try run { () throws(EngineError) in
                try stored { () throws(HubStoreError) in try session.store.desiredRevision(environment: prepared.target.name) }
            }
        }
        return .map([
            Value.MapEntry("dryRun", .bool(request.dryRun)),
            Value.MapEntry("revision", EngineOperations.revisionValue(shown)),
            Value.MapEntry("changes", .map([
                Value.MapEntry("added", .list(prepared.added.map { .string($0.description) })),
                Value.MapEntry("changed", .list(prepared.changed.map { .string($0.description) })),
                Value.MapEntry("removed", .list(prepared.removed.map { .string($0.description) })),
            ])),
            Value.MapEntry("gateFailures", .list(prepared.gateFailures.map { .string($0.description) })),
            Value.MapEntry("output", .string(output)),
        ])
    }

    public func rollback(environment: String, to: Int64, author: String, reason: String) async throws(OperationError) -> Value {
        let session = try await session()
        let (recorded, _) = try run { () throws(EngineError) in
            try session.rollback(environment: environment, to: to, author: author, reason: reason)
        }
        return .map([Value.MapEntry("revision", EngineOperations.revisionValue(recorded))])
    }

    // MARK: - Drift and reconcile

    public func runDriftReport(author: String) async throws(OperationError) -> DriftRun {
        let session = try await session()
        let report = try await run { () async throws(EngineError) in try await session.driftReport() }
        var byCluster = Dictionary(session.fleet.clusters.map { ($0.name, 0) }, uniquingKeysWith: { a, _ in a })
        for (cluster, count) in report.driftByCluster { byCluster[cluster] = count }
        return DriftRun(report: report.value, driftFindings: report.drift.count, newFindings: report.newDrift,
                        findingsByCluster: byCluster)
    }

    public func heal(author: String) async throws(OperationError) -> SelfHealRun {
        try await healTurn(clusters: nil)
    }

    public func heal(author: String, clusters: Set<String>) async throws(OperationError) -> SelfHealRun {
        try await healTurn(clusters: clusters)
    }

    public func watchTargets(clusters: Set<String>?, owned: (@Sendable (String) -> Bool)?, transport: any HTTPTransport) async throws(OperationError)
        -> (targets: [WatchTarget], problems: [String])
    {
        let found = try run { () throws(EngineError) in try engine.watchTargets(clusters: clusters, owned: owned, transport: transport) }
        return (found.targets, found.problems.map(\.description))
    }

    public func desiredRevisions() async throws(OperationError) -> [String: Int64] {
        // asked every second by the watches: the environments of the session at hand, however old, rather than
        // reading the repository again each time (the watches' full reload every minute reads it afresh)
        let known = lock.withLock { cachedSession?.session ?? lastValid }
        let session: HubSession
        if let known { session = known } else { session = try await self.session() }
        var found: [String: Int64] = [:]
        for environment in session.fleet.environments {
            found[environment.name] = try run { () throws(EngineError) in
                try stored { () throws(HubStoreError) in try session.store.desiredRevision(environment: environment.name) }
            }?.id
        }
        return found
    }

    func healTurn(clusters: Set<String>?) async throws(OperationError) -> SelfHealRun {
        let concurrency = pushConcurrency
        // a watch's turn for a few clusters works from the daemon's open session; the full poll reads afresh
        let opened = clusters == nil ? nil : try await session()
        let turn = try await run { () async throws(EngineError) in
            try await engine.heal(concurrency: concurrency, clusters: clusters, session: opened)
        }
        if turn.skipped { return SelfHealRun(report: nil, repaired: [:], failures: [], skipped: true) }
        var report: DriftRun?
        if let found = turn.report {
            // the clusters it looked at only: the others' gauges stay as the last full report set them
            var run = DriftRun(report: found.value, driftFindings: found.drift.count, newFindings: found.newDrift,
                               findingsByCluster: found.driftByCluster)
            run.repaired = turn.repaired.keys.sorted()
            report = run
        }
        return SelfHealRun(report: report, repaired: turn.repaired.mapValues(\.count), failures: turn.summary?.failures ?? [])
    }

    public func latestDriftReport() async throws(OperationError) -> Value {
        let session = try await session()
        guard let latest = try run({ () throws(EngineError) in
            try stored { () throws(HubStoreError) in try session.store.driftReports(limit: 1) }
        }).first else {
            throw OperationError(.notFound, "no drift report has been run yet (POST /v1/drift/reports runs one)")
        }
        var report = (try? JSONReader.parse(Array(latest.json.utf8))) ?? .null
        if case .map(var entries) = report {
            entries.insert(Value.MapEntry("id", .int(Int(latest.id))), at: 0)
            report = .map(entries)
        }
        return report
    }

    public func driftReports(limit: Int) async throws(OperationError) -> Value {
        let session = try await session()
        let reports = try run { () throws(EngineError) in
            try stored { () throws(HubStoreError) in try session.store.driftReports(limit: limit) }
        }
        return .map([Value.MapEntry("reports", .list(reports.map { report in
            .map([Value.MapEntry("id", .int(Int(report.id))), Value.MapEntry("at", .string(timestamp(report.at))),
                  Value.MapEntry("findings", .int(report.findings))])
        }))])
    }

    public func lastDriftReportTime() async throws(OperationError) -> Double? {
        let session = try await session()
        return try run { () throws(EngineError) in
            try stored { () throws(HubStoreError) in try session.store.driftReports(limit: 1) }
        }.first?.at
    }

    public func followBranch() async throws(OperationError) -> FollowRun? {
        guard let followed else { return nil }
        let concurrency = pushConcurrency
        let run = try await run { () async throws(EngineError) in try await engine.follow(followed, concurrency: concurrency) }
        if !run.steps.isEmpty { invalidate() }  // the checkout moved: read it again
        return run
    }

    public var sharedStore: (any WorkSharing)? {
        if case .shared(let store) = engine.storeSource { return store as? any WorkSharing }
        return nil
    }

    public func reconcile(author: String) async throws(OperationError) -> ReconcileRun {
        let concurrency = pushConcurrency
        let summary = try await run { () async throws(EngineError) in try await engine.reconcile(concurrency: concurrency) }
        return ReconcileRun(pushed: summary.pushed, failed: summary.failures.count, inStep: summary.inStep,
                            failures: summary.failures, outcomes: summary.outcomes)
    }

    public func audit(limit: Int) async throws(OperationError) -> Value {
        let session = try await session()
        let entries = try run { () throws(EngineError) in
            try stored { () throws(HubStoreError) in try session.store.auditLog(limit: limit) }
        }
        return .map([Value.MapEntry("entries", .list(entries.map { entry in
            .map([Value.MapEntry("id", .int(Int(entry.id))), Value.MapEntry("at", .string(timestamp(entry.at))),
                  Value.MapEntry("actor", .string(entry.actor)), Value.MapEntry("action", .string(entry.action)),
                  Value.MapEntry("detail", .string(entry.detail))])
        }))])
    }

    public func auditDenied(principal: String, method: String, route: String, path: String, status: Int) async {
        do throws(EngineError) {
            // the store alone: a refusal is audited even while the repository does not read
            var store = lock.withLock { auditStore }
            if store == nil {
                let opened = try engine.openStore()
                lock.withLock { auditStore = opened }
                store = opened
            }
            guard let store else { return }
            let shown = path.unicodeScalars.prefix(200).map { $0.value < 0x20 ? "?" : String($0) }.joined()
            try stored { () throws(HubStoreError) in
                try store.audit(actor: principal, action: "denied", detail: "\(status) \(method) \(route) (\(shown))", at: now())
            }
        } catch {
            engine.log.note("policyhub: cannot audit a refused request: \(error.message)")
        }
    }

    public func readiness() async -> Readiness {
        do throws(OperationError) {
            let session = try await session()
            _ = try run { () throws(EngineError) in try session.clusterStates() }
            if let problem = lock.withLock({ treeProblem }) { return .degraded(problem) }
            return .ready
        } catch {
            return .notReady(error.message)
        }
    }
}

/// The daemon's live operations, for `policyhub serve` and the tests that start the daemon in-process.
public enum HubDaemon {
    /// The engine on `repository` and the state `statePath` (a SQLite file or a `postgres://` URL), as `HubOperations`.
    /// Exec plugins on `allowExec` run as `Never` (no terminal), their stderr in the log; commits are checked
    /// against `trustedKeys`.
    /// `memberConnections`: requests in flight at once over every member of a push.
    public static func operations(repository: String, statePath: String, pushConcurrency: Int = 16, memberConnections: Int? = nil,
                                  allowExec: [String] = [], trustedKeys: [String] = [], followed: FollowedBranch? = nil,
                                  logger: Logger = Logger(label: "policyhub")) throws(EngineError) -> any HubOperations {
        var engine = HubEngine(root: repository, store: try HubEngine.storeSource(statePath, root: repository),
                               exec: ExecSettings(allowed: allowExec, interactive: false),
                               trustedKeys: TrustedKeys(files: trustedKeys))
        if let memberConnections { engine.limits.connections = memberConnections }
        return EngineOperations(engine: engine, logger: logger, pushConcurrency: pushConcurrency, followed: followed)
    }
}
