import Foundation
import HubStore
import Members
import PolicyCore

/// Per-cluster decisions of a push: push, already in step, or leave alone.
public struct PushPlan: Sendable {
    public struct Item: Sendable {
        public var cluster: MemberCluster
        public var revision: Revision
        public var policy: EffectivePolicy
        public var desiredHash: String
        /// `RenderedObject.appliedHash` of each of `policy.objects` (shared by the clusters of a class).
        public var objectHashes: [String]
        /// The revision the store says the cluster holds.
        public var appliedRevision: Int64?
        /// Where the cluster's policy goes now (`HubSession.targetKey`).
        public var target: String
        /// Why the store's record of the cluster is not trusted (so the push compares with the member), or nil.
        public var untrusted: String?
        /// When the store last saw a push of the cluster as the plan was made (a later one, found when the
        /// cluster is claimed, was another replica's).
        public var plannedPushAt: Double?
    }

    public var toPush: [Item] = []
    public var inStep: [Item] = []
    /// Clusters left alone, each with why.
    public var untouched: [(cluster: String, reason: String)] = []
    /// How many clusters were considered.
    public var clusterCount = 0

    /// Every cluster with a desired policy: to push and in step.
    public var items: [Item] { toPush + inStep }

    /// `rootRevision`: what the root environment's clusters are planned for (the working tree's revision
    /// for apply); `override`: the revision every cluster is planned for (a stored one, `plan --revision`).
    /// A cluster of an environment in a freeze window is left untouched unless its revision is a rollback or
    /// `ignoringFreeze` (a forced change, or putting back what was already applied).
    public static func make(session: HubSession, clusters: [MemberCluster], rootRevision: Revision?,
                            override: Revision? = nil, ignoringFreeze: Bool = false) throws(EngineError) -> PushPlan {
        let now = session.now()
        var plan = PushPlan()
        plan.clusterCount = clusters.count
        let states = try session.clusterStates()
        var byRevision: [Int64: (Revision, [MemberCluster])] = [:]
        for cluster in clusters {
            let revision: Revision?
            if let override {
                revision = override
            } else if cluster.environment == session.fleet.root?.name {
                revision = rootRevision
            } else {
                revision = try stored { () throws(HubStoreError) in try session.store.desiredRevision(environment: cluster.environment) }
            }
            guard let revision else {
                plan.untouched.append((cluster.name, "environment \(cluster.environment) has no desired revision until its first promotion; left untouched"))
                continue
            }
            byRevision[revision.id, default: (revision, [])].1.append(cluster)
        }
        for (_, (revision, members)) in byRevision.sorted(by: { $0.key < $1.key }) {
            let renderer = try session.renderer(for: revision)
            // clusters of one class share their objects: hashed once per class
            var hashes: [Renderer.PlacementClass: (String, [String])] = [:]
            for (cluster, policy) in renderer.render(clusters: members, parallel: .dispatch) {
                let key = Renderer.PlacementClass(environment: cluster.environment, labels: cluster.placementLabels)
                let (hash, objectHashes) = hashes[key] ?? {
                    let objectHashes = policy.objects.map(\.appliedHash)
                    return (EffectivePolicy.contentHash(objectHashes: objectHashes), objectHashes)
                }()
                hashes[key] = (hash, objectHashes)
                let state = states[cluster.name]
                let target = session.targetKey(for: cluster)
                let untrusted = PushPlan.untrusted(state, target: target)
                let item = Item(cluster: cluster, revision: revision, policy: policy, desiredHash: hash, objectHashes: objectHashes,
                                appliedRevision: state?.appliedRevision, target: target, untrusted: untrusted,
                                plannedPushAt: state?.lastPushAt)
                if untrusted == nil && state?.appliedHash == item.desiredHash {
                    plan.inStep.append(item)
                } else if !ignoringFreeze, !revision.cause.hasPrefix("rollback"),
                          let freeze = session.fleet.environment(named: cluster.environment)?.frozen(at: now) {
                    plan.untouched.append((cluster.name, "environment \(cluster.environment) is frozen until \(timestamp(freeze.until)) (freeze \(freeze.window.description)); not pushed (rollbacks still are; apply --force --reason overrides)"))
                } else {
                    plan.toPush.append(item)
                }
            }
        }
        plan.toPush.sort { $0.cluster.name < $1.cluster.name }
        return plan
    }

    /// Why the store's record `state` of a cluster whose policy goes to `target` is not to be trusted (so a
    /// push compares with the member), or nil when it is.
    static func untrusted(_ state: ClusterState?, target: String) -> String? {
        guard let state, state.appliedHash != nil else { return state?.outOfStep ?? "never pushed" }
        if let reason = state.outOfStep { return reason }
        if state.lastResult == "failed" { return "its last push failed" }  // a failure recorded before out-of-step marks existed
        if state.appliedTarget != target {
            return state.appliedTarget == nil ? "no target recorded with what was applied"
                : "its target changed (was \(state.appliedTarget ?? ""), now \(target))"
        }
        return nil
    }

