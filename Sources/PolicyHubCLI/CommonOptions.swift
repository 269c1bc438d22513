import ArgumentParser
import Foundation
import HubService
import Members
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

/// How a report prints its result (status, history, plan, explain): anything else is a usage error.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}

/// How `render` prints effective policy.
enum DocumentFormat: String, ExpressibleByArgument, CaseIterable {
    case yaml
    case json
}

/// Exit codes scripts can rely on.
enum ExitStatus {
    /// The input is invalid, or the command failed.
    static let failure = ExitCode(1)
}

/// Writes to standard error, or, when a command runs inside the daemon, to its capture.
func printError(_ text: String) {
    if let capture = CommandCapture.current {
        capture.error(text)
        return
    }
    fflush(nil)  // flush standard output first, so the two streams keep their order
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Writes a command's result to standard output, or, inside the daemon, to its capture.
func emit(_ text: String, terminator: String = "\n") {
    if let capture = CommandCapture.current {
        capture.output(text + terminator)
        return
    }
    print(text, terminator: terminator)
}

/// What a command run by the daemon printed and how it failed: the daemon runs the CLI's own commands
/// (the same validation, gates and pushes) and answers with this instead of a terminal.
final class CommandCapture: @unchecked Sendable {
    @TaskLocal static var current: CommandCapture?

    private let lock = NSLock()
    private(set) var errors: [String] = []
    private(set) var text = ""
    /// How the command failed, when it said so (the daemon's HTTP status); nil is a plain failure.
    private(set) var kind: OperationError.Kind?
    private(set) var currentRevision: Int64?

    func error(_ line: String) {
        lock.lock()
        errors.append(line)
        lock.unlock()
    }

    func output(_ chunk: String) {
        lock.lock()
        text += chunk
        lock.unlock()
    }

    /// The revision the command recorded, when it recorded one (the daemon answers with exactly it).
    private(set) var recordedRevision: Int64?

    func recorded(_ revision: Int64) {
        lock.lock()
        recordedRevision = revision
        lock.unlock()
    }

    func classify(_ kind: OperationError.Kind, currentRevision: Int64? = nil) {
        lock.lock()
        if self.kind == nil { self.kind = kind }
        if let currentRevision { self.currentRevision = currentRevision }
        lock.unlock()
    }
}

/// Says why a command fails (so the daemon can answer 404, 409, 412 or 422), prints `message` and returns
/// the exit status to throw.
func refusal(_ kind: OperationError.Kind, _ message: String, currentRevision: Int64? = nil) -> ExitCode {
    CommandCapture.current?.classify(kind, currentRevision: currentRevision)
    printError(message)
    return ExitStatus.failure
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

/// Bounds on the work one member may cause: how long it may take, and how much a push may delete.
struct MemberLimits: Sendable {
    /// Seconds one cluster's whole exchange may take, retries included.
    var clusterTimeout: Double = 120
    /// Managed objects one push may delete from one cluster.
    var maxDeletions = KubernetesMember.defaultMaxDeletions
}

/// The options that set `MemberLimits`.
struct MemberOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Seconds one cluster may take, retries included; a member that answers slowly or never fails by name after it.",
                                            valueName: "seconds"))
    var clusterTimeout: Double = 120

    var limits: MemberLimits { MemberLimits(clusterTimeout: clusterTimeout) }

    func validate() throws {
        if !(clusterTimeout > 0) { throw ValidationError("--cluster-timeout must be a positive number of seconds") }
    }
}
