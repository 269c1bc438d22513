import ArgumentParser
import Foundation
import HubEngine
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
            requireNoDrift, minimumSoak, freeze windows, requireSignedCommits) and each failure is named; --force \
            --reason TEXT overrides them (except requireSignedCommits) and both are recorded. --from rN or --from \
            COMMIT promotes an earlier revision of the source (by its id, or the commit it was recorded from). \
            A name in --namespace, --global or --document that matches nothing is an error, with the nearest \
            known names. --dry-run prints each target cluster's change of effective policy, records nothing and \
            exits as the real promotion would; --push pushes the target's clusters right after. Exit 0 promoted \
            (or nothing to change), 1 refused or failed.
            """)

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: ArgumentHelp("The state: a SQLite file (default .policyhub/state.sqlite) or postgres://USER@HOST:PORT/DB (password from PGPASSWORD or passwordFile=FILE in the URL).", valueName: "path|url"))
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

    @Flag(name: .long, help: "Promote even when gates fail (needs --reason); the override is recorded. Never past requireSignedCommits.")
    var force = false

    @Option(name: .long, help: ArgumentHelp("Why gates are overridden (required with --force): recorded in the revision and the audit log.", valueName: "text"))
    var reason: String?

    @Option(name: .long, help: ArgumentHelp("Promote this revision of the source (rN), or the one recorded from this commit (default: its desired revision).", valueName: "rN|commit"))
    var from: String?

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
        if force && (reason ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--force needs --reason TEXT: why the gates are overridden (recorded in the revision and the audit log)")
        }
    }

    func run() async throws {
        let engine = try cli { () throws(EngineError) in try repository.engine(state: state) }
        // promotions take turns on the state lock; the daemon answers a stale base with 409 instead
        var lock: StateLock? = try cli { () throws(EngineError) in try engine.lock(.state, timeout: lockTimeout) }
        let session = try cli { () throws(EngineError) in try engine.open(workingTree: .optional) }
        let input = PromotionInput(target: to, selectors: selectors, force: force, author: currentAuthor(author),
                                   baseRevision: baseRevision, reason: reason, from: from)
        let prepared = try cli { () throws(EngineError) in try session.preparePromotion(input) }
        for line in prepared.changeLines { emit(line) }
        if prepared.isNoChange { return }
        if dryRun {
            for gate in prepared.gateFailures { printError("gate \(gate)") }
            let difference = try cli { () throws(EngineError) in try session.difference(of: prepared) }
            emit(difference.text, terminator: "")
            let failures = prepared.gateFailures
            let unforceable = failures.filter { $0.gate == .requireSignedCommits }
            emit("dry run: nothing recorded\(failures.isEmpty ? "" : "; \(failures.count) gate(s) would refuse without --force")")
            // the status the real promotion would have
            if !unforceable.isEmpty || (!failures.isEmpty && (!force || (reason ?? "").isEmpty)) { throw ExitStatus.failure }
            return
        }
        if force { for gate in prepared.gateFailures { printError("gate \(gate)") } }
        _ = try cli { () throws(EngineError) in try session.commit(prepared) }
        withExtendedLifetime(lock) {}
        lock = nil  // recorded: the state lock is never held across a member's network time
        if push {
            let target = prepared.target.name
            let concurrency = concurrency
            try await cli { () async throws(EngineError) in
                try await session.pushEnvironment(target, rootRevision: nil, concurrency: concurrency, ignoringFreeze: force)
            }
        }
    }
}