    /// Every cluster pushed and compared with what its member holds, the in-step ones too (`apply --repair`).
    public mutating func repairAll() {
        toPush += inStep.map { item in
            var item = item
            item.untrusted = item.untrusted ?? "repair asked for"
            return item
        }
        inStep = []
        toPush.sort { $0.cluster.name < $1.cluster.name }
    }
}

/// What a push run did.
public struct PushSummary: Sendable {
    public var pushed = 0
    public var inStep = 0
    public var untouched = 0
    public var created = 0
    public var updated = 0
    public var deleted = 0
    /// Each failure in words, naming its cluster.
    public var failures: [String] = []
    /// Each pushed cluster and whether it succeeded.
    public var outcomes: [(cluster: String, ok: Bool)] = []
    /// Clusters left to the replica that held their claim (a shared store's reconcile).
    public var elsewhere = 0
    /// Clusters found pushed by another replica when they were claimed (counted in step too).
    public var pushedElsewhere = 0

    public init() {}
}

/// What a push run's task group hears: a cluster has sent everything (its slot is free), or it is done
/// (its outcome waits in the run's `FinishedPushes`).
enum PushEvent: Sendable {
    case sent
    case finished
}

/// The clusters whose push is done and not yet recorded: the run takes all that are there at once and
/// records them in one change (the pushes that end while one batch is written make the next).
final class FinishedPushes: @unchecked Sendable {
    typealias Done = (item: PushPlan.Item, result: Result<PushOutcome, MemberError>, started: Double)
    private let lock = NSLock()
    private var done: [Done] = []

    func add(_ finished: Done) { lock.withLock { done.append(finished) } }

    func takeAll() -> [Done] {
        lock.withLock {
            defer { done = [] }
            return done
        }
    }
}

/// The store's record of what each cluster holds, read for `chunk` clusters at once in the order they are
/// pushed (one read per cluster was a tenth of a one-document change), each set forgotten once taken.
final class AppliedRecords {
    private let store: any HubStore
    private let names: [String]
    private let chunk: Int
    private var position: [String: Int] = [:]
    private var read: [String: [ObjectIdentity: AppliedObject]] = [:]

    /// `items`: the clusters in the order they will be asked for; those whose record is not trusted are not read.
    init(store: any HubStore, items: [PushPlan.Item], chunk: Int) {
        self.store = store
        self.chunk = max(1, chunk)
        names = items.filter { $0.untrusted == nil }.map(\.cluster.name)
        for (index, name) in names.enumerated() { position[name] = index }
    }

    /// The record of `cluster`, or nil when the store could not say.
    func take(_ cluster: String) -> [ObjectIdentity: AppliedObject]? {
        if read[cluster] == nil, let index = position[cluster] {
            let wanted = names[index..<min(index + chunk, names.count)].filter { read[$0] == nil }
            if let found = try? store.appliedObjects(clusters: wanted) { read.merge(found) { old, _ in old } }
        }
        return read.removeValue(forKey: cluster)
    }
}

/// Fires once (later calls do nothing); `wait` returns once it has fired.
final class OneShot: @unchecked Sendable {
    private let lock = NSLock()
    private var fired = false
    private var waiter: CheckedContinuation<Void, Never>?

    func fire() {
        let waiting = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            if fired { return nil }
            fired = true
            defer { waiter = nil }
            return waiter
        }
        waiting?.resume()
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = lock.withLock { () -> Bool in
                if fired { return true }
                waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }
}

/// Pushes the clusters of a plan, several at once, and records each outcome; a failing cluster never
/// stops the others.
public enum PushRun {
    /// What a push does with a cluster another replica has claimed (a shared store only).
    public enum OthersClaims: Sendable {
        /// Waits until it is free, then pushes it unless that replica already did (a command's push).
        case wait
        /// Leaves it to that replica (the daemon's reconcile, which runs again soon).
        case skip
    }

