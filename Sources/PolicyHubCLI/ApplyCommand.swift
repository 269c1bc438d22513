import ArgumentParser
import Foundation
import HubEngine
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

            In a git work tree the revision records its commit (author, committer, subject, and the signature \
            checked against --trusted-keys); policies/ or clusters/ that differ from the commit are refused \
            unless --allow-dirty. An environment with requireSignedCommits takes only commits signed by a \
            trusted key. Inside a freeze window of an environment (freeze: in environments.yaml) nothing is \
            recorded for it and its clusters are not pushed, rollbacks excepted, unless --force --reason TEXT.

            A saved plan (policyhub plan --out FILE) is applied with policyhub apply FILE: it records and pushes \
            exactly what that plan shows, after checking that the repository's files and commit, the state \
            file's records and the objects held by every member to push are as they were when it was made; \
            otherwise it names what moved and records and pushes nothing (exit 1). --cluster and --repair do \
            not go with a saved plan: the plan already says which clusters are pushed.

            State: .policyhub/state.sqlite (or --state). Exit 0 when every cluster is in step, 1 when any failed.
            """)

    @Argument(help: ArgumentHelp("A plan saved by policyhub plan --out FILE: push exactly that, or refuse if anything it was made from moved.",
                                 valueName: "plan-file"))
    var planFile: String?

    @OptionGroup var repository: RepositoryOptions

    @OptionGroup var member: MemberOptions

    @Option(name: .long, help: ArgumentHelp("The most managed objects one push may delete from one cluster; more fails that cluster and deletes nothing there until you confirm with a larger number.",
                                            valueName: "count"))
    var maxDeletions: Int = KubernetesMember.defaultMaxDeletions

    @Option(name: .long, help: ArgumentHelp("The state: a SQLite file (default .policyhub/state.sqlite) or postgres://USER@HOST:PORT/DB (password from PGPASSWORD or passwordFile=FILE in the URL).", valueName: "path|url"))
    var state: String?

    @Option(name: .long, help: ArgumentHelp("Push only this cluster (repeatable).", valueName: "name"))
    var cluster: [String] = []

    @Option(name: .long, help: "How many clusters are sent to at once (a Kubernetes cluster waiting out --settle gives its place to the next, up to as many again waiting).")
    var concurrency: Int = 8

    @Flag(name: .long, help: "Show what would be recorded and pushed; change nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Push even clusters the state file says are in step (after drift found hand-made changes).")
    var repair = false

    @Flag(name: .long, help: "Record policies/ and clusters/ even when they differ from the git commit (the revision is marked dirty).")
    var allowDirty = false

    @Flag(name: .long, help: "Record and push even inside a freeze window (needs --reason; recorded).")
    var force = false

    @Option(name: .long, help: ArgumentHelp("Why a freeze is overridden (with --force): recorded in the revision and the audit log.", valueName: "text"))
    var reason: String?

    @Option(name: .long, help: ArgumentHelp("Who is applying (default: $USER).", valueName: "name"))
    var author: String?

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for another run holding the state file.", valueName: "seconds"))
    var lockTimeout: Double = 300

    func validate() throws {
        if planFile != nil && !cluster.isEmpty {
            throw ValidationError("--cluster does not go with a saved plan: the plan already names the clusters it pushes (make one with plan --cluster ... --out FILE)")
        }
        if planFile != nil && repair {
            throw ValidationError("--repair does not go with a saved plan: it pushes only what the plan shows")
        }
        if concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
        if maxDeletions < 0 { throw ValidationError("--max-deletions must be 0 or more") }
        if force && (reason ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--force needs --reason TEXT: why the freeze is overridden (recorded in the revision and the audit log)")
        }
    }

    @OptionGroup var diagnostics: DiagnosticOptions

    func run() async throws {
        member.startWatchdog()
        diagnostics.start(command: "policyhub apply")
        defer { DiagnosticSink.shared.finish() }
        let engine = try cli { () throws(EngineError) in try repository.engine(state: state) }
        // two runs push in turns (the second then finds what the first pushed in step); the state lock,
        // which every writer of a revision takes (the daemon's API writes too), is held only while the tree
        // is read and recorded and the plan made, never across network time
        let pushing = try cli { () throws(EngineError) in try engine.lock(.push, timeout: lockTimeout) }
        defer { withExtendedLifetime(pushing) {} }
        var applied: ApplyPlan
        if let planFile {
            let saved = try cli { () throws(EngineError) in try SavedPlan.read(path: planFile) }
            emit("applying the saved plan \(planFile) (made \(saved.createdAt), revision \(saved.rootRevision), \(saved.pushed.count) cluster\(saved.pushed.count == 1 ? "" : "s") to push)")
            if dryRun {
                // checks the plan still holds, records and pushes nothing
                let (author, allowDirty, force, reason, lockTimeout, limits) = (currentAuthor(author), allowDirty, force, reason, lockTimeout, member.limits)
                _ = try await cli { () async throws(EngineError) in
                    try await engine.checkSaved(saved, author: author, allowDirty: allowDirty, force: force, reason: reason, lockTimeout: lockTimeout,
                                                limits: limits)
                }
                emit("the saved plan still holds: nothing it was made from moved (dry run: nothing recorded or pushed)")
                return
            }
            let (author, allowDirty, force, reason, lockTimeout, concurrency, limits) = (currentAuthor(author), allowDirty, force, reason, lockTimeout, concurrency, member.limits)
            applied = try await cli { () async throws(EngineError) in
                try await engine.applySaved(saved, author: author, allowDirty: allowDirty, force: force, reason: reason,
                                            lockTimeout: lockTimeout, concurrency: concurrency, limits: limits)
            }
        } else {
            applied = try cli { () throws(EngineError) in
                try engine.recordAndPlan(author: currentAuthor(author), clusters: cluster, record: !dryRun, repair: repair,
                                         allowDirty: allowDirty, force: force, reason: reason, lockTimeout: lockTimeout)
            }
        }
        applied.session.limits = member.limits
        applied.session.limits.maxDeletions = maxDeletions
        let plan = applied.plan
        printPrecedenceWarnings(plan.toPush)
        if dryRun {
            if applied.isNew {
                emit("would record revision \(applied.rootRevision.id) of \(applied.rootRevision.environment) from policies/ (\(applied.rootRevision.documentCount) documents)\(applied.rootRevision.commit.map { " from " + $0.summary } ?? "")")
            }
            for item in plan.toPush {
                emit("would push \(item.cluster.name) (\(item.cluster.environment), revision \(item.revision.id)): \(item.policy.objects.count) objects")
            }
            emit("\(plan.toPush.count) to push, \(plan.inStep.count) in step, \(plan.untouched.count) untouched")
            return
        }
        let session = applied.session
        try await cli { () async throws(EngineError) in try await PushRun.run(session: session, plan: plan, concurrency: concurrency) }
    }
}
