import ArgumentParser
import Foundation
import HubEngine
import HubStore
import PolicyCore

/// `policyhub history`: the revisions of each environment.
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "List revisions, newest first, with their cause, author and time.")

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: ArgumentHelp("The state: a SQLite file (default .policyhub/state.sqlite) or postgres://USER@HOST:PORT/DB (password from PGPASSWORD or passwordFile=FILE in the URL).", valueName: "path|url"))
    var state: String?

    @Option(name: .customLong("env"), help: ArgumentHelp("Only this environment.", valueName: "name"))
    var environment: String?

    @Option(name: .long, help: "text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let engine = try cli { () throws(EngineError) in try repository.engine(state: state) }
        if let path = engine.statePath, !FileManager.default.fileExists(atPath: path) {
            printError("policyhub: no state file at \(path) yet; run policyhub apply first")
            throw ExitStatus.failure
        }
        let environment = environment
        let (revisions, desired) = try cli { () throws(EngineError) -> ([Revision], Set<Int64>) in
            let store = try engine.openStore()
            let revisions = try stored { () throws(HubStoreError) in try store.revisions(environment: environment) }
            var desired = Set<Int64>()
            for name in Set(revisions.map(\.environment)) {
                if let id = try stored({ () throws(HubStoreError) in try store.desiredRevision(environment: name)?.id }) { desired.insert(id) }
            }
            return (revisions, desired)
        }
        if let environment, revisions.isEmpty {
            // none stored: a misspelt name, or an environment not promoted into yet
            let known = Workspace.open(root: engine.root).fleet?.environments.map(\.name) ?? []
            if !known.isEmpty && !known.contains(environment) {
                printError("policyhub: " + EditDistance.unknown("environment", environment, known: known))
                throw ExitStatus.failure
            }
        }
        switch output {
        case .json:
            print(JSONWriter.pretty(.list(revisions.map { r in
                var map = r.fields()
                map.set("desired", .bool(desired.contains(r.id)))
                return map.value
            })), terminator: "")
        case .text:
            if revisions.isEmpty { print(environment.map { "no revisions of \($0) yet" } ?? "no revisions yet") }
            for r in revisions {
                let mark = desired.contains(r.id) ? " (desired)" : ""
                print("r\(r.id)  \(r.environment)\(mark)  \(r.cause) by \(r.author) at \(timestamp(r.createdAt))  \(r.documentCount) documents\(r.parent.map { "  parent r\($0)" } ?? "")")
                if let commit = r.commit {
                    print("    \(commit.summary)  \(commit.subject)  author \(commit.author)")
                }
            }
        }
    }
}
