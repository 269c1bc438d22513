import ArgumentParser
import Foundation
import HubEngine
import HubService
import Logging
import PolicyCore

/// `policyhub serve`: the hub daemon (REST API, tokens and roles, scheduled drift reports, reconcile).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the hub daemon: REST API under /v1, scheduled drift reports and continuous reconcile.",
        discussion: """
            Reads hub.yaml (listen address, optional TLS certificate and key, state file, policy repository, \
            tokens file, schedules, webhook; see the README for a complete example). Every /v1 request needs \
            Authorization: Bearer <token>; tokens and roles come from the tokens file (policyhub token create). \
            GET /healthz, /readyz and /metrics (Prometheus text) are open. The daemon watches every member \
            (Kubernetes watches on the NeuVector kinds, a poll of each directory member's folder): a hand-made \
            change is reported at once and put back on environments with selfHeal: true (watch: false in hub.yaml \
            turns that off). SIGTERM or SIGINT stop accepting \
            requests, let running requests and a running push finish, and exit 0. SIGHUP reads the tokens file and \
            hub.yaml again (schedules apply at once; listen, tls, state, repository and the other settings at the \
            next start, which the log names). Exit 1 on a bad configuration.
            """)

    @Option(name: .long, help: ArgumentHelp("The daemon's configuration.", valueName: "path"))
    var config: String = "hub.yaml"

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func run() async throws {
        let hub: HubConfig
        do {
            hub = try HubConfig.load(path: config)
            _ = try TokenFile.load(path: hub.tokensPath)
        } catch {
            printError(error.description)
            throw ExitStatus.failure
        }
        var logger = Logger(label: "policyhub")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let operations = try cli { () throws(EngineError) in
            try HubDaemon.operations(repository: hub.repository, statePath: hub.statePath,
                                     pushConcurrency: hub.pushConcurrency, memberConnections: hub.memberConnections, allowExec: hub.allowExec,
                                     trustedKeys: hub.trustedKeys, followed: hub.followed, logger: logger)
        }
        if let followed = hub.followed {
            // the checkout is made (or brought up to the branch) before the daemon reads it
            do throws(OperationError) {
                if let run = try await operations.followBranch() {
                    printError("policyhub: following \(followed.branch) of \(followed.url) at \(run.head.map { String($0.prefix(12)) } ?? "?"): \(run.steps.filter(\.accepted).count) commit(s) accepted, \(run.rejected.count) rejected")
                }
            } catch {
                printError("policyhub: cannot follow \(followed.branch) of \(followed.url) yet: \(error.message) (retrying every \(Int(hub.pollInterval)) s)")
            }
        }
        // a broken repository does not stop the daemon (SEMANTICS §8): it serves the last valid state and
        // says why in /readyz and here
        switch await operations.readiness() {
        case .ready: break
        case .degraded(let reason): printError("policyhub: serving degraded: \(reason)")
        case .notReady(let problem): printError("policyhub: not ready: \(problem) (serving; /readyz answers 503 until it reads)")
        }
        try await HubServer(config: hub, configPath: config, operations: operations, logger: logger).run()
    }
}

