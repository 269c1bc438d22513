import ArgumentParser
import HubTransport
import Foundation
import HubEngine
import Members
import PolicyCore

/// Options every command that reads a policy repository takes.
struct RepositoryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The policy repository (holds policies/ and clusters/).", valueName: "path"))
    var repo: String = "."

    @Option(name: .customLong("allow-exec"),
            help: ArgumentHelp("Let kubeconfig users run this exec credential plugin (a path, or a name on PATH; repeatable). A kubeconfig alone never makes the hub run a program.",
                               valueName: "command"))
    var allowExec: [String] = []

    @Option(name: .customLong("trusted-keys"),
            help: ArgumentHelp("A file of keys trusted to sign policy commits: OpenPGP public keys (gpg --export) or an SSH allowed-signers file (repeatable). Never a file of the policy repository.",
                               valueName: "file"))
    var trustedKeys: [String] = []

    /// What the operator allows exec plugins: the `--allow-exec` commands; a person at a terminal may
    /// answer a plugin that asks; the plugin's stderr goes to standard error.
    var exec: ExecSettings {
        ExecSettings(allowed: allowExec, interactive: isatty(0) == 1, log: { printError($0) })
    }

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

/// Writes a line to standard error (standard output first, so the two streams keep their order).
func printError(_ text: String) {
    fflush(nil)
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Writes a command's result to standard output.
func emit(_ text: String, terminator: String = "\n") {
    print(text, terminator: terminator)
}

/// The engine's events on a terminal: lines to standard error, per-cluster progress rewritten in place
/// when standard error is a terminal, one line per step otherwise.
let terminalLog: EngineLog = {
    let terminal = isatty(2) == 1
    let progressShown = ProgressLine()
    return EngineLog { event in
        switch event {
        case .diagnostic(let diagnostic): DiagnosticSink.shared.emit([diagnostic])
        case .note(let line): printError(line)
        case .progress(let done, let total, let line):
            if terminal {
                progressShown.set(true)
                FileHandle.standardError.write(Data("\r\u{1B}[K[\(done)/\(total)] \(line)".utf8))
            } else {
                printError("[\(done)/\(total)] \(line)")
            }
        case .progressEnd:
            if progressShown.take() { FileHandle.standardError.write(Data("\n".utf8)) }
        case .waiting(let lines):
            // on a terminal only: a log (CI) keeps one line per cluster
            guard terminal else { return }
            let clear = progressShown.take() ? "\r\u{1B}[K" : ""
            FileHandle.standardError.write(Data((clear + lines.joined(separator: "\n") + "\n").utf8))
        }
    }
}()

/// Whether a progress line is on the terminal, waiting for its newline.
final class ProgressLine: @unchecked Sendable {
    private let lock = NSLock()
    private var shown = false

    func set(_ value: Bool) { lock.withLock { shown = value } }

    func take() -> Bool { lock.withLock { defer { shown = false }; return shown } }
}

extension RepositoryOptions {
    /// The engine on this repository and the state `state` (a SQLite file, nil for the default, or a
    /// `postgres://` URL), printing its events.
    func engine(state: String?) throws(EngineError) -> HubEngine {
        let cwd = FileManager.default.currentDirectoryPath
        return HubEngine(root: root, store: try HubEngine.storeSource(state, root: root), log: terminalLog, exec: exec,
                         trustedKeys: TrustedKeys(files: trustedKeys.map { HubEngine.resolve($0, root: cwd) }), activity: Watchdog.activity)
    }
}

/// `--timeout`: the whole command's deadline. Each cluster's deadline is clamped to it, so that members
/// still working fail by name and are recorded as failed; a moment later (for what no deadline reaches,
/// such as a directory member on a hung file system) the process stops with exit 1, naming the clusters
/// still working. Stopping is safe: a push killed at any point leaves the state file and the members
/// consistent, and the next run converges.
enum Watchdog {
    /// What the command's members are doing (the engine's `activity`).
    static let activity = ActivityBoard()
    /// How long after the deadline the process stops if the command has not ended by itself.
    static let grace = 3.0
    private static let lock = NSLock()
    nonisolated(unsafe) private static var due: Double?

    static var deadline: Double? { lock.withLock { due } }

    static func start(timeout: Double) {
        let deadline = Date().timeIntervalSince1970 + timeout
        lock.withLock { due = deadline }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout + grace) {
            let running = activity.stillRunning
            let shown = running.prefix(20).joined(separator: ", ") + (running.count > 20 ? ", and \(running.count - 20) more" : "")
            printError("policyhub: --timeout \(formatted(timeout)) s is over; stopped"
                       + (running.isEmpty ? "" : " with \(running.count) cluster\(running.count == 1 ? "" : "s") still working: \(shown) (not recorded as pushed; rerun to finish them)"))
            DiagnosticSink.shared.finish()
            exit(ExitStatus.failure.rawValue)
        }
    }

    static func formatted(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}

/// Runs engine code; an engine error is printed as the CLI says it (located diagnostics with a count,
/// then `policyhub: message`) and becomes exit 1.
func cli<T>(_ body: () throws(EngineError) -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw failure(error)
    }
}

