import ArgumentParser
import Foundation
import HubStore
import PolicyCore

/// `policyhub history`: the revisions of each environment.
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "List revisions, newest first, with their cause, author and time.")

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: ArgumentHelp("The state file.", valueName: "path"))
    var state: String?

    @Option(name: .customLong("env"), help: ArgumentHelp("Only this environment.", valueName: "name"))
    var environment: String?

    @Option(name: .long, help: "text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let path = HubSession.resolve(state ?? StateOptions.defaultPath, root: repository.root)
        guard FileManager.default.fileExists(atPath: path) else {
            printError("policyhub: no state file at \(path) yet; run policyhub apply first")
            throw ExitStatus.failure
        }
        let store = try storeCall { try SQLiteHubStore(path: path) }
        let revisions = try storeCall { try store.revisions(environment: environment) }
        let desired = Set(try revisions.compactMap { revision in
            try storeCall { try store.desiredRevision(environment: revision.environment)?.id }
        })
        switch output {
        case .json:
            print(JSONWriter.pretty(.list(revisions.map { r in
                var map = HistoryCommand.fields(of: r) { .string("r\($0)") }
                map.set("desired", .bool(desired.contains(r.id)))
                return map.value
            })), terminator: "")
        case .text:
            if revisions.isEmpty { print("no revisions yet") }
            for r in revisions {
                let mark = desired.contains(r.id) ? " (desired)" : ""
                print("r\(r.id)  \(r.environment)\(mark)  \(r.cause) by \(r.author) at \(timestamp(r.createdAt))  \(r.documentCount) documents\(r.parent.map { "  parent r\($0)" } ?? "")")
            }
        }
    }
}

extension HistoryCommand {
    /// A revision's fields as JSON, the same for the CLI and the API; `id` writes a revision id (the CLI
    /// writes numbers, the API `rN`).
    static func fields(of revision: Revision, id: (Int64) -> Value) -> ValueMapBuilder {
        var map = ValueMapBuilder()
        map.set("id", id(revision.id))
        map.set("environment", .string(revision.environment))
        map.set("parent", revision.parent.map(id) ?? .null)
        map.set("cause", .string(revision.cause))
        map.set("author", .string(revision.author))
        map.set("createdAt", .string(timestamp(revision.createdAt)))
        map.set("documents", .int(revision.documentCount))
        map.set("treeHash", .string(revision.treeHash))
        return map
    }
}

/// RFC 3339 time in UTC.
func timestamp(_ seconds: Double) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.timeZone = TimeZone(identifier: "UTC")
    return formatter.string(from: Date(timeIntervalSince1970: seconds))
}
