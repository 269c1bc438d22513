import ArgumentParser
import Foundation
import HubService
import Logging

/// `policyhub serve`: the hub daemon (REST API, tokens and roles, scheduled drift reports, reconcile).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the hub daemon: REST API under /v1, scheduled drift reports and continuous reconcile.",
        discussion: """
            Reads hub.yaml (listen address, optional TLS certificate and key, state file, policy repository, \
            tokens file, schedules, webhook; see the README for a complete example). Every /v1 request needs \
            Authorization: Bearer <token>; tokens and roles come from the tokens file (policyhub token create). \
            GET /healthz, /readyz and /metrics (Prometheus text) are open. SIGTERM or SIGINT stop accepting \
            requests, let running requests and a running push finish, and exit 0. Exit 1 on a bad configuration.
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
        let operations = LiveHubOperations(root: hub.repository, statePath: hub.statePath, pushConcurrency: hub.pushConcurrency)
        // the repository must be valid to start; later problems are answered per request
        if let problem = await operations.readiness() {
            printError("policyhub: cannot serve: \(problem)")
            throw ExitStatus.failure
        }
        try await HubServer(config: hub, operations: operations, logger: logger).run()
    }
}

/// `policyhub token`: API tokens.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create API tokens for policyhub serve.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Print a new token once and append its SHA-256 (never the token) to the tokens file.",
            discussion: """
                Roles: security-admin (everything), namespace-owner (only the documents of --namespace, repeatable; \
                never global documents or promotions), promoter (promotions and rollbacks), viewer (read only). \
                The token is printed on standard output and nowhere else; keep it in a secret store.
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

        func validate() throws {
            guard let role = Role(rawValue: role) else {
                throw ValidationError("--role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if role == .namespaceOwner && namespace.isEmpty { throw ValidationError("a namespace-owner token needs --namespace") }
            if role != .namespaceOwner && !namespace.isEmpty { throw ValidationError("--namespace is only for namespace-owner tokens") }
        }

        func run() async throws {
            let (token, digest) = TokenFile.newToken()
            do {
                try TokenFile.append(path: file, name: name, role: Role(rawValue: role) ?? .viewer, namespaces: namespace, sha256: digest)
            } catch {
                printError(error.description)
                throw ExitStatus.failure
            }
            print(token)
            printError("appended '\(name)' (\(role)) to \(file); the token above is not stored anywhere")
        }
    }
}

/// The daemon's live operations, for `policyhub serve` and the tests that start the daemon in-process.
public enum HubDaemon {
    /// The CLI's commands and session on `repository` and `statePath`, as `HubOperations`.
    public static func operations(repository: String, statePath: String, pushConcurrency: Int = 16) -> any HubOperations {
        LiveHubOperations(root: repository, statePath: statePath, pushConcurrency: pushConcurrency)
    }
}
