import ArgumentParser
import Foundation
import PolicyCore

/// Options every command that reads a policy repository takes.
struct RepositoryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The policy repository (holds policies/ and clusters/).", valueName: "path"))
    var repo: String = "."

    var root: String {
        if repo.hasPrefix("/") { return repo }
        return (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(repo)
    }
}

/// How a command prints its result.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case yaml
    case json
}

/// Exit codes scripts can rely on.
enum ExitStatus {
    /// The input is invalid, or the command failed.
    static let failure = ExitCode(1)
}

/// Writes to standard error.
func printError(_ text: String) {
    fflush(nil)  // flush standard output first, so the two streams keep their order
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Prints diagnostics to standard error, and a one-line summary.
func report(_ diagnostics: [Diagnostic], quiet: Bool = false) {
    for diagnostic in diagnostics { printError(diagnostic.description) }
    let errors = diagnostics.filter(\.isError).count
    let warnings = diagnostics.count - errors
    if !quiet || errors > 0 {
        printError("\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
    }
}

/// Opens the workspace and stops with exit 1, printing every problem, when it is invalid.
func openValid(_ options: RepositoryOptions) throws -> (Workspace, Renderer) {
    let workspace = Workspace.open(root: options.root)
    guard let renderer = workspace.renderer() else {
        report(workspace.diagnostics)
        printError("policyhub: the policy repository is invalid; nothing was rendered")
        throw ExitStatus.failure
    }
    return (workspace, renderer)
}
