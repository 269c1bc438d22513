import ArgumentParser
import Foundation
import HubEngine
import HubStore
import PolicyCore

/// `policyhub rollback`: a new revision of an environment equal to an earlier one.
struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Record a new revision of --env equal to an earlier revision, then push it (with --push or the next apply).",
        discussion: """
            The earlier revision must belong to the same environment (policyhub history lists them). --reason is \
            required and recorded with the new revision's cause and in the audit log. --dry-run prints what would \
            change (documents, then each cluster's effective policy) and records nothing. A freeze window does not \
            hold a rollback up; an environment with requireSignedCommits takes it only when the earlier revision's \
            commit is signed by a trusted key. For the root environment, the next policyhub apply records policies/ \
            again: revert the change in git as well, or the rollback lasts only until then.
            """)

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: ArgumentHelp("The state: a SQLite file (default .policyhub/state.sqlite) or postgres://USER@HOST:PORT/DB (password from PGPASSWORD or passwordFile=FILE in the URL).", valueName: "path|url"))
    var state: String?

    @Option(name: .customLong("env"), help: ArgumentHelp("The environment to roll back.", valueName: "name"))
    var environment: String

    @Option(name: .customLong("to"), help: ArgumentHelp("The revision to return to (r12 or 12).", valueName: "revision"))
    var revision: String

    @Option(name: .long, help: ArgumentHelp("Why (required): recorded in the revision and the audit log.", valueName: "text"))
    var reason: String?

    @Flag(name: .long, help: "Print what the rollback would change; record nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Push the environment's clusters right after.")
    var push = false

    @Option(name: .long, help: ArgumentHelp("Who is rolling back (default: $USER).", valueName: "name"))
    var author: String?

    func run() async throws {
        guard let id = Int64(revision.hasPrefix("r") ? String(revision.dropFirst()) : revision) else {
            throw ValidationError("--to '\(revision)' is not a revision such as r12 or 12")
        }
        let engine = try cli { () throws(EngineError) in try repository.engine(state: state) }
        let environment = environment
        if dryRun {
            let session = try cli { () throws(EngineError) in try engine.open(workingTree: .optional) }
            let (lines, difference) = try cli { () throws(EngineError) in try session.rollbackPreview(environment: environment, to: id) }
            for line in lines { emit(line) }
            emit(difference.text, terminator: "")
            emit("dry run: nothing recorded")
            return
        }
        guard let reason, !reason.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError("a rollback needs --reason TEXT (why; recorded in the revision and the audit log)")
        }
        var lock: StateLock? = try cli { () throws(EngineError) in try engine.lock(.state) }
        let session = try cli { () throws(EngineError) in try engine.open(workingTree: .optional) }
        let author = currentAuthor(author)
        let (recorded, _) = try cli { () throws(EngineError) in
            try session.rollback(environment: environment, to: id, author: author, reason: reason)
        }
        withExtendedLifetime(lock) {}
        lock = nil  // recorded: the state lock is never held across a member's network time
        if push {
            let rootRevision = session.fleet.root?.name == environment ? recorded : nil
            try await cli { () async throws(EngineError) in
                try await session.pushEnvironment(environment, rootRevision: rootRevision, concurrency: 8)
            }
        }
    }
}
