import ArgumentParser
import Foundation
import HubEngine
import HubStore
import PolicyCore

/// `policyhub diff rA rB`: the change of effective policy between two stored revisions, per cluster.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show the change of effective policy between two stored revisions, per cluster.",
        discussion: """
            Renders both revisions for the clusters of the second one's environment and prints, per cluster, the \
            objects added (+), removed (-) and changed (~, with the fields). Clusters of one placement class \
            get the same difference. Exit 0 when nothing differs, 2 when something does, 1 on error.

            Example: policyhub diff r4 r7
            """)

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: ArgumentHelp("The state: a SQLite file (default .policyhub/state.sqlite) or postgres://USER@HOST:PORT/DB (password from PGPASSWORD or passwordFile=FILE in the URL).", valueName: "path|url"))
    var state: String?

    @Option(name: .long, help: ArgumentHelp("Only this cluster (repeatable).", valueName: "name"))
    var cluster: [String] = []

    @Argument(help: ArgumentHelp("The revision before (r4).", valueName: "rA"))
    var from: String

    @Argument(help: ArgumentHelp("The revision after (r7).", valueName: "rB"))
    var to: String

    func validate() throws {
        for text in [from, to] where PolicyViewOptions.revisionID(text) == nil {
            throw ValidationError("'\(text)' is not a revision such as r12 or 12")
        }
    }

    func run() throws {
        let session = try cli { () throws(EngineError) in try repository.engine(state: state).open(workingTree: .optional) }
        let (from, to) = (from, to)
        let (before, after) = try cli { () throws(EngineError) in
            (try session.storedRevision(PolicyViewOptions.revisionID(from) ?? 0), try session.storedRevision(PolicyViewOptions.revisionID(to) ?? 0))
        }
        var clusters = session.fleet.clusters.filter { $0.environment == after.environment }
        if !cluster.isEmpty {
            for name in cluster where !clusters.contains(where: { $0.name == name }) {
                printError("policyhub: cluster '\(name)' is not a cluster of \(after.environment) (known: \(clusters.map(\.name).joined(separator: ", ")))")
                throw ExitStatus.failure
            }
            clusters = clusters.filter { cluster.contains($0.name) }
        }
        let note = before.environment == after.environment ? "" : " (r\(before.id) is a revision of \(before.environment))"
        emit("difference of effective policy from r\(before.id) to r\(after.id) of \(after.environment)\(note), per cluster:")
        let (beforeRenderer, afterRenderer) = try cli { () throws(EngineError) in
            (try session.renderer(for: before), try session.renderer(for: after))
        }
        let old = beforeRenderer.render(clusters: clusters, parallel: .dispatch)
        let new = afterRenderer.render(clusters: clusters, parallel: .dispatch)
        let texts = clusters.indices.map { PolicyDifference.text(before: old[$0].policy.objects, after: new[$0].policy.objects) }
        for (member, text) in zip(clusters, texts) {
            emit("\(member.name) (\(member.environment)):\n" + text, terminator: "")
        }
        if texts.contains(where: { $0 != PolicyDifference.noChange }) { throw ExitCode(2) }
    }
}
