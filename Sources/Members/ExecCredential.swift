import Foundation
import PolicyCore

/// An exec credential plugin, as a kubeconfig user names it (`client.authentication.k8s.io/v1` and
/// `v1beta1`, as client-go runs them): the command is run, and its ExecCredential on stdout gives a
/// bearer token or a client certificate and key.
public struct ExecPlugin: Sendable, Hashable {
    public enum InteractiveMode: String, Sendable, Hashable {
        case never = "Never", ifAvailable = "IfAvailable", always = "Always"
    }

    public static let apiVersions = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]

    /// The kubeconfig user that names the plugin.
    public var user: String
    public var apiVersion: String
    /// The command as written.
    public var command: String
    /// The command's absolute path with every symbolic link resolved (nil: not found), which the
    /// operator's allow-list is matched against.
    public var resolvedPath: String?
    public var args: [String]
    /// Added to the hub's environment for the plugin, in order.
    public var env: [Variable]
    public var installHint: String?
    public var provideClusterInfo: Bool
    public var interactiveMode: InteractiveMode
    /// `spec.cluster` of `KUBERNETES_EXEC_INFO` (given to the plugin only with `provideClusterInfo`).
    public var clusterInfo: Value

    public struct Variable: Sendable, Hashable {
        public var name: String
        public var value: String
    }

    /// `command` resolved as client-go does: a path with a slash relative to the kubeconfig's folder, a
    /// bare name on the hub's own `PATH` (never the plugin's `env`, which the kubeconfig sets); then
    /// every symbolic link resolved.
    public static func resolve(_ command: String, kubeconfigFolder: String) -> String? {
        if command.contains("/") {
            let path = command.hasPrefix("/") ? command : (kubeconfigFolder as NSString).appendingPathComponent(command)
            return FileManager.default.isExecutableFile(atPath: path) ? realPath(path) : nil
        }
        let search = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in search.split(separator: ":") where !folder.isEmpty {
            let path = (String(folder) as NSString).appendingPathComponent(command)
            if FileManager.default.isExecutableFile(atPath: path) { return realPath(path) }
        }
        return nil
    }

    public static func realPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// What the operator allows (never the repository): which plugin commands may run, whether a person at
/// a terminal may answer one, how long one may take, the clock expiry is read on, and where a plugin's
/// stderr goes.
public struct ExecSettings: Sendable {
    /// Commands allowed to run (`--allow-exec`, `allowExec:` in hub.yaml): absolute paths or names on the
    /// hub's `PATH`, matched on the resolved absolute path.
    public var allowed: [String]
    /// True in the CLI with a terminal on stdin: `IfAvailable` and `Always` plugins may talk to the user.
    /// The daemon runs every plugin as `Never`.
    public var interactive: Bool
    /// Seconds a plugin may take before it is killed.
    public var timeout: Double
    public var now: @Sendable () -> Double
    /// A line of a plugin's stderr (credentials removed), for the hub's log.
    public var log: @Sendable (String) -> Void

    public init(allowed: [String] = [], interactive: Bool = false, timeout: Double = 60,
                now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 },
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.allowed = allowed
        self.interactive = interactive
        self.timeout = timeout
        self.now = now
        self.log = log
    }

    /// The allow-list's resolved absolute paths.
    public var allowedPaths: Set<String> {
        Set(allowed.compactMap { ExecPlugin.resolve($0, kubeconfigFolder: "/") })
    }

    /// Why `plugin` may not run, or nil when it may.
    public func refusal(_ plugin: ExecPlugin) -> String? {
        guard let path = plugin.resolvedPath else {
            return "exec plugin '\(plugin.command)' of user '\(plugin.user)' was not found\(plugin.installHint.map { ": \($0.trimmingCharacters(in: .whitespacesAndNewlines))" } ?? "")"
        }
        if !allowedPaths.contains(path) {
            return "user '\(plugin.user)' runs the exec plugin '\(plugin.command)' (\(path)), which the operator has not allowed; a kubeconfig is data and never makes the hub run a program: allow it with --allow-exec \(path) (or allowExec: in hub.yaml)"
        }
        if plugin.interactiveMode == .always && !interactive {
            return "the exec plugin '\(plugin.command)' of user '\(plugin.user)' needs a terminal (interactiveMode: Always) and there is none here (the daemon runs every plugin as Never); use a non-interactive login for this user"
        }
        return nil
    }
}

/// Credentials a plugin gave, and until when.
public struct ExecCredential: Sendable, Hashable {
    public var token: String?
    public var clientCertificatePEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?
    /// Seconds since 1970; nil: valid for the whole process.
    public var expires: Double?
}

/// Runs plugins and keeps what they gave per (plugin configuration, cluster) until it expires; one run
/// at a time per key, so that a plugin that asks a person something asks once.
public actor ExecCredentialCache {
    public static let shared = ExecCredentialCache()

    struct Key: Hashable {
        var plugin: ExecPlugin
        var server: String
    }

    private var cached: [Key: ExecCredential] = [:]
    private var running: [Key: Task<Result<ExecCredential, MemberError>, Never>] = [:]
    /// Plugin runs so far (tests).
    public private(set) var runs = 0

    public init() {}

    /// The credential for `plugin` on `server`: cached while it has not expired; with `rejected` (the
    /// server answered 401 to it), run again unless another request already got a different one.
    public func credential(for plugin: ExecPlugin, server: String, cluster: String, settings: ExecSettings,
                           rejected: ExecCredential? = nil) async throws(MemberError) -> ExecCredential {
        let key = Key(plugin: plugin, server: server)
        if let known = cached[key] {
            let fresh = known.expires.map { settings.now() < $0 } ?? true
            if fresh && (rejected == nil || rejected != known) { return known }
        }
        let task: Task<Result<ExecCredential, MemberError>, Never>
        if let inFlight = running[key] {
            task = inFlight
        } else {
            runs += 1
            task = Task.detached { ExecRunner.run(plugin, cluster: cluster, settings: settings) }
            running[key] = task
        }
        let result = await task.value
        running[key] = nil
        switch result {
        case .success(let credential):
            cached[key] = credential
            return credential
        case .failure(let error):
            cached[key] = nil
            throw error
        }
    }
}

