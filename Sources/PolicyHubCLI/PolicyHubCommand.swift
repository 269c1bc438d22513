import ArgumentParser
import PolicyCore

/// The `policyhub` command.
@available(macOS 10.15, *)
public struct PolicyHubCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "policyhub",
        abstract: "NeuVector security policy as code across a fleet of Kubernetes clusters.",
        discussion: """
            Works on a policy repository: policies/global/ (NvClusterSecurityRule documents of the security \
            team), policies/namespaces/<ns>/ (NvSecurityRule documents of each namespace's team) and clusters/ \
            (member clusters and environments). Run it in that repository or pass --repo PATH.

            Precedence: enforced global rules > namespace rules > baseline global rules.

            Exit codes: 0 success, 1 invalid input or failure, 64 bad command line.
            """,
        version: "0.1.0",
        subcommands: [ValidateCommand.self, RenderCommand.self, ExplainCommand.self, ApplyCommand.self, PlanCommand.self,
                      HistoryCommand.self, StatusCommand.self, PromoteCommand.self, RollbackCommand.self,
                      DriftCommand.self, DiffCommand.self, ServeCommand.self, TokenCommand.self, CompletionCommand.self])

    public init() {}
}

extension PolicyHubCommand {
    /// The message for a subcommand name that is not one (`policyhub aply`, `policyhub token craete`), with
    /// the nearest known ones; nil when the command line names only known subcommands. The argument parser
    /// would say "Unexpected argument" without a hint.
    public static func unknownSubcommand(_ arguments: [String]) -> String? {
        var command: any ParsableCommand.Type = PolicyHubCommand.self
        var path = ["policyhub"]
        for argument in arguments {
            let children = command.configuration.subcommands
            guard !argument.hasPrefix("-"), !children.isEmpty else { return nil }
            let names = children.map { $0.configuration.commandName ?? "" } + ["help"]
            if argument == "help" { return nil }
            guard let child = children.first(where: { $0.configuration.commandName == argument }) else {
                let near = EditDistance.nearest(argument, among: names, limit: 3)
                    ?? names.first { $0.hasPrefix(argument) || argument.hasPrefix($0) }
                return "\(path.joined(separator: " ")): unknown command '\(argument)'\(near.map { "; did you mean '\($0)'?" } ?? "") (commands: \(names.joined(separator: ", ")); see '\(path.joined(separator: " ")) --help')"
            }
            command = child
            path.append(argument)
        }
        return nil
    }
}