/// `policyhub token`: API tokens.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create, list and revoke the API tokens of policyhub serve.",
        discussion: "A running daemon reads the tokens file again when it changes: no restart is needed.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Print a new token once and append its SHA-256 (never the token) to the tokens file.",
            discussion: """
                Roles: security-admin (everything), namespace-owner (only the documents of --namespace, repeatable; \
                never global documents or promotions), promoter (promotions and rollbacks), viewer (read only). \
                The token is printed on standard output and nowhere else; keep it in a secret store. \
                Example: policyhub token create --name payments-ci --role namespace-owner --namespace payments
                """)

        @Option(name: .long, help: ArgumentHelp("The tokens file (created with mode 0600 when missing).", valueName: "path"))
        var file: String = "hub-tokens.yaml"

        @Option(name: .long, help: ArgumentHelp("Who the token is for; recorded as the author of its changes.", valueName: "name"))
        var name: String

        @Option(name: .long, help: "security-admin, namespace-owner, promoter or viewer.")
        var role: String

        @Option(name: .long, help: ArgumentHelp("A namespace a namespace-owner may change (repeatable).", valueName: "ns"))
        var namespace: [String] = []

        @Option(name: .long, help: ArgumentHelp("How long the token works: 90d, 12h, 30m or 2w; none given: until revoked.",
                                                valueName: "duration"))
        var expires: String?

        func validate() throws {
            guard let role = Role(rawValue: role) else {
                throw ValidationError("--role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if role == .namespaceOwner && namespace.isEmpty { throw ValidationError("a namespace-owner token needs --namespace") }
            if role != .namespaceOwner && !namespace.isEmpty { throw ValidationError("--namespace is only for namespace-owner tokens") }
            if let expires, TokenCommand.seconds(expires) == nil {
                throw ValidationError("--expires '\(expires)' is not a duration such as 90d, 12h, 30m or 2w")
            }
        }

        func run() async throws {
            let (token, digest) = TokenFile.newToken()
            let created = Date().timeIntervalSince1970
            let until = expires.flatMap(TokenCommand.seconds).map { created + $0 }
            do {
                try TokenFile.append(path: file, name: name, role: Role(rawValue: role) ?? .viewer, namespaces: namespace, sha256: digest,
                                     created: created, expires: until)
            } catch {
                printError(error.description)
                throw ExitStatus.failure
            }
            print(token)
            let expiry = until.map { ", expires \(TokenFile.timeText($0))" } ?? ""
            printError("appended '\(name)' (\(role)\(expiry)) to \(file); the token above is not stored anywhere")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the tokens: name, role, namespaces, created, expiry (never a hash or a token).")

        @Option(name: .long, help: ArgumentHelp("The tokens file.", valueName: "path"))
        var file: String = "hub-tokens.yaml"

        @Option(name: .long, help: "text or json.")
        var output: OutputFormat = .text

        func run() throws {
            let tokens: TokenFile
            do {
                tokens = try TokenFile.load(path: file)
            } catch {
                printError(error.description)
                throw ExitStatus.failure
            }
            let at = Date().timeIntervalSince1970
            var rows: [Value] = []
            var lines: [String] = []
            for entry in tokens.entries {
                let state = entry.expires.map { $0 <= at ? "expired" : "active" } ?? "active"
                var row = ValueMapBuilder()
                row.set("name", .string(entry.principal.name))
                row.set("role", .string(entry.principal.role.rawValue))
                row.set("namespaces", .list(entry.principal.namespaces.map(Value.string)))
                row.set("created", entry.created.map { .string(TokenFile.timeText($0)) } ?? .null)
                row.set("expires", entry.expires.map { .string(TokenFile.timeText($0)) } ?? .null)
                row.set("state", .string(state))
                rows.append(row.value)
                let namespaces = entry.principal.namespaces.isEmpty ? "" : " [\(entry.principal.namespaces.joined(separator: ", "))]"
                let created = entry.created.map { "created \(TokenFile.timeText($0))" } ?? "created unknown"
                let expiry = entry.expires.map { ", \(state == "expired" ? "expired" : "expires") \(TokenFile.timeText($0))" } ?? ", no expiry"
                lines.append("\(entry.principal.name)  \(entry.principal.role.rawValue)\(namespaces)  \(created)\(expiry)")
            }
            switch output {
            case .json: print(JSONWriter.pretty(.list(rows)), terminator: "")
            case .text: for line in lines { print(line) }
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Remove a token from the tokens file; a running daemon refuses it from its next request.")

        @Option(name: .long, help: ArgumentHelp("The tokens file.", valueName: "path"))
        var file: String = "hub-tokens.yaml"

        @Argument(help: "The name of the token to revoke.")
        var name: String

        func run() throws {
            do {
                try TokenFile.revoke(path: file, name: name)
            } catch {
                printError(error.description)
                throw ExitStatus.failure
            }
            printError("revoked '\(name)' in \(file)")
        }
    }

    /// `90d`, `12h`, `30m`, `2w` as seconds.
    static func seconds(_ text: String) -> Double? {
        guard let unit = text.last, let count = Double(text.dropLast()), count > 0 else { return nil }
        switch unit {
        case "m": return count * 60
        case "h": return count * 3600
        case "d": return count * 86400
        case "w": return count * 7 * 86400
        default: return nil
        }
    }
}
