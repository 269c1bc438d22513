import ArgumentParser
import HubEngine
import PolicyCore

/// `policyhub validate`: every problem of the whole repository.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check every policy and cluster file; print each problem as path:line:col: error: message.",
        discussion: """
            Problems are sorted by file, line and column. Warnings do not fail the run. \
            Exit 0 when there is no error, 1 when there is any.
            """)

    @OptionGroup var repository: RepositoryOptions

    @Flag(name: .long, help: "Print errors only, no warnings.")
    var errorsOnly = false

    func run() throws {
        let workspace = Workspace.open(root: repository.root, exec: repository.exec)
        let shown = errorsOnly ? workspace.diagnostics.filter(\.isError) : workspace.diagnostics
        printCapped(shown.map(\.description), toStandardError: false)
        let errors = workspace.diagnostics.filter(\.isError).count
        let warnings = workspace.diagnostics.count - errors
        let documents = workspace.repository.tree.objects.count
        let clusters = workspace.repository.fleet.clusters.count
        printError("\(documents) documents, \(clusters) clusters: \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
        if errors > 0 { throw ExitStatus.failure }
    }
}
