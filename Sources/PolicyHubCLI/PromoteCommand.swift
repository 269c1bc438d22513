import ArgumentParser
import Foundation
import HubService
import HubStore
import PolicyCore
import PolicyYAML

/// `policyhub promote`: carry a chosen subset of policy from an environment to the one that promotes from it.
struct PromoteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Promote selected documents from the source environment to --to, behind its gates.",
        discussion: """
            Builds a new revision of the target environment from its current one (empty before the first), with \
            each selected identity replaced by the source environment's version: added when new there, changed \
            when different, removed when deleted there. Everything not selected stays as it was.

            Select with --namespace NS, --global NAME, --document KIND/NAMESPACE/NAME (each repeatable) or --all. \
            Before recording, the target's gates in clusters/environments.yaml are checked (requireInSync, \
            requireNoDrift, minimumSoak) and each failure is named; --force overrides them and is recorded. \
            --dry-run prints each target cluster's change of effective policy and records nothing; --push pushes \
            the target's clusters right after. Exit 0 promoted (or nothing to change), 1 refused or failed.
            """)

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: ArgumentHelp("The state file.", valueName: "path"))
    var state: String?

    @Option(name: .long, help: ArgumentHelp("The environment to promote into.", valueName: "env"))
    var to: String

    @Option(name: .long, help: ArgumentHelp("Promote this namespace's documents (repeatable).", valueName: "ns"))
    var namespace: [String] = []

    @Option(name: .long, help: ArgumentHelp("Promote this global document (repeatable).", valueName: "name"))
    var global: [String] = []

    @Option(name: .long, help: ArgumentHelp("Promote KIND/NAMESPACE/NAME (repeatable).", valueName: "identity"))
    var document: [String] = []

    @Flag(name: .long, help: "Promote everything.")
    var all = false

    @Flag(name: .long, help: "Promote even when gates fail; the override is recorded.")
    var force = false

    @Flag(name: .long, help: "Print the change of effective policy per target cluster; record nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Push the target environment's clusters right after.")
    var push = false

    @Option(name: .long, help: "Clusters pushed at once with --push.")
    var concurrency: Int = 8

    @Option(name: .long, help: ArgumentHelp("Who is promoting (default: $USER).", valueName: "name"))
    var author: String?

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for another run holding the state file.", valueName: "seconds"))
    var lockTimeout: Double = 300

    @Option(name: .long, help: .hidden)
    var baseRevision: Int64?

    var selectors: [PromotionSelector] {
        var out: [PromotionSelector] = namespace.map(PromotionSelector.namespace) + global.map(PromotionSelector.global)
        out += document.compactMap(PromotionSelector.document)
        if all { out.append(.all) }
        return out
    }

    func validate() throws {
        for text in document where PromotionSelector.document(text) == nil {
            throw ValidationError("--document '\(text)' is not KIND/NAMESPACE/NAME (e.g. NvSecurityRule/demo/nv.web.demo or NvClusterSecurityRule//containers)")
        }
        if selectors.isEmpty { throw ValidationError("select what to promote: --namespace, --global, --document or --all") }
    }

    func run() async throws {
        let session = try HubSession.open(repository: repository, statePath: state, workingTree: .optional)
        // the CLI serializes promotions on the state lock; the daemon answers a stale base with 409 instead
        var lock = CommandCapture.current == nil ? try StateLock(statePath: session.store.path, timeout: lockTimeout) : nil
        guard let target = session.fleet.environment(named: to) else {
            throw refusal(.notFound, "policyhub: unknown environment '\(to)' (known: \(session.fleet.environments.map(\.name).joined(separator: ", ")))")
        }
        guard let sourceName = target.promotesFrom, let source = session.fleet.environment(named: sourceName) else {
            throw refusal(.invalid, "policyhub: \(to) is the root environment; it changes by policyhub apply, not by promotion")
        }
        guard let sourceRevision = try storeCall({ try session.store.desiredRevision(environment: source.name) }) else {
            throw refusal(.invalid, "policyhub: \(source.name) has no revision yet; run policyhub apply (or promote into it) first")
        }
        let current = try storeCall { try session.store.desiredRevision(environment: target.name) }
        if let baseRevision, baseRevision != current?.id {
            throw refusal(.conflict, "policyhub: \(target.name) is at \(current.map { "r\($0.id)" } ?? "no revision"), not r\(baseRevision); another change landed first",
                          currentRevision: current?.id)
        }
        let sourceDocuments = try storeCall { try session.store.documents(revision: sourceRevision.id) }
        let targetDocuments = try current.map { revision in try storeCall { try session.store.documents(revision: revision.id) } } ?? []
        let result = Promotion.apply(selectors, source: sourceDocuments, target: targetDocuments, identity: \.identity,
                                     path: \.source, hash: \.hash)
        let selection = selectors.map(\.description).joined(separator: " ")
        guard !result.matched.isEmpty else {
            throw refusal(.invalid, "policyhub: \(selection) matches no document of \(source.name) (r\(sourceRevision.id)) or \(target.name); nothing to promote")
        }
        for id in result.added { emit("+ \(id)") }
        for id in result.changed { emit("~ \(id)") }
        for id in result.removed { emit("- \(id)") }
        if result.added.isEmpty && result.changed.isEmpty && result.removed.isEmpty {
            emit("\(target.name) already holds \(source.name)'s versions of \(selection); nothing to promote")
            return
        }
        // the new tree must still be valid on its own
        // a promoted tree equal to the working tree was validated when the repository was read
        let promotedPolicy: ValidatedPolicySet
        if let working = session.policy, SQLiteHubStore.treeHash(result.documents) == session.workingTreeHash {
            promotedPolicy = working
        } else {
            let validated = HubSession.validate(HubSession.objects(of: result.documents))
            guard let value = validated.value else {
                report(validated.diagnostics)
                throw refusal(.invalid, "policyhub: the promoted tree of \(target.name) would be invalid; nothing was recorded")
            }
            promotedPolicy = value
        }
        let failures = try gateFailures(session: session, target: target, source: source, sourceRevision: sourceRevision)
        for failure in failures { printError("gate \(failure)") }
        if !failures.isEmpty && !force && !dryRun {
            throw refusal(.gateFailed, "policyhub: \(failures.count) gate\(failures.count == 1 ? "" : "s") of \(target.name) failed; nothing was recorded (--force overrides and is recorded)")
        }
        let pending = Revision(id: 0, environment: target.name, parent: current?.id, author: currentAuthor(author), createdAt: now(),
                               cause: "promote", treeHash: SQLiteHubStore.treeHash(result.documents),
                               documentCount: result.documents.count)
        if dryRun {
            try printDifference(session: session, target: target, current: current, after: promotedPolicy)
            emit("dry run: nothing recorded\(failures.isEmpty ? "" : "; \(failures.count) gate(s) would refuse without --force")")
            return
        }
        var cause = "promote from \(source.name) r\(sourceRevision.id): \(selection)"
        if !failures.isEmpty { cause += " (forced past: \(failures.map { $0.components(separatedBy: ":").first ?? $0 }.joined(separator: ", ")))" }
        let revision = try storeCall {
            try session.store.recordRevision(environment: target.name, documents: result.documents, author: pending.author,
                                             cause: cause, at: now(), expectedParent: .mustBe(current?.id))
        }
        CommandCapture.current?.recorded(revision.id)
        printError("recorded revision \(revision.id) of \(target.name) (\(cause))")
        withExtendedLifetime(lock) {}
        lock = nil  // recorded: the state lock is never held across a member's network time
        if push {
            let pushing = CommandCapture.current == nil ? try StateLock(statePath: session.store.path, timeout: 300, purpose: .push) : nil
            defer { withExtendedLifetime(pushing) {} }
            let clusters = session.fleet.clusters.filter { $0.environment == target.name }
            let plan = try PushPlan.make(session: session, clusters: clusters, rootRevision: nil)
            try await PushRun.run(session: session, plan: plan, concurrency: concurrency, clusterCount: clusters.count)
        }
    }

    /// The gates of `target` that fail, each in words.
    func gateFailures(session: HubSession, target: Environment, source: Environment, sourceRevision: Revision) throws -> [String] {
        var failures: [String] = []
        let sourceClusters = session.fleet.clusters.filter { $0.environment == source.name }
        let states = Dictionary(try storeCall { try session.store.clusterStates() }.map { ($0.cluster, $0) },
                                uniquingKeysWith: { a, _ in a })
        if target.gates.requireInSync {
            let behind = sourceClusters.filter { states[$0.name]?.appliedRevision != sourceRevision.id }.map(\.name)
            if !behind.isEmpty {
                failures.append("requireInSync: \(behind.joined(separator: ", ")) of \(source.name) do not hold r\(sourceRevision.id); run policyhub apply")
            }
        }
        if target.gates.requireNoDrift {
            switch try storeCall({ try session.store.latestDriftCheck(environment: source.name) }) {
            case nil:
                failures.append("requireNoDrift: no drift check of \(source.name) is recorded yet")
            case let check? where check.findings > 0:
                failures.append("requireNoDrift: the latest drift check of \(source.name) (\(timestamp(check.at))) found \(check.findings) finding\(check.findings == 1 ? "" : "s")")
            case .some:
                break
            }
        }
        if let soak = target.gates.minimumSoakSeconds {
            let appliedTimes = sourceClusters.compactMap { cluster -> Double? in
                guard let state = states[cluster.name], state.appliedRevision == sourceRevision.id else { return nil }
                return state.appliedAt
            }
            if appliedTimes.count < sourceClusters.count || sourceClusters.isEmpty {
                failures.append("minimumSoak: r\(sourceRevision.id) is not applied on every cluster of \(source.name) yet")
            } else if let since = appliedTimes.max(), now() - since < Double(soak) {
                let left = Int(Double(soak) - (now() - since))
                failures.append("minimumSoak: r\(sourceRevision.id) has soaked \(Int(now() - since)) s of \(soak) s on \(source.name) (\(left) s to go)")
            }
        }
        return failures
    }

    /// Per target cluster, the objects the promotion would create, change and delete.
    /// `after` is the promoted tree, validated once by the caller.
    func printDifference(session: HubSession, target: Environment, current: Revision?, after: ValidatedPolicySet) throws {
        // one revision label and one cache for both renders: documents the promotion leaves alone are
        // emitted once, and each placement class renders once before and once after
        let afterRenderer = Renderer(policy: after, fleet: session.fleet, revision: "dry-run")
        let beforeRenderer = try current.map { revision in
            let stored = try session.renderer(for: revision)
            return Renderer(policy: stored.policy, fleet: session.fleet, revision: "dry-run")
        }
        let clusters = session.fleet.clusters.filter { $0.environment == target.name }
        let cache = DocumentCache()
        let beforePolicies = beforeRenderer?.render(clusters: clusters, parallel: .dispatch, cache: cache)
        let afterPolicies = afterRenderer.render(clusters: clusters, parallel: .dispatch, cache: cache)
        var byClass: [Renderer.PlacementClass: String] = [:]
        for (index, cluster) in clusters.enumerated() {
            let key = Renderer.PlacementClass(environment: cluster.environment, labels: cluster.placementLabels)
            if let known = byClass[key] {
                emit("\(cluster.name) (\(target.name)):\n" + known, terminator: "")
                continue
            }
            let after = afterPolicies[index].policy.objects
            let before = beforePolicies?[index].policy.objects ?? []
            let text = PromoteCommand.difference(before: before, after: after)
            byClass[key] = text
            emit("\(cluster.name) (\(target.name)):\n" + text, terminator: "")
        }
    }

    /// The readable difference between two renders of a cluster; objects with the same spec hash and
    /// metadata are not compared field by field.
    /// What `difference` says when nothing differs.
    static let noChange = "  no change\n"

    static func difference(before: [RenderedObject], after: [RenderedObject]) -> String {
        let old = Dictionary(before.map { ($0.identity, $0) }, uniquingKeysWith: { a, _ in a })
        let new = Dictionary(after.map { ($0.identity, $0) }, uniquingKeysWith: { a, _ in a })
        var out = ""
        for (identity, object) in new.sorted(by: { $0.key < $1.key }) {
            guard let previous = old[identity] else {
                out += "  + \(identity)\n"
                continue
            }
            if previous.hash == object.hash && previous.value["metadata"]?["labels"] == object.value["metadata"]?["labels"]
                && previous.source == object.source {
                continue
            }
            let changes = ValueDiff.changes(from: DriftComparison.comparable(previous.value), to: DriftComparison.comparable(object.value))
            if !changes.isEmpty {
                out += "  ~ \(identity)\n"
                for change in changes { out += "      \(change)\n" }
            }
        }
        for identity in old.keys.sorted() where new[identity] == nil { out += "  - \(identity)\n" }
        return out.isEmpty ? PromoteCommand.noChange : out
    }
}
