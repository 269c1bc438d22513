import ArgumentParser
import Foundation
import HubStore
import PolicyCore

/// `policyhub status`: each cluster's environment, desired and applied revision, last push.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each cluster's environment, desired and applied revision, and last push time and result.",
        discussion: "Exit 0 when every cluster holds its environment's desired revision, 2 when some do not, 1 on error.")

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: ArgumentHelp("The state file.", valueName: "path"))
    var state: String?

    @Option(name: .long, help: "text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let workspace = Workspace.open(root: repository.root)
        guard let fleet = workspace.fleet else {
            report(workspace.diagnostics)
            throw ExitStatus.failure
        }
        let path = HubSession.resolve(state ?? StateOptions.defaultPath, root: repository.root)
        // before the first apply there is no state yet: an empty store, not an error
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let store = try storeCall { try SQLiteHubStore(path: path) }
        let (rows, lines, behind) = try storeCall { try StatusCommand.rows(fleet: fleet, store: store) }
        switch output {
        case .json: print(JSONWriter.pretty(.list(rows)), terminator: "")
        case .text: for line in lines { print(line) }
        }
        if behind { throw ExitCode(2) }
    }

    /// One row per cluster (JSON) and line (text), and whether any cluster is behind its desired revision.
    /// `only` limits the rows to one cluster.
    static func rows(fleet: ValidatedFleet, store: SQLiteHubStore, only: String? = nil) throws
        -> (rows: [Value], lines: [String], behind: Bool)
    {
        let states: [String: ClusterState]
        if let only {
            states = try store.clusterState(named: only).map { [only: $0] } ?? [:]
        } else {
            states = Dictionary(try store.clusterStates().map { ($0.cluster, $0) }, uniquingKeysWith: { a, _ in a })
        }
        var desiredByEnvironment: [String: Revision?] = [:]  // one query per environment, not per cluster
        let wanted = only.flatMap { name in fleet.cluster(named: name)?.environment }
        for environment in fleet.environments where wanted == nil || environment.name == wanted {
            desiredByEnvironment[environment.name] = try store.desiredRevision(environment: environment.name)
        }
        var rows: [Value] = []
        var lines: [String] = []
        var behind = false
        for cluster in fleet.clusters where only == nil || cluster.name == only {
            let desired = desiredByEnvironment[cluster.environment] ?? nil
            let state = states[cluster.name]
            // an environment before its first promotion desires nothing: its clusters are left untouched, not behind
            let inStep = desired == nil || (state?.appliedRevision == desired?.id && state?.lastResult != "failed")
            if !inStep { behind = true }
            var map = ValueMapBuilder()
            map.set("cluster", .string(cluster.name))
            map.set("environment", .string(cluster.environment))
            // revision ids are rN in every output (SEMANTICS §7)
            map.set("desiredRevision", desired.map { .string("r\($0.id)") } ?? .null)
            map.set("appliedRevision", state?.appliedRevision.map { .string("r\($0)") } ?? .null)
            map.set("lastPushAt", state?.lastPushAt.map { .string(timestamp($0)) } ?? .null)
            map.set("lastResult", state?.lastResult.map(Value.string) ?? .null)
            map.set("lastError", state?.lastError.map(Value.string) ?? .null)
            map.set("inStep", .bool(inStep))
            rows.append(map.value)
            let desiredText = desired.map { "r\($0.id)" } ?? "none (no promotion yet)"
            let appliedText = state?.appliedRevision.map { "r\($0)" } ?? "none"
            let push = state?.lastPushAt.map { "\(state?.lastResult ?? "?") at \(timestamp($0))" } ?? "never pushed"
            var line = "\(cluster.name)  \(cluster.environment)  desired \(desiredText)  applied \(appliedText)  \(push)"
            if let error = state?.lastError { line += "\n    last error: \(error)" }
            lines.append(line)
        }
        return (rows, lines, behind)
    }
}
