import ArgumentParser
import Foundation
import HubStore
import Members
import PolicyCore

/// `policyhub apply`: record the root environment's revision from policies/ and push every cluster that
/// does not hold its desired effective policy.
struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Record policies/ as the root environment's revision and push clusters that differ.",
        discussion: """
            Validates first: an invalid tree records and pushes nothing. Then records a revision of the root \
            environment (when policies/ changed), renders each cluster's environment's desired revision, and \
            pushes every cluster whose desired hash differs from its applied hash, several at once. Clusters \
            already in step get no request at all; an environment other than the root one is left untouched \
            until its first promotion. A failed cluster never stops the others; rerun to retry what failed.

            State: .policyhub/state.sqlite (or --state). Exit 0 when every cluster is in step, 1 when any failed.
            """)

    @OptionGroup var repository: RepositoryOptions

    @OptionGroup var member: MemberOptions

    @Option(name: .long, help: ArgumentHelp("The most managed objects one push may delete from one cluster; more fails that cluster and deletes nothing there until you confirm with a larger number.",
                                            valueName: "count"))
    var maxDeletions: Int = KubernetesMember.defaultMaxDeletions

    @Option(name: .long, help: ArgumentHelp("The state file.", valueName: "path"))
    var state: String?

    @Option(name: .long, help: ArgumentHelp("Push only this cluster (repeatable).", valueName: "name"))
    var cluster: [String] = []

    @Option(name: .long, help: "How many clusters are pushed at once.")
    var concurrency: Int = 8

    @Flag(name: .long, help: "Show what would be recorded and pushed; change nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Push even clusters the state file says are in step (after drift found hand-made changes).")
    var repair = false

    @Option(name: .long, help: ArgumentHelp("Who is applying (default: $USER).", valueName: "name"))
    var author: String?

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for another run holding the state file.", valueName: "seconds"))
    var lockTimeout: Double = 300

    func validate() throws {
        if concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
        if maxDeletions < 0 { throw ValidationError("--max-deletions must be 0 or more") }
    }

    func run() async throws {
        let actor = currentAuthor(author)
        let statePath = HubSession.statePath(repository: repository, state: state)
        var session: HubSession
        var plan: PushPlan
        // two runs push in turns (the second then finds what the first pushed in step) ...
        let pushing = try StateLock(statePath: statePath, timeout: lockTimeout, purpose: .push)
        defer { withExtendedLifetime(pushing) {} }
        do {
            // ... but the state lock, which every writer of a revision takes (the daemon's API writes too), is
            // held only while the tree is read and recorded and the plan made, never across network time: the
            // tree read here is the one the recorded parent had
            let lock = try StateLock(statePath: statePath, timeout: lockTimeout)
            defer { withExtendedLifetime(lock) {} }
            (session, plan) = try recordAndPlan(author: actor)
        }
        session.limits = member.limits
        session.limits.maxDeletions = maxDeletions
        if dryRun {
            for item in plan.toPush {
                emit("would push \(item.cluster.name) (\(item.cluster.environment), revision \(item.revision.id)): \(item.policy.objects.count) objects")
            }
            emit("\(plan.toPush.count) to push, \(plan.inStep.count) in step, \(plan.untouched.count) untouched")
            return
        }

        // 3. Push, several at once.
        try await PushRun.run(session: session, plan: plan, concurrency: concurrency, clusterCount: plan.clusterCount)
    }

    /// Reads the repository, records the root environment's revision from policies/ on top of the desired
    /// revision it was read against (compare and swap: another writer in between means reading again), and
    /// makes the push plan.
    func recordAndPlan(author actor: String) throws -> (HubSession, PushPlan) {
        var attempt = 0
        while true {
            attempt += 1
            let session = try HubSession.open(repository: repository, statePath: state)
            let clusters = try session.clusters(named: cluster)

            // 1. The root environment's revision from policies/.
            guard let pending = try session.rootRevisionForWorkingTree(author: actor) else { throw ExitStatus.failure }
            var rootRevision = pending.revision
            if pending.isNew {
                if dryRun {
                    emit("would record revision \(rootRevision.id) of \(rootRevision.environment) from policies/ (\(rootRevision.documentCount) documents)")
                } else {
                    var failure: HubStoreError?
                    do {
                        rootRevision = try session.store.recordRevision(
                            environment: rootRevision.environment, documents: session.workingDocuments, author: actor,
                            cause: "apply", at: now(), expectedParent: .mustBe(rootRevision.parent))
                    } catch {
                        failure = error
                    }
                    if let failure {
                        if case .conflict(let environment, _, let current) = failure, attempt < 5 {
                            printError("policyhub: \(environment) moved to \(current.map { "r\($0)" } ?? "none") while policies/ was read; reading it again")
                            continue
                        }
                        printError("policyhub: \(failure)")
                        throw ExitStatus.failure
                    }
                    printError("recorded revision \(rootRevision.id) of \(rootRevision.environment) (\(rootRevision.documentCount) documents)")
                }
            }

            // 2. What each cluster must hold.
            var plan = try PushPlan.make(session: session, clusters: clusters, rootRevision: rootRevision)
            plan.clusterCount = clusters.count
            if repair {
                plan.toPush += plan.inStep
                plan.inStep = []
                plan.toPush.sort { $0.cluster.name < $1.cluster.name }
            }
            for (name, reason) in plan.untouched { printError("\(name): \(reason)") }
            return (session, plan)
        }
    }
}

