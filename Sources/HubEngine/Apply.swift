import HubStore
import PolicyCore

/// What `apply` recorded and plans to push.
public struct ApplyPlan: Sendable {
    public var session: HubSession
    public var plan: PushPlan
    /// The root environment's revision of the working tree.
    public var rootRevision: Revision
    /// True when the working tree is new: recorded now (or, in a dry run, it would be).
    public var isNew: Bool
}

extension HubEngine {
    /// Reads the repository, records the root environment's revision from policies/ on top of the desired
    /// revision it was read against (compare and swap: another writer in between means reading again, up
    /// to five times), and makes the push plan of `clusters` (all when empty). Holds the state lock while it
    /// reads and records, never across a member's network time. `record` false: a dry run, nothing stored.
    /// In a git work tree the revision carries its commit; a tree that differs from the commit is refused
    /// unless `allowDirty`, and the root environment's `requireSignedCommits` gate is checked (a dry run
    /// checks both too).
    /// A freeze window of the root environment refuses a new revision, and a cluster in a frozen environment
    /// is not pushed, unless `force` with a `reason` (recorded in the revision's cause).
    /// `check`: called under the state lock with the session and the root revision, before anything is
    /// recorded; what it throws stops the apply (a saved plan's inputs are checked there).
    public func recordAndPlan(author: String, clusters names: [String] = [], record: Bool = true, repair: Bool = false,
                              allowDirty: Bool = false, force: Bool = false, reason: String? = nil,
                              lockTimeout: Double = 300,
                              check: ((HubSession, Revision, Bool) throws(EngineError) -> Void)? = nil) throws(EngineError) -> ApplyPlan {
        if force && (reason ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            throw .invalid("--force needs --reason TEXT: why the freeze is overridden (recorded in the revision and the audit log)")
        }
        let lock = try self.lock(.state, timeout: lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        var attempt = 0
        while true {
            attempt += 1
            let session = try open(workingTree: .required)
            let clusters = try session.clusters(named: names)
            guard let pending = try session.rootRevisionForWorkingTree(author: author) else {
                throw .failure("the fleet has no root environment")
            }
            var rootRevision = pending.revision
            if pending.isNew, let root = session.fleet.root, let freeze = root.frozen(at: session.now()) {
                let failure = GateFailure(.freeze, "\(root.name) is frozen from \(timestamp(freeze.from)) until \(timestamp(freeze.until)) (freeze \(freeze.window.description))")
                guard force else {
                    throw .gateFailed([failure], message: "\(root.name) is frozen; policies/ was not recorded (--force --reason TEXT overrides and is recorded)")
                }
                rootRevision.cause = "apply (forced past: freeze; reason: \(reason ?? ""))"
            }
            if pending.isNew, let root = session.fleet.root {
                rootRevision.commit = try session.signatureGate(root, commit: try session.workingTreeCommit(allowDirty: allowDirty),
                                                                what: "recording policies/ as a revision of \(root.name)")
            }
            try check?(session, rootRevision, pending.isNew)
            if pending.isNew && record {
                do throws(HubStoreError) {
                    rootRevision = try session.store.recordRevision(
                        environment: rootRevision.environment, documents: session.workingDocuments, author: author,
                        cause: rootRevision.cause, at: session.now(), expectedParent: .mustBe(rootRevision.parent), commit: rootRevision.commit)
                } catch {
                    if case .conflict(let environment, _, let current) = error, attempt < 5 {
                        log.note("policyhub: \(environment) moved to \(current.map { "r\($0)" } ?? "none") while policies/ was read; reading it again")
                        continue
                    }
                    throw EngineError(error)
                }
                log.note("recorded revision \(rootRevision.id) of \(rootRevision.environment) (\(rootRevision.documentCount) documents)\(rootRevision.commit.map { " from " + $0.summary } ?? "")")
            }
            var plan = try PushPlan.make(session: session, clusters: clusters, rootRevision: rootRevision, ignoringFreeze: force)
            if repair { plan.repairAll() }
            for (name, reason) in plan.untouched { log.note("\(name): \(reason)") }
            return ApplyPlan(session: session, plan: plan, rootRevision: rootRevision, isNew: pending.isNew)
        }
    }

    /// Pushes every cluster whose applied policy is not its environment's desired one, from the stored
    /// revisions (the daemon's reconcile: the working tree is not recorded). The push lock is held across
    /// the pushes; the state lock only while the plan is made. Replicas on a shared store plan without it:
    /// it is one lock for the whole database, so every replica's plan would wait for the others' (and for any
    /// command's), while what the plan reads is read in transactions and each cluster's push is claimed and
    /// checked against the cluster's stored state first; a revision recorded meanwhile is the next turn's.
    public func reconcile(concurrency: Int) async throws(EngineError) -> PushSummary {
        let pushing = try lock(.push, timeout: 600)
        defer { withExtendedLifetime(pushing) {} }
        let (session, plan) = try { () throws(EngineError) -> (HubSession, PushPlan) in
            let lock = sharesWork ? nil : try self.lock(.state, timeout: 600)
            defer { withExtendedLifetime(lock) {} }
            let session = try open(workingTree: .optional)
            let rootRevision = try session.fleet.root.flatMap { environment throws(EngineError) in
                try stored { () throws(HubStoreError) in try session.store.desiredRevision(environment: environment.name) }
            }
            return (session, try PushPlan.make(session: session, clusters: session.fleet.clusters, rootRevision: rootRevision))
        }()
        if plan.toPush.isEmpty && plan.inStep.allSatisfy({ $0.appliedRevision == $0.revision.id }) {
            var summary = PushSummary()
            summary.inStep = plan.inStep.count
            summary.untouched = plan.untouched.count
            return summary
        }
        // a cluster another replica is pushing is its to finish: the next turn looks at it again
        return try await PushRun.push(session: session, plan: plan, concurrency: concurrency, others: .skip)
    }
}

/// What one self-heal turn found and did.
public struct HealRun: Sendable {
    /// The drift report recorded for clusters whose hand-made changes were not reported yet (or were
    /// repaired); nil when there was nothing new.
    public var report: DriftReport?
    /// Each cluster of a `selfHeal` environment put back, with the findings it had.
    public var repaired: [String: [DriftFinding]] = [:]
    /// The push that put them back.
    public var summary: PushSummary?
    /// True when another push held the push lock, so nothing was looked at (try again later).
    public var skipped = false

