import HubStore
import PolicyCore

/// Why an engine operation did not happen. Each case is a value the shells map on their own: the CLI to
/// a message and exit 1, the API to one HTTP status. Messages are sentences for a person, without a
/// `policyhub:` prefix and never an internal type name.
public enum EngineError: Error, Sendable, CustomStringConvertible {
    /// No such cluster, environment, revision or document (404).
    case notFound(String)
    /// Well formed but invalid: policy that does not validate, an empty selection (422). The diagnostics
    /// are the located problems, printed before the message.
    case invalid(String, diagnostics: [Diagnostic] = [])
    /// Another change landed first (409); `current` is the environment's desired revision now.
    case conflict(String, current: Int64?)
    /// Promotion gates failed and `force` was not given (412).
    case gateFailed([GateFailure], message: String)
    /// One or more members failed; every other cluster was still pushed (the CLI exits 1).
    case memberFailed([String])
    /// The hub cannot answer now (the repository never read valid since a daemon started) (503).
    case unavailable(String, diagnostics: [Diagnostic] = [])
    /// The store, the repository or the machine failed (500).
    case failure(String)

    public var message: String {
        switch self {
        case .notFound(let message), .invalid(let message, _), .conflict(let message, _), .gateFailed(_, let message),
             .unavailable(let message, _), .failure(let message):
            return message
        case .memberFailed(let failures):
            return "\(failures.count) cluster\(failures.count == 1 ? "" : "s") failed: " + failures.joined(separator: "; ")
        }
    }

    public var description: String { message }

    /// The located problems, when the error has any.
    public var diagnostics: [Diagnostic] {
        switch self {
        case .invalid(_, let diagnostics), .unavailable(_, let diagnostics): return diagnostics
        default: return []
        }
    }

    /// A store error in the engine's terms: a lost compare-and-swap is a conflict, the rest a failure.
    public init(_ error: HubStoreError) {
        switch error {
        case .conflict(_, _, let current): self = .conflict(error.description, current: current)
        case .unknownRevision: self = .notFound(error.description)
        default: self = .failure(error.description)
        }
    }
}

/// Runs a store call, its error in the engine's terms.
@inline(__always)
public func stored<T>(_ body: () throws(HubStoreError) -> T) throws(EngineError) -> T {
    do {
        return try body()
    } catch {
        throw EngineError(error)
    }
}

/// A promotion gate of the target environment that failed, and why.
public struct GateFailure: Sendable, Hashable, CustomStringConvertible {
    public enum Gate: String, Sendable, Hashable {
        case requireInSync, requireNoDrift, minimumSoak, requireSignedCommits, freeze
    }

    public var gate: Gate
    /// Why, in words (without the gate's name).
    public var reason: String

    public init(_ gate: Gate, _ reason: String) {
        self.gate = gate
        self.reason = reason
    }

    /// `gate: reason`, as the CLI prints it after `gate `.
    public var description: String { "\(gate.rawValue): \(reason)" }
}

/// What an engine operation says while it works: warnings, decisions and per-cluster progress. The CLI
/// prints each line to standard error (progress rewritten in place on a terminal); the daemon logs it.
/// Results are returned as values, never read back from these lines.
public enum EngineEvent: Sendable {
    /// A located problem that does not stop the operation (a warning of the working tree).
    case diagnostic(Diagnostic)
    /// A line for the operator, as printed (`recorded revision 3 of dev (...)`, `policyhub: warning: ...`).
    case note(String)
    /// One cluster of a run finished: `done` of `total`, and what happened there.
    case progress(done: Int, total: Int, line: String)
    /// The run's per-cluster progress ended.
    case progressEnd
    /// Clusters quiet for a while, each with what it waits for (`ActivityBoard.due`): for a terminal, where
    /// a run must never go quiet for long.
    case waiting([String])
}

/// Where an operation's events go.
public struct EngineLog: Sendable {
    public let send: @Sendable (EngineEvent) -> Void

    public init(_ send: @escaping @Sendable (EngineEvent) -> Void) { self.send = send }

    /// Drops every event.
    public static let silent = EngineLog { _ in }

    public func note(_ line: String) { send(.note(line)) }
}