    /// Pushes `plan.toPush`, at most `concurrency` clusters at once, records every outcome, and sends a
    /// progress event per cluster and the summary line. Failures are in the summary, not thrown.
    /// On a store that replicas share, each cluster is claimed before it is pushed and its record is fenced
    /// by the claim, so that one replica at a time pushes it; one pushed by another replica since the plan was
    /// made is not pushed again (`others` says what to do with one claimed now).
    public static func push(session: HubSession, plan: PushPlan, concurrency: Int, others: OthersClaims = .wait) async throws(EngineError) -> PushSummary {
        defer { session.transports.shutdown() }
        // in step but recorded under an older revision: same objects, so only the record moves
        for item in plan.inStep where item.appliedRevision != item.revision.id {
            try stored { () throws(HubStoreError) in
                try session.store.markApplied(cluster: item.cluster.name, environment: item.cluster.environment,
                                              revision: item.revision.id, hash: item.desiredHash, at: session.now())
            }
        }
        var summary = PushSummary()
        summary.inStep = plan.inStep.count
        summary.untouched = plan.untouched.count
        var queue = ClaimQueue(items: plan.toPush, book: (session.store as? any WorkSharing).map { ClaimBook(store: $0, owner: session.engine.replica, ttl: session.engine.claimTTL) },
                               batch: max(1, concurrency))
        defer { queue.book?.close() }
        // a cluster whose claim lapses mid-push gets no further request from this replica
        let gate = queue.book.map { book in session.engine.activity.addGate { book.refusal($0) } }
        defer { if let gate { session.engine.activity.removeGate(gate) } }
        var done = 0
        // on a shared store each cluster's record is read once this replica has claimed it (another replica may
        // push it until then)
        let applied = AppliedRecords(store: session.store, items: plan.toPush, chunk: queue.book == nil ? 256 : 1)
        let finished = FinishedPushes()
        let giveUp = Replica.monotonic() + 600
        while true {
            await session.withHeartbeat { () async in
            await withTaskGroup(of: PushEvent.self) { group in
                // `concurrency` clusters sending at once; one that has sent everything and only waits for NeuVector
                // to settle gives its slot to the next, up to as many again waiting
                let slots = max(1, concurrency)
                var sending = 0
                var running = 0
                func startNext() -> Bool {
                    guard let item = queue.next(&summary) else { return false }
                    // the store's record, unless it is not to be trusted (then the member is compared)
                    let recorded = item.untrusted == nil ? applied.take(item.cluster.name) : nil
                    let sent = OneShot()
                    group.addTask {
                        await sent.wait()
                        return .sent
                    }
                    group.addTask {
                        defer { sent.fire() }
                        let started = session.now()
                        session.noteStarted(item.cluster.name)
                        defer { session.engine.activity.finished(item.cluster.name) }
                        switch session.member(for: item.cluster) {
                        case .failure(let error): finished.add((item, .failure(error), started))
                        case .success(let member):
                            do throws(MemberError) {
                                let previous = recorded.flatMap { $0.isEmpty && !item.policy.objects.isEmpty ? nil : $0 }
                                var request = PushRequest(objects: item.policy.objects, hashes: item.objectHashes,
                                                          revision: item.revision.id, previous: previous)
                                request.settling = { sent.fire() }
                                finished.add((item, .success(try await member.push(request)), started))
                            } catch {
                                finished.add((item, .failure(error), started))
                            }
                        }
                        return .finished
                    }
                    sending += 1
                    running += 1
                    return true
                }
                func fill() {
                    while sending < slots && running < 2 * slots && startNext() {}
                }
                fill()
                while let event = await group.next() {
                    guard case .finished = event else {
                        sending -= 1
                        fill()
                        continue
                    }
                    running -= 1
                    fill()
                    // every push done by now, recorded at once (a later event may then find none left)
                    let batch = finished.takeAll()
                    guard !batch.isEmpty else { continue }
                    let records = batch.map { done in
                        var record = PushRecord(cluster: done.item.cluster.name, environment: done.item.cluster.environment,
                                                revision: done.item.revision.id, desiredHash: done.item.desiredHash,
                                                startedAt: done.started, finishedAt: session.now(), created: 0, updated: 0,
                                                deleted: 0, error: nil, target: done.item.target)
                        switch done.result {
                        case .success(let outcome):
                            record.created = outcome.created.count
                            record.updated = outcome.updated.count
                            record.deleted = outcome.deleted.count
                            record.objects = outcome.applied
                            record.objectChanges = outcome.recordChanges  // only what changed is written
                            for refused in outcome.refused { session.log.note("\(done.item.cluster.name): warning: \(refused)") }
                        case .failure(let error):
                            record.error = error.description
                        }
                        return record
                    }
                    // recorded first: a cluster's progress line means its outcome is in the state file; on a
                    // shared store one at a time, each only while this replica still holds the cluster's claim
                    let errors: [HubStoreError?]
                    if let book = queue.book {
                        errors = records.map { record in
                            do throws(HubStoreError) {
                                guard let fence = book.fence(record.cluster) else {
                                    throw HubStoreError.fenced(.claim(cluster: record.cluster, owner: session.engine.replica, token: 0))
                                }
                                try StoreFence.with(fence) { () throws(HubStoreError) in try session.store.recordPush(record) }
                                return nil
                            } catch {
                                return error
                            }
                        }
                    } else {
                        errors = session.store.recordPushes(records)
                    }
                    for ((item, result, _), (record, error)) in zip(batch, zip(records, errors)) {
                        var line: String
                        switch result {
                        case .success: line = "\(item.cluster.name): \(record.created) created, \(record.updated) updated, \(record.deleted) deleted"
                        case .failure(let failure): line = "\(item.cluster.name): FAILED: \(failure.message)"
                        }
                        if let error {
                            let problem: String
                            if case .fenced = error {
                                problem = "cluster \(item.cluster.name): pushed, but this replica's claim on it lapsed before the push was recorded (another replica pushes it again)"
                            } else {
                                problem = "cluster \(item.cluster.name): pushed, but the state file could not record it: \(error)"
                            }
                            summary.failures.append(problem)
                            line = "\(item.cluster.name): NOT RECORDED: \(problem)"
                        }
                        queue.book?.done(item.cluster.name)
                        switch result {
                        case .success where error == nil:
                            summary.pushed += 1
                            summary.outcomes.append((item.cluster.name, true))
                            summary.created += record.created
                            summary.updated += record.updated
                            summary.deleted += record.deleted
                        case .success:
                            summary.outcomes.append((item.cluster.name, false))
                        case .failure(let failure):
                            summary.failures.append(failure.description)
                            summary.outcomes.append((item.cluster.name, false))
                        }
                        done += 1
                        session.log.send(.progress(done: done, total: plan.toPush.count, line: line))
                    }
                }
            }
            }
            // clusters another replica held: waited for (a command), or left to it (the reconcile)
            guard !queue.elsewhere.isEmpty else { break }
            if others == .skip || Replica.monotonic() > giveUp {
                for item in queue.elsewhere {
                    if others == .skip {
                        summary.elsewhere += 1
                    } else {
                        summary.failures.append("cluster \(item.cluster.name): another replica has held its claim for 10 minutes; not pushed")
                        summary.outcomes.append((item.cluster.name, false))
                    }
                }
                break
            }
            try? await Task.sleep(nanoseconds: 500_000_000)
            queue.retryElsewhere()
        }
        session.log.send(.progressEnd)
        let count = plan.clusterCount
        let elsewhere = summary.elsewhere > 0 ? ", \(summary.elsewhere) left to another replica" : ""
        let inStep = plan.inStep.count + summary.pushedElsewhere
        session.log.note("\(count) cluster\(count == 1 ? "" : "s"): \(summary.pushed) pushed (\(summary.created) created, \(summary.updated) updated, \(summary.deleted) deleted), \(inStep) in step, \(plan.untouched.count) untouched\(elsewhere), \(summary.failures.count) failed")
        for failure in summary.failures { session.log.note("policyhub: \(failure)") }
        return summary
    }

