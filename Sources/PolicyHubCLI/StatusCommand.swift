import ArgumentParser
import Foundation
import HubEngine
import HubStore
import PolicyCore

/// `policyhub status`: each cluster's environment, desired and applied revision, last push.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each cluster's environment, desired and applied revision, and last push time and result.",
        discussion: "Exit 0 when every cluster holds its environment's desired revision, 2 when some do not, 1 on error.")

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: ArgumentHelp("The state: a SQLite file (default .policyhub/state.sqlite) or postgres://USER@HOST:PORT/DB (password from PGPASSWORD or passwordFile=FILE in the URL).", valueName: "path|url"))
    var state: String?

    @Option(name: .long, help: "text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let workspace = Workspace.open(root: repository.root, exec: repository.exec)
        guard let fleet = workspace.fleet else {
            report(workspace.diagnostics)
            throw ExitStatus.failure
        }
        // before the first apply there is no state yet: an empty store, not an error
        let engine = try cli { () throws(EngineError) in try repository.engine(state: state) }
        let servers = TargetCache()
        let root = engine.root
        let rows = try cli { () throws(EngineError) in
            try ClusterStatus.all(fleet: fleet, store: try engine.openStore(),
                                  targets: { HubSession.targetKey(for: $0, root: root, servers: servers) })
        }
        switch output {
        case .json: print(JSONWriter.pretty(.list(rows.map(\.value))), terminator: "")
        case .text: for row in rows { print(row.line) }
        }
        let behind = rows.filter { !$0.inStep }
        if !behind.isEmpty {
            printError("policyhub: \(behind.count) of \(rows.count) cluster\(rows.count == 1 ? "" : "s") not in step: \(behind.prefix(10).map(\.cluster).joined(separator: ", "))\(behind.count > 10 ? ", ..." : ""); policyhub apply pushes them")
            throw ExitCode(2)
        }
    }
}