/// Pushes the clusters of a plan, several at once, records each outcome, prints progress and a summary,
/// and exits 1 naming every cluster that failed.
enum PushRun {
    static func run(session: HubSession, plan: PushPlan, concurrency: Int, clusterCount: Int) async throws {
        let summary = try await push(session: session, plan: plan, concurrency: concurrency, clusterCount: clusterCount)
        if !summary.failures.isEmpty { throw ExitStatus.failure }
    }

    /// What a push did: clusters pushed and each failure in words.
    struct Summary {
        var pushed = 0
        var inStep = 0
        var failures: [String] = []
        /// Each pushed cluster and whether it succeeded.
        var outcomes: [(cluster: String, ok: Bool)] = []
    }

    /// Pushes `plan.toPush`, at most `concurrency` clusters at once, and records every outcome; a failing
    /// cluster never stops the others.
    static func push(session: HubSession, plan: PushPlan, concurrency: Int, clusterCount: Int) async throws -> Summary {
        defer { session.transports.shutdown() }
        // in step but recorded under an older revision: same objects, so only the record moves
        for item in plan.inStep where item.appliedRevision != item.revision.id {
            try storeCall {
                try session.store.markApplied(cluster: item.cluster.name, environment: item.cluster.environment,
                                              revision: item.revision.id, hash: item.desiredHash, at: now())
            }
        }
        let progress = Progress(total: plan.toPush.count)
        var failures: [String] = []
        var outcomes: [(cluster: String, ok: Bool)] = []
        var totals = (pushed: 0, created: 0, updated: 0, deleted: 0)
        await withTaskGroup(of: (PushPlan.Item, Result<PushOutcome, MemberError>, Double).self) { group in
            var pending = plan.toPush[...]
            func startNext() {
                guard let item = pending.popFirst() else { return }
                group.addTask {
                    let started = now()
                    switch session.member(for: item.cluster) {
                    case .failure(let error): return (item, .failure(error), started)
                    case .success(let member):
                        do throws(MemberError) {
                            return (item, .success(try await member.push(item.policy.objects)), started)
                        } catch {
                            return (item, .failure(error), started)
                        }
                    }
                }
            }
            for _ in 0..<concurrency { startNext() }
            while let (item, result, started) = await group.next() {
                startNext()
                var record = PushRecord(cluster: item.cluster.name, environment: item.cluster.environment,
                                        revision: item.revision.id, desiredHash: item.desiredHash, startedAt: started,
                                        finishedAt: now(), created: 0, updated: 0, deleted: 0, error: nil)
                let line: String
                switch result {
                case .success(let outcome):
                    record.created = outcome.created.count
                    record.updated = outcome.updated.count
                    record.deleted = outcome.deleted.count
                    totals.pushed += 1
                    outcomes.append((item.cluster.name, true))
                    totals.created += record.created
                    totals.updated += record.updated
                    totals.deleted += record.deleted
                    line = "\(item.cluster.name): \(record.created) created, \(record.updated) updated, \(record.deleted) deleted"
                    for refused in outcome.refused { printError("\(item.cluster.name): warning: \(refused)") }
                case .failure(let error):
                    record.error = error.description
                    failures.append(error.description)
                    outcomes.append((item.cluster.name, false))
                    line = "\(item.cluster.name): FAILED: \(error.message)"
                }
                // recorded first: a cluster's progress line means its outcome is in the state file
                do {
                    try session.store.recordPush(record)
                } catch {
                    failures.append("cluster \(item.cluster.name): pushed, but the state file could not record it: \(error)")
                }
                progress.step(line)
            }
        }
        progress.finish()
        printError("\(clusterCount) cluster\(clusterCount == 1 ? "" : "s"): \(totals.pushed) pushed (\(totals.created) created, \(totals.updated) updated, \(totals.deleted) deleted), \(plan.inStep.count) in step, \(plan.untouched.count) untouched, \(failures.count) failed")
        for failure in failures { printError("policyhub: \(failure)") }
        return Summary(pushed: totals.pushed, inStep: plan.inStep.count, failures: failures, outcomes: outcomes)
    }
}

