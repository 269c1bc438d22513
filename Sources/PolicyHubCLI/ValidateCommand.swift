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
            Exit 0 when there is no error, 1 when there is any, whatever the output format.

            --output chooses what standard output holds (the count line always goes to standard error):
              text    path:line:col: error: message, one per line
              json    a list of {file, line, column, severity, rule, message}
              github  GitHub Actions workflow commands (::error file=...,line=...,col=...::message) that annotate
                      the lines of a pull request
              sarif   a SARIF 2.1.0 log: one rule per check (yaml-syntax, policy-schema, fleet, ...), each
                      result with its file and region (GitHub code scanning, GitLab, Azure DevOps read it)
              junit   JUnit XML, one test case per file read, failed by its errors
            """)

    @OptionGroup var repository: RepositoryOptions

    @Flag(name: .long, help: "Print errors only, no warnings.")
    var errorsOnly = false

    @Option(name: .long, help: "text, json, github, sarif or junit (see below).")
    var output: DiagnosticFormat = .text

    func run() throws {
        let workspace = Workspace.open(root: repository.root, exec: repository.exec)
        let shown = errorsOnly ? workspace.diagnostics.filter(\.isError) : workspace.diagnostics
        switch output {
        case .text: printCapped(shown.map(\.description), toStandardError: false)
        case .json, .github, .sarif, .junit:
            // every problem: a machine reads these, and annotations of a pull request are capped by the CI system
            let context = DiagnosticReport.Context(command: "policyhub validate", version: PolicyHubCommand.configuration.version,
                                                   files: workspace.repository.files)
            emit(DiagnosticReport.render(shown, as: output, context: context), terminator: "")
        }
        let errors = workspace.diagnostics.filter(\.isError).count
        let warnings = workspace.diagnostics.count - errors
        let documents = workspace.repository.tree.objects.count
        let clusters = workspace.repository.fleet.clusters.count
        printError("\(documents) documents, \(clusters) clusters: \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
        if errors > 0 { throw ExitStatus.failure }
    }
}
