import ArgumentParser
import Foundation
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

    @Option(name: .long, help: ArgumentHelp("The state file.", valueName: "path"))
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
        let session = try HubSession.open(repository: repository, statePath: state, workingTree: .optional)
        func stored(_ text: String) throws -> Revision {
            let id = PolicyViewOptions.revisionID(text) ?? 0
            do {
                return try session.store.revision(id: id)
            } catch {
                throw refusal(.notFound, "policyhub: there is no revision r\(id)")
            }
        }
        let before = try stored(from)
        let after = try stored(to)
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
        let old = try session.renderer(for: before).render(clusters: clusters, parallel: .dispatch)
        let new = try session.renderer(for: after).render(clusters: clusters, parallel: .dispatch)
        let texts = clusters.indices.map { PromoteCommand.difference(before: old[$0].policy.objects, after: new[$0].policy.objects) }
        for (member, text) in zip(clusters, texts) {
            emit("\(member.name) (\(member.environment)):\n" + text, terminator: "")
        }
        if texts.contains(where: { $0 != PromoteCommand.noChange }) { throw ExitCode(2) }
    }
}