/// Turns a store error into a message and exit 1.
func storeCall<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as HubStoreError {
        if case .conflict(_, _, let current) = error {
            throw refusal(.conflict, "policyhub: \(error)", currentRevision: current)
        }
        printError("policyhub: \(error)")
        throw ExitStatus.failure
    }
}

/// Per-cluster decisions of a push: push, already in step, or leave alone.
struct PushPlan {
    struct Item {
        var cluster: MemberCluster
        var revision: Revision
        var policy: EffectivePolicy
        var desiredHash: String
        /// The revision the store says the cluster holds.
        var appliedRevision: Int64?
    }

    var toPush: [Item] = []
    var inStep: [Item] = []
    var untouched: [(String, String)] = []
    /// How many clusters were considered.
    var clusterCount = 0

    /// `override`: the revision every cluster of `clusters` is planned for (a stored one, `plan --revision`).
    static func make(session: HubSession, clusters: [MemberCluster], rootRevision: Revision?,
                     override: Revision? = nil) throws -> PushPlan {
        var plan = PushPlan()
        let states = Dictionary(try storeCall { try session.store.clusterStates() }.map { ($0.cluster, $0) },
                                uniquingKeysWith: { a, _ in a })
        var byRevision: [Int64: (Revision, [MemberCluster])] = [:]
        for cluster in clusters {
            let revision: Revision?
            if let override {
                revision = override
            } else if cluster.environment == session.fleet.root?.name {
                revision = rootRevision
            } else {
                revision = try storeCall { try session.store.desiredRevision(environment: cluster.environment) }
            }
            guard let revision else {
                plan.untouched.append((cluster.name, "environment \(cluster.environment) has no desired revision until its first promotion; left untouched"))
                continue
            }
            byRevision[revision.id, default: (revision, [])].1.append(cluster)
        }
        for (_, (revision, members)) in byRevision.sorted(by: { $0.key < $1.key }) {
            let renderer = try session.renderer(for: revision)
            var hashes: [Renderer.PlacementClass: String] = [:]  // clusters of one class share a hash
            for (cluster, policy) in renderer.render(clusters: members, parallel: .dispatch) {
                let key = Renderer.PlacementClass(environment: cluster.environment, labels: cluster.placementLabels)
                let hash = hashes[key] ?? policy.contentHash
                hashes[key] = hash
                let item = Item(cluster: cluster, revision: revision, policy: policy, desiredHash: hash,
                                appliedRevision: states[cluster.name]?.appliedRevision)
                if states[cluster.name]?.appliedHash == item.desiredHash {
                    plan.inStep.append(item)
                } else {
                    plan.toPush.append(item)
                }
            }
        }
        plan.toPush.sort { $0.cluster.name < $1.cluster.name }
        return plan
    }
}

/// Live progress on a terminal (one rewritten line), one line per step otherwise.
final class Progress: @unchecked Sendable {
    let total: Int
    private var done = 0
    private let terminal = isatty(2) == 1

    init(total: Int) { self.total = total }

    func step(_ message: String) {
        done += 1
        if terminal {
            FileHandle.standardError.write(Data("\r\u{1B}[K[\(done)/\(total)] \(message)".utf8))
        } else {
            printError("[\(done)/\(total)] \(message)")
        }
    }

    func finish() {
        if terminal && done > 0 { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