    /// Pushes and turns failed clusters into `.memberFailed` (the CLI's exit 1).
    public static func run(session: HubSession, plan: PushPlan, concurrency: Int) async throws(EngineError) {
        let summary = try await push(session: session, plan: plan, concurrency: concurrency)
        if !summary.failures.isEmpty { throw .memberFailed(summary.failures) }
    }
}

extension HubSession {
    /// How long a cluster may be quiet on a terminal before a line says what it waits for (checked every
    /// second, so a line comes at least every 5 s).
    static let quietSeconds = 4.0

    /// Notes on the activity board that `cluster`'s work starts now, with the deadline its member gets (the
    /// caller notes it finished).
    func noteStarted(_ cluster: String) {
        engine.activity.started(cluster, deadline: limits.deadline(from: Date().timeIntervalSince1970))
    }

    /// Runs `body` while, every second, each cluster of `engine.activity` quiet for `quietSeconds` gets a
    /// `.waiting` line saying what it waits for.
    public func withHeartbeat<T: Sendable>(_ body: () async -> T) async -> T {
        let activity = engine.activity, log = self.log
        let heartbeat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 1_000_000_000)
                let lines = activity.due(every: HubSession.quietSeconds)
                if !lines.isEmpty && !Task.isCancelled { log.send(.waiting(lines)) }
            }
        }
        defer { heartbeat.cancel() }
        return await body()
    }

    /// Pushes every cluster of `environment` to its desired revision (after a promotion or rollback),
    /// under the push lock.
    public func pushEnvironment(_ environment: String, rootRevision: Revision?, concurrency: Int,
                                ignoringFreeze: Bool = false) async throws(EngineError) {
        let pushing = try engine.lock(.push)
        defer { withExtendedLifetime(pushing) {} }
        let clusters = fleet.clusters.filter { $0.environment == environment }
        let plan = try PushPlan.make(session: self, clusters: clusters, rootRevision: rootRevision, ignoringFreeze: ignoringFreeze)
        try await PushRun.run(session: self, plan: plan, concurrency: concurrency)
    }
}
