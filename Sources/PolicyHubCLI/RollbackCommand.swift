import ArgumentParser
import Foundation
import HubService
import HubStore
import PolicyCore

/// `policyhub rollback`: a new revision of an environment equal to an earlier one.
struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Record a new revision of --env equal to an earlier revision, then push it (with --push or the next apply).",
        discussion: """
            The earlier revision must belong to the same environment (policyhub history lists them). The new \
            revision records its cause. For the root environment, the next policyhub apply records policies/ \
            again: revert the change in git as well, or the rollback lasts only until then.
            """)

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: ArgumentHelp("The state file.", valueName: "path"))
    var state: String?

    @Option(name: .customLong("env"), help: ArgumentHelp("The environment to roll back.", valueName: "name"))
    var environment: String

    @Option(name: .customLong("to"), help: ArgumentHelp("The revision to return to (r12 or 12).", valueName: "revision"))
    var revision: String

    @Flag(name: .long, help: "Push the environment's clusters right after.")
    var push = false

    @Option(name: .long, help: ArgumentHelp("Who is rolling back (default: $USER).", valueName: "name"))
    var author: String?

    func run() async throws {
        guard let id = Int64(revision.hasPrefix("r") ? String(revision.dropFirst()) : revision) else {
            throw ValidationError("--to '\(revision)' is not a revision such as r12 or 12")
        }
        let session = try HubSession.open(repository: repository, statePath: state, workingTree: .optional)
        var lock = CommandCapture.current == nil ? try StateLock(statePath: session.store.path, timeout: 300) : nil
        guard session.fleet.environment(named: environment) != nil else {
            throw refusal(.notFound, "policyhub: unknown environment '\(environment)'")
        }
        let earlier: Revision
        do {
            earlier = try session.store.revision(id: id)
        } catch {
            throw refusal(.notFound, "policyhub: cannot roll \(environment) back to r\(id): \(error)")
        }
        guard earlier.environment == environment else {
            throw refusal(.invalid, "policyhub: r\(id) is a revision of \(earlier.environment), not of \(environment)")
        }
        let current = try storeCall { try session.store.desiredRevision(environment: environment) }
        let documents = try storeCall { try session.store.documents(revision: id) }
        let recorded = try storeCall {
            try session.store.recordRevision(environment: environment, documents: documents, author: currentAuthor(author),
                                             cause: "rollback to r\(id)", at: now(), expectedParent: .mustBe(current?.id))
        }
        CommandCapture.current?.recorded(recorded.id)
        printError("recorded revision \(recorded.id) of \(environment) (rollback to r\(id), from \(current.map { "r\($0.id)" } ?? "none"))")
        if session.fleet.root?.name == environment {
            printError("note: \(environment) is the root environment; the next policyhub apply records policies/ again unless it is reverted in git too")
        }
        withExtendedLifetime(lock) {}
        lock = nil  // recorded: the state lock is never held across a member's network time
        if push {
            let pushing = CommandCapture.current == nil ? try StateLock(statePath: session.store.path, timeout: 300, purpose: .push) : nil
            defer { withExtendedLifetime(pushing) {} }
            let clusters = session.fleet.clusters.filter { $0.environment == environment }
            let rootRevision = session.fleet.root?.name == environment ? recorded : nil
            let plan = try PushPlan.make(session: session, clusters: clusters, rootRevision: rootRevision)
            try await PushRun.run(session: session, plan: plan, concurrency: 8, clusterCount: clusters.count)
        }
    }
}
