import ArgumentParser

/// `policyhub completion bash|zsh|fish`: the shell completion script for every command and option.
struct CompletionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "completion",
        abstract: "Print a shell completion script for policyhub.",
        discussion: """
            bash: source <(policyhub completion bash), or save it to /etc/bash_completion.d/policyhub.

            zsh: policyhub completion zsh > "${fpath[1]}/_policyhub", then start a new shell.

            fish: policyhub completion fish > ~/.config/fish/completions/policyhub.fish
            """)

    @Argument(help: "bash, zsh or fish.")
    var shell: CompletionShell

    func run() {
        print(PolicyHubCommand.completionScript(for: shell))
    }
}

extension CompletionShell: @retroactive ExpressibleByArgument {}