/// One run of a plugin: the process, its environment and stdin, the timeout, and its answer read.
enum ExecRunner {
    static func run(_ plugin: ExecPlugin, cluster: String, settings: ExecSettings) -> Result<ExecCredential, MemberError> {
        func fail(_ message: String) -> Result<ExecCredential, MemberError> { .failure(MemberError(cluster: cluster, message: message)) }
        if let refusal = settings.refusal(plugin) { return fail(refusal) }
        guard let path = plugin.resolvedPath else { return fail("exec plugin '\(plugin.command)' was not found") }
        let interactive = settings.interactive && plugin.interactiveMode != .never
        var spec = ValueMapBuilder()
        spec.set("interactive", .bool(interactive))
        if plugin.provideClusterInfo { spec.set("cluster", plugin.clusterInfo) }
        let info = Value.map([Value.MapEntry("apiVersion", .string(plugin.apiVersion)), Value.MapEntry("kind", .string("ExecCredential")),
                              Value.MapEntry("spec", spec.value)])
        var environment = ProcessInfo.processInfo.environment
        for variable in plugin.env { environment[variable.name] = variable.value }
        environment["KUBERNETES_EXEC_INFO"] = JSONWriter.compact(info)

        let outcome: ChildProcess.Outcome
        do {
            outcome = try ChildProcess.run(path, plugin.args, environment: environment,
                                           input: interactive ? FileHandle.standardInput : nil, timeout: settings.timeout)
        } catch {
            return fail("exec plugin '\(plugin.command)' (\(path)) could not be started: \(error.localizedDescription)")
        }
        if outcome.timedOut {
            return fail("exec plugin '\(plugin.command)' of user '\(plugin.user)' did not answer within \(Int(settings.timeout)) s and was killed")
        }
        let (stdout, stderr) = (outcome.output, outcome.errors)
        let answer = parse(stdout, plugin: plugin)
        // the plugin's stderr reaches the log, without any credential it gave
        var secrets: [String] = []
        if case .success(let credential) = answer {
            secrets = [credential.token, credential.clientKeyPEM.map { String(decoding: $0, as: UTF8.self) },
                       credential.clientCertificatePEM.map { String(decoding: $0, as: UTF8.self) }].compactMap { $0 }.filter { !$0.isEmpty }
        }
        for line in String(decoding: stderr, as: UTF8.self).split(separator: "\n").prefix(50) {
            var text = String(line)
            for secret in secrets { text = text.replacingOccurrences(of: secret, with: "[redacted]") }
            settings.log("cluster \(cluster): exec plugin '\(plugin.command)': \(text)")
        }
        if outcome.status != 0 {
            let last = outcome.lastErrorLine
            return fail("exec plugin '\(plugin.command)' of user '\(plugin.user)' failed (exit \(outcome.status))\(last.isEmpty ? "" : ": \(last)")")
        }
        switch answer {
        case .success(let credential): return .success(credential)
        case .failure(let problem): return fail("exec plugin '\(plugin.command)' of user '\(plugin.user)': \(problem.message)")
        }
    }

    /// The ExecCredential on stdout: the plugin's apiVersion, `status.token` or both certificate fields.
    static func parse(_ stdout: Data, plugin: ExecPlugin) -> Result<ExecCredential, ParseProblem> {
        guard let value = try? JSONReader.parse(Array(stdout)) else { return .failure(ParseProblem("its output is not an ExecCredential (not JSON)")) }
        guard value["kind"]?.stringValue == "ExecCredential" else { return .failure(ParseProblem("its output is not kind ExecCredential")) }
        guard value["apiVersion"]?.stringValue == plugin.apiVersion else {
            return .failure(ParseProblem("it answered apiVersion \(value["apiVersion"]?.stringValue ?? "none"), not \(plugin.apiVersion)"))
        }
        guard let status = value["status"] else { return .failure(ParseProblem("its ExecCredential has no status")) }
        var credential = ExecCredential()
        credential.token = status["token"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        let certificate = status["clientCertificateData"]?.stringValue, key = status["clientKeyData"]?.stringValue
        if (certificate == nil) != (key == nil) {
            return .failure(ParseProblem("its status has only one of clientCertificateData and clientKeyData"))
        }
        credential.clientCertificatePEM = certificate.map { Array($0.utf8) }
        credential.clientKeyPEM = key.map { Array($0.utf8) }
        if credential.token == nil && certificate == nil {
            return .failure(ParseProblem("its status has neither a token nor a client certificate and key"))
        }
        if let text = status["expirationTimestamp"]?.stringValue {
            guard let time = rfc3339(text) else { return .failure(ParseProblem("expirationTimestamp '\(text)' is not an RFC 3339 time")) }
            credential.expires = time
        }
        return .success(credential)
    }

    static func rfc3339(_ text: String) -> Double? {
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date.timeIntervalSince1970 }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)?.timeIntervalSince1970
    }

    struct ParseProblem: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }
}