    public init() {}
}

extension HubEngine {
    /// One turn of tamper detection (SEMANTICS §6): reads every member, reports a `missing`, `modified` or
    /// `extra` finding at once (one drift report for the clusters not reported yet), and puts back what was
    /// changed, deleted or added by hand on the clusters of `selfHeal` environments, auditing each repair.
    /// Skipped (an empty run, `skipped` set) while another push holds the push lock. `clusters`: only these
    /// (the ones a watch saw changed); nil: every cluster.
    /// `opened`: a session already open (the daemon's, at most a few seconds old) instead of reading the repository
    /// again, which on a large fleet costs most of a watch-triggered turn.
    public func heal(concurrency: Int, clusters only: Set<String>? = nil, session opened: HubSession? = nil) async throws(EngineError) -> HealRun {
        var run = HealRun()
        guard let pushing = try? lock(.push, timeout: 0) else {
            run.skipped = true
            return run
        }
        defer { withExtendedLifetime(pushing) {} }
        let session: HubSession
        if let opened { session = opened } else { session = try open(workingTree: .optional) }
        let names = only.map { only in session.fleet.clusters.map(\.name).filter { only.contains($0) } } ?? []
        if only != nil, names.isEmpty { return run }  // none of them is in the fleet (any more)
        let look = try await session.driftReport(clusters: names, record: false)
        let tampered = Set(look.findings.filter { [.missing, .modified, .extra].contains($0.kind) }.map(\.cluster))
        guard !tampered.isEmpty else { return run }
        let healing = Set(session.fleet.clusters.filter { tampered.contains($0.name) && session.fleet.environment(named: $0.environment)?.selfHeal == true }.map(\.name))
        let states = try session.clusterStates()
        let unreported = tampered.filter { healing.contains($0) || states[$0]?.outOfStep?.hasPrefix(DriftReport.outOfStepPrefix) != true }
        guard !unreported.isEmpty else { return run }
        run.report = try await session.driftReport(clusters: unreported.sorted())
        guard !healing.isEmpty else { return run }
        let clusters = session.fleet.clusters.filter { healing.contains($0.name) }
        let rootRevision = try session.fleet.root.flatMap { environment throws(EngineError) in
            try stored { () throws(HubStoreError) in try session.store.desiredRevision(environment: environment.name) }
        }
        // putting back what was applied is not a change: a freeze does not hold it up
        let plan = try PushPlan.make(session: session, clusters: clusters, rootRevision: rootRevision, ignoringFreeze: true)
        let summary = try await PushRun.push(session: session, plan: plan, concurrency: concurrency, others: .skip)
        run.summary = summary
        for (cluster, ok) in summary.outcomes where ok {
            let findings = (run.report?.findings ?? look.findings).filter { $0.cluster == cluster && [.missing, .modified, .extra].contains($0.kind) }
            run.repaired[cluster] = findings
            let what = findings.prefix(20).map { "\($0.kind.rawValue) \($0.object?.description ?? "-")" }.joined(separator: ", ")
            try stored { () throws(HubStoreError) in
                try session.store.audit(actor: "self-heal", action: "repair",
                                        detail: "restored \(cluster): \(what)\(findings.count > 20 ? ", ..." : "")", at: session.now())
            }
        }
        return run
    }
}