func cli<T>(_ body: () async throws(EngineError) -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        throw failure(error)
    }
}

/// Prints an engine error and returns exit 1.
func failure(_ error: EngineError) -> ExitCode {
    switch error {
    case .memberFailed:
        break  // each failed cluster was named as it finished, and in the run's summary
    case .gateFailed(let failures, let message):
        for gate in failures { printError("gate \(gate)") }
        printError("policyhub: \(message)")
    default:
        if !error.diagnostics.isEmpty { report(error.diagnostics) }
        printError("policyhub: \(error.message)")
    }
    return ExitStatus.failure
}

/// At most this many findings are printed; the rest are counted.
let printedFindingsLimit = 1_000

/// Prints the first `printedFindingsLimit` lines (to standard error, or to standard output), then how many
/// more there are: a tree with a million problems prints a readable start, not a million lines.
func printCapped(_ lines: [String], toStandardError: Bool = true) {
    for line in lines.prefix(printedFindingsLimit) {
        if toStandardError { printError(line) } else { print(line) }
    }
    if lines.count > printedFindingsLimit {
        let rest = "... and \(lines.count - printedFindingsLimit) more not shown (the first \(printedFindingsLimit) of \(lines.count) are above; fix those and run again)"
        if toStandardError { printError(rest) } else { print(rest) }
    }
}

/// Prints diagnostics (to standard error, or into the run's `--diagnostics` report), and a one-line summary.
func report(_ diagnostics: [Diagnostic], quiet: Bool = false) {
    DiagnosticSink.shared.emit(diagnostics)
    let errors = diagnostics.filter(\.isError).count
    let warnings = diagnostics.count - errors
    if !quiet || errors > 0 {
        printError("\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
    }
}

/// Opens the workspace and stops with exit 1, printing every problem, when it is invalid.
func openValid(_ options: RepositoryOptions) throws -> (Workspace, Renderer) {
    let workspace = Workspace.open(root: options.root, exec: options.exec)
    guard let renderer = workspace.renderer() else {
        report(workspace.diagnostics)
        printError("policyhub: the policy repository is invalid; nothing was rendered")
        throw ExitStatus.failure
    }
    return (workspace, renderer)
}

/// The options that set `MemberLimits`.
struct MemberOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Seconds one cluster may take, retries included; a member that answers slowly or never fails by name after it.",
                                            valueName: "seconds"))
    var clusterTimeout: Double = 120

    @Option(name: .long, help: ArgumentHelp("Seconds a Kubernetes push waits after its last apply before reading back what NeuVector kept (its webhook admits first and deletes what it rejects later); default 2, or POLICYHUB_SETTLE.",
                                            valueName: "seconds"))
    var settle: Double = KubernetesMember.defaultSettle

    @Option(name: .long, help: ArgumentHelp("Requests in flight at once over every Kubernetes member together; raise it for members that answer slowly, such as NeuVector's webhook, which sleeps 1 s per write. At most 16 go to one cluster. Over HTTP/2 (used where the member offers it) one connection per member carries its requests; over HTTP/1.1 each request in flight holds a connection.",
                                            valueName: "count"))
    var connections: Int = TransportSettings().maxInFlight

    @Option(name: .long, help: ArgumentHelp("Seconds the whole command may take: no cluster works past it, and when it is over the command stops (exit 1) naming the clusters still working; none by default.",
                                            valueName: "seconds"))
    var timeout: Double?

    var limits: MemberLimits {
        MemberLimits(clusterTimeout: clusterTimeout, settle: settle, connections: connections, commandDeadline: Watchdog.deadline)
    }

    /// Starts the clock of `--timeout` (call first thing in `run`).
    func startWatchdog() {
        if let timeout { Watchdog.start(timeout: timeout) }
    }

    func validate() throws {
        if let timeout, !(timeout > 0) { throw ValidationError("--timeout must be a positive number of seconds") }
        if !(clusterTimeout > 0) { throw ValidationError("--cluster-timeout must be a positive number of seconds") }
        if !(settle >= 0) || settle > 600 { throw ValidationError("--settle must be 0 to 600 seconds") }
        if !(1...100_000).contains(connections) { throw ValidationError("--connections must be 1 to 100000") }
    }
}

