import Foundation
import HubStorePostgres
import HubEngine
import PolicyCore
import PolicyYAML

/// `hub.yaml`: where the daemon listens, its TLS material, state file, repository, tokens file, schedules
/// and webhook. Relative paths are relative to the directory of `hub.yaml`.
public struct HubConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var tlsCertificate: String?
    public var tlsKey: String?
    public var statePath: String
    public var repository: String
    public var tokensPath: String
    public var maxBodyBytes = 1 << 20
    /// Seconds a connection may stay idle, or take to send a request's head, before it is closed.
    public var idleTimeout: Double = 30
    /// Connections held open at once; one more is closed as soon as it is accepted.
    public var maxConnections = 1024

    /// Clusters pushed at once by the reconcile.
    public var pushConcurrency = 16
    /// Requests in flight at once over every member of a push (libcurl transfers; 64 when absent). A push
    /// to NeuVector, which holds every write for a second, sends at most this many writes a second.
    public var memberConnections: Int?
    /// How much lower API requests run than pushes and jobs (a nice value, 0-19; 0 turns it off).
    public var apiNice: Int32 = 10
    public var driftSchedule: CronExpression?
    public var reconcileInterval: Double?
    /// How often the daemon reads every member for hand-made changes (tamper detection and `selfHeal`).
    public var selfHealInterval: Double?
    /// Whether the daemon watches every member for hand-made changes (`watch: false` turns it off; the
    /// `selfHealInterval` poll, when set, still runs).
    public var watch = true
    /// Exec credential plugins kubeconfig users may run (paths, or names on the daemon's PATH).
    public var allowExec: [String] = []
    /// Files of keys trusted to sign policy commits (OpenPGP public keys, SSH allowed signers), resolved
    /// against hub.yaml's folder; never files of the policy repository.
    public var trustedKeys: [String] = []
    /// The branch the daemon follows (`repository: {url, branch, ...}`); `repository` is then its checkout.
    public var followed: FollowedBranch?
    /// Seconds between fetches of the followed branch.
    public var pollInterval: Double = 60
    /// The environment variable holding the push-event secret of `POST /v1/hooks/git` (never in hub.yaml).
    public var gitWebhookSecretVariable: String?
    public var webhookURL: String?
    public var webhookCAFile: String?
    /// The environment variable holding the webhook's bearer token (the token is never in hub.yaml).
    public var webhookTokenVariable: String?

    public init(statePath: String, repository: String, tokensPath: String) {
        self.statePath = statePath
        self.repository = repository
        self.tokensPath = tokensPath
    }

    static let knownKeys: Set<String> = ["listen", "tls", "state", "repository", "tokens", "maxBodyBytes", "idleTimeout", "maxConnections", "pushConcurrency", "memberConnections", "apiNice", "schedules", "webhook", "allowExec", "watch", "trustedKeys"]

    /// Reads `hub.yaml`; throws `ConfigError` at the line and column of the first problem.
    public static func load(path: String) throws(ConfigError) -> HubConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(path: path, line: 0, column: 0, message: "cannot read the configuration file")
        }
        let root: YAMLNode
        switch YAMLParser.parseDocuments([UInt8](data), file: path) {
        case .success(let nodes):
            guard let first = nodes.first, case .mapping = first.content else {
                throw ConfigError(path: path, line: 1, column: 1, message: "hub.yaml must be a mapping")
            }
            root = first
        case .failure(let diagnostic): throw ConfigError(diagnostic)
        }
        func fail(_ node: YAMLNode, _ message: String) -> ConfigError {
            ConfigError(path: path, line: Int(node.line), column: Int(node.column), message: message)
        }
        for pair in root.pairs where !knownKeys.contains(pair.key.scalarText ?? "") {
            throw fail(pair.key, "unknown key '\(pair.key.scalarText ?? "")' (known: \(knownKeys.sorted().joined(separator: ", ")))")
        }
        let base = (path as NSString).deletingLastPathComponent
        func resolved(_ node: YAMLNode?, _ key: String, default fallback: String? = nil) throws(ConfigError) -> String? {
            guard let node else { return fallback.map { resolve($0, base: base) } }
            guard let text = node.scalar, !text.isEmpty else { throw fail(node, "\(key) must be a path") }
            return resolve(text, base: base)
        }
        var followed: FollowedBranch?
        var repositoryPath = ".", pollInterval = 60.0, secretVariable: String?
        if let repository = root["repository"], case .mapping = repository.content {
            // a branch to follow: the daemon's own checkout of it is the repository it reads
            let known: Set<String> = ["url", "branch", "pollInterval", "webhookSecretFromEnv", "checkout"]
            for pair in repository.pairs where !known.contains(pair.key.scalarText ?? "") {
                throw fail(pair.key, "unknown key 'repository.\(pair.key.scalarText ?? "")' (known: \(known.sorted().joined(separator: ", ")))")
            }
            guard let url = repository["url"]?.scalar, !url.isEmpty else { throw fail(repository, "repository.url: the remote to follow is required") }
            let branch = repository["branch"]?.scalar ?? "main"
            // a local path is relative to hub.yaml's folder, as every path here
            let remote = url.contains(":") || url.hasPrefix("/") ? url : resolve(url, base: base)
            if let problem = FollowedBranch.problem(url: remote, branch: branch) { throw fail(repository["url"] ?? repository, problem) }
            if let interval = repository["pollInterval"] {
                guard let seconds = interval.scalar.flatMap(HubConfig.seconds), seconds >= 1 else {
                    throw fail(interval, "repository.pollInterval must be a duration such as 30s, 5m or 300")
                }
                pollInterval = seconds
            }
            if let variable = repository["webhookSecretFromEnv"] {
                guard let name = variable.scalar, !name.isEmpty else { throw fail(variable, "repository.webhookSecretFromEnv must name an environment variable") }
                secretVariable = name
            }
            repositoryPath = try resolved(repository["checkout"], "repository.checkout", default: ".policyhub/checkout") ?? ""
            followed = FollowedBranch(url: remote, branch: branch, checkout: repositoryPath)
        } else {
            repositoryPath = try resolved(root["repository"], "repository", default: ".") ?? ""
        }
        // a postgres:// URL stays as written; a SQLite file is relative to hub.yaml's folder
        var statePath = root["state"]?.scalar ?? ""
        if !PostgresLocation.isURL(statePath) {
            statePath = try resolved(root["state"], "state", default: ".policyhub/state.sqlite") ?? ""
        }
        var config = HubConfig(
            statePath: statePath,
            repository: repositoryPath,
            tokensPath: "")
        config.followed = followed
        config.pollInterval = pollInterval
        config.gitWebhookSecretVariable = secretVariable
        guard let tokens = try resolved(root["tokens"], "tokens") else {
            throw fail(root, "tokens: the tokens file is required (create one with policyhub token create)")
        }
        config.tokensPath = tokens
        if let listen = root["listen"] {
            guard let text = listen.scalar, let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                  (0...65535).contains(port) else {
                throw fail(listen, "listen must be HOST:PORT, such as 127.0.0.1:8080")
            }
            config.host = String(text[..<colon])
            config.port = port
        }
        if let tls = root["tls"] {
            config.tlsCertificate = try resolved(tls["certificate"], "tls.certificate")
            config.tlsKey = try resolved(tls["key"], "tls.key")
            guard config.tlsCertificate != nil, config.tlsKey != nil else { throw fail(tls, "tls needs certificate and key") }
        }
        if let idle = root["idleTimeout"] {
            guard let seconds = idle.scalar.flatMap(HubConfig.seconds), seconds >= 1 else {
                throw fail(idle, "idleTimeout must be a duration such as 30, 30s or 2m")
            }
            config.idleTimeout = seconds
        }
        if let allow = root["allowExec"] {
            guard case .sequence(let items) = allow.content, items.allSatisfy({ $0.scalarText?.isEmpty == false }) else {
                throw fail(allow, "allowExec must be a list of commands (absolute paths, or names on the daemon's PATH)")
            }
            config.allowExec = items.compactMap(\.scalarText)
        }
        if let keys = root["trustedKeys"] {
            guard case .sequence(let items) = keys.content, items.allSatisfy({ $0.scalarText?.isEmpty == false }) else {
                throw fail(keys, "trustedKeys must be a list of files (OpenPGP public keys or SSH allowed-signers files)")
            }
            config.trustedKeys = items.compactMap(\.scalarText).map { resolve($0, base: base) }
        }
        if let connections = root["maxConnections"] {
            guard let text = connections.scalar, let count = Int(text), count >= 1 else {
                throw fail(connections, "maxConnections must be at least 1")
            }
            config.maxConnections = count
        }
        if let limit = root["maxBodyBytes"] {
            guard let text = limit.scalar, let bytes = Int(text), bytes > 0 else { throw fail(limit, "maxBodyBytes must be a positive number") }
            config.maxBodyBytes = bytes
        }
        if let connections = root["memberConnections"] {
            guard let text = connections.scalar, let count = Int(text), (1...100_000).contains(count) else {
                throw fail(connections, "memberConnections must be 1 to 100000")
            }
            config.memberConnections = count
        }
        if let concurrency = root["pushConcurrency"] {
            guard let text = concurrency.scalar, let count = Int(text), count >= 1 else { throw fail(concurrency, "pushConcurrency must be at least 1") }
            config.pushConcurrency = count
        }
        if let nice = root["apiNice"] {
            guard let text = nice.scalar, let value = Int32(text), (0...19).contains(value) else { throw fail(nice, "apiNice must be 0 to 19") }
            config.apiNice = value
        }
        if let watch = root["watch"] {
            switch watch.scalar {
            case "true": config.watch = true
            case "false": config.watch = false
            default: throw fail(watch, "watch must be true or false")
            }
        }
        if let schedules = root["schedules"] {
            for pair in schedules.pairs where !["driftReport", "reconcileInterval", "selfHealInterval"].contains(pair.key.scalarText ?? "") {
                throw fail(pair.key, "unknown schedule '\(pair.key.scalarText ?? "")' (known: driftReport, reconcileInterval, selfHealInterval)")
            }
            if let interval = schedules["selfHealInterval"] {
                guard let seconds = interval.scalar.flatMap(HubConfig.seconds), seconds >= 1 else {
                    throw fail(interval, "selfHealInterval must be a duration such as 5, 5s or 1m")
                }
                config.selfHealInterval = seconds
            }
            if let cron = schedules["driftReport"] {
                do throws(CronError) {
                    config.driftSchedule = try CronExpression(cron.scalar ?? "")
                } catch {
                    throw fail(cron, "driftReport: \(error.message)")
                }
            }
            if let interval = schedules["reconcileInterval"] {
                guard let seconds = interval.scalar.flatMap(HubConfig.seconds), seconds >= 1 else {
                    throw fail(interval, "reconcileInterval must be a duration such as 300, 90s, 5m or 1h")
                }
                config.reconcileInterval = seconds
            }
        }
        if let webhook = root["webhook"] {
            guard let url = webhook["url"]?.scalar, url.hasPrefix("https://") || url.hasPrefix("http://") else {
                throw fail(webhook, "webhook.url must be an http(s) URL")
            }
            config.webhookURL = url
            config.webhookCAFile = try resolved(webhook["caFile"], "webhook.caFile")
            config.webhookTokenVariable = webhook["tokenFromEnv"]?.scalar
        }
        return config
    }

    static func resolve(_ path: String, base: String) -> String {
        if path.hasPrefix("/") { return path }
        return ((base.isEmpty ? "." : base) as NSString).appendingPathComponent(path)
    }

    /// `300`, `90s`, `5m`, `1h` in seconds.
    static func seconds(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        if let last = text.last, let unit = units[last] { return Double(text.dropLast()).map { $0 * unit } }
        return Double(text)
    }
}
