import PolicyHubCLI

/// The executable's entry point: only starts the command line (see `PolicyHubCommand`).
@main
enum PolicyHubMain {
    static func main() async {
        await PolicyHubCommand.main()
    }
}
