import Foundation
import PolicyHubCLI

/// The executable's entry point: only starts the command line (see `PolicyHubCommand`).
@main
enum PolicyHubMain {
    static func main() async {
        if let unknown = PolicyHubCommand.unknownSubcommand(Array(CommandLine.arguments.dropFirst())) {
            FileHandle.standardError.write(Data((unknown + "\n").utf8))
            exit(64)
        }
        await PolicyHubCommand.main()
    }
}
