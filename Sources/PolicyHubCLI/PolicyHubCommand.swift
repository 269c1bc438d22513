import ArgumentParser

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