extension DiagnosticFormat: ExpressibleByArgument {}

/// `--diagnostics FORMAT` and `--diagnostics-out FILE` of the commands that report conflicts and problems
/// while they work (render, plan, apply): text and github lines go to standard error as they are found;
/// json, sarif and junit are one document, written to the file when the command ends.
struct DiagnosticOptions: ParsableArguments {
    @Option(name: .customLong("diagnostics"),
            help: ArgumentHelp("How problems and conflicts are reported: text, github (workflow commands that annotate a pull request), or json, sarif, junit (with --diagnostics-out).",
                               valueName: "format"))
    var format: DiagnosticFormat = .text

    @Option(name: .customLong("diagnostics-out"), help: ArgumentHelp("Write the --diagnostics report to this file (standard error carries progress too).", valueName: "file"))
    var file: String?

    func validate() throws {
        if file == nil, format == .json || format == .sarif || format == .junit {
            throw ValidationError("--diagnostics \(format.rawValue) is one document: add --diagnostics-out FILE (standard error carries progress lines too)")
        }
    }

    /// Sends this run's diagnostics where the options say, until `finish`.
    func start(command: String) {
        DiagnosticSink.shared.configure(format: format, file: file, command: command)
    }
}

/// Where this run's diagnostics go: printed at once (text, github) or gathered into one report written at
/// the end (json, sarif, junit).
final class DiagnosticSink: @unchecked Sendable {
    static let shared = DiagnosticSink()

    private let lock = NSLock()
    private var format: DiagnosticFormat = .text
    private var file: String?
    private var command = "policyhub"
    private var gathered: [Diagnostic] = []
    private var printed = 0

    func configure(format: DiagnosticFormat, file: String?, command: String) {
        lock.withLock {
            self.format = format
            self.file = file
            self.command = command
            gathered = []
            printed = 0
        }
    }

    /// Prints or gathers `diagnostics`; at most `printedFindingsLimit` lines are printed in a run.
    func emit(_ diagnostics: [Diagnostic]) {
        let (shownFormat, shown, hidden, total) = lock.withLock { () -> (DiagnosticFormat, [Diagnostic], Int, Int) in
            gathered += diagnostics
            guard file == nil else { return (self.format, [], 0, 0) }
            let room = max(0, printedFindingsLimit - printed)
            printed += min(room, diagnostics.count)
            return (self.format, Array(diagnostics.prefix(room)), diagnostics.count - min(room, diagnostics.count), gathered.count)
        }
        for diagnostic in shown {
            printError(shownFormat == .github ? DiagnosticReport.github(diagnostic) : diagnostic.description)
        }
        if hidden > 0 {
            printError("... and \(hidden) more not shown (the first \(printedFindingsLimit) of \(total) are above; fix those and run again)")
        }
    }

    /// Writes the gathered report to `--diagnostics-out`, when one was asked for.
    func finish(files: [String] = []) {
        let (file, format, gathered, command) = lock.withLock { (self.file, self.format, self.gathered, self.command) }
        guard let file else { return }
        let context = DiagnosticReport.Context(command: command, version: PolicyHubCommand.configuration.version, files: files)
        let text = DiagnosticReport.render(gathered, as: format, context: context)
        do throws(EngineError) {
            try writeAtomically(text, to: file, what: "the diagnostics report")
        } catch {
            printError("policyhub: \(error.message)")
        }
    }
}

/// Writes `text` to `path` whole or not at all (a temporary file renamed over it).
func writeAtomically(_ text: String, to path: String, what: String = "the plan") throws(EngineError) {
    do {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw .failure("cannot write \(what) to \(path): \(error.localizedDescription)")
    }
}

/// ANSI colours for a terminal, or plain text.
struct Palette {
    var enabled: Bool

    /// Colour when standard output is a terminal that is not "dumb", unless `--no-color` or NO_COLOR
    /// (https://no-color.org: set and not empty) says otherwise.
    static func wanted(noColor: Bool) -> Bool {
        let environment = ProcessInfo.processInfo.environment
        if noColor || !(environment["NO_COLOR"] ?? "").isEmpty || environment["TERM"] == "dumb" { return false }
        return isatty(1) == 1
    }

    func green(_ text: String) -> String { paint(text, "32") }
    func yellow(_ text: String) -> String { paint(text, "33") }
    func red(_ text: String) -> String { paint(text, "31") }

    private func paint(_ text: String, _ code: String) -> String {
        enabled ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }
}
