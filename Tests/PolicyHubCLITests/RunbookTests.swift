import Foundation
import Testing

/// Every `$ policyhub ...` line of every runbook runs, in order, against a copy of the example fleet and
/// must end with the exit status the runbook writes after it (`# exit N`, else 0).
@Suite struct RunbookTests {
    typealias CLI = CommandLineTests

    struct Step {
        var arguments: [String]
        var exit: Int32
        var line: Int
    }

    /// A command line's words as a shell splits them: on spaces, a "double-quoted" part kept whole.
    static func words(_ line: String) -> [String] {
        var out: [String] = [], word = "", quoted = false, started = false
        for character in line {
            if character == "\"" {
                quoted.toggle()
                started = true
            } else if character == " " && !quoted {
                if started { out.append(word) }
                word = ""
                started = false
            } else {
                word.append(character)
                started = true
            }
        }
        if started { out.append(word) }
        return out
    }

    static func steps(_ runbook: String) throws -> [Step] {
        let text = try String(contentsOfFile: Repo.root + "/runbooks/" + runbook, encoding: .utf8)
        var steps: [Step] = []
        var inConsole = false
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("```") {
                inConsole = line == "```console" && !inConsole
                continue
            }
            guard inConsole, line.hasPrefix("$ policyhub ") else { continue }
            var command = String(line.dropFirst("$ policyhub ".count))
            var exit: Int32 = 0
            if let mark = command.range(of: "# exit ") {
                exit = Int32(command[mark.upperBound...].trimmingCharacters(in: .whitespaces)) ?? -1
                command = String(command[..<mark.lowerBound])
            }
            steps.append(Step(arguments: words(command), exit: exit, line: index + 1))
        }
        return steps
    }

    /// What the world looks like when each runbook is needed, and changes between its steps.
    static func prepare(_ runbook: String, folder: String) throws {
        let gitops = folder + "/.policyhub/gitops/staging-eu-1"
        switch runbook {
        case "drift-report.md":
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            try FileManager.default.removeItem(atPath: gitops + "/namespaces/demo/nvsecurityrules/nv.node-pod.demo.yaml")
        case "unreachable-member.md":
            try FileManager.default.createDirectory(atPath: folder + "/.policyhub/gitops", withIntermediateDirectories: true)
            try "not a folder".write(toFile: gitops, atomically: true, encoding: .utf8)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 1)
        case "rollback.md":
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            #expect(try CLI.run(["promote", "--repo", folder, "--to", "production", "--namespace", "demo", "--force", "--reason", "override in a test"]).status == 0)
            #expect(try CLI.run(["promote", "--repo", folder, "--to", "production", "--all", "--force", "--reason", "override in a test"]).status == 0)
        default:
            break
        }
    }

    static func beforeStep(_ runbook: String, _ step: Step, folder: String) throws {
        // the unreachable member answers again before it is pushed
        var folderIsThere: ObjCBool = false
        let gitops = folder + "/.policyhub/gitops/staging-eu-1"
        if runbook == "unreachable-member.md", step.arguments.first == "apply",
           FileManager.default.fileExists(atPath: gitops, isDirectory: &folderIsThere), !folderIsThere.boolValue {
            try FileManager.default.removeItem(atPath: gitops)
        }
    }

    @Test(arguments: ["global-policy-update.md", "promotion.md", "drift-report.md", "unreachable-member.md", "rollback.md"])
    func runbookCommandsWork(_ runbook: String) throws {
        let steps = try Self.steps(runbook)
        #expect(steps.count >= 2, "\(runbook) has no commands")
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            try Self.prepare(runbook, folder: folder)
            for step in steps {
                try Self.beforeStep(runbook, step, folder: folder)
                let run = try CLI.run(step.arguments, in: folder)
                #expect(run.status == step.exit,
                        "runbooks/\(runbook):\(step.line): policyhub \(step.arguments.joined(separator: " ")) exited \(run.status)\n\(run.stderr.suffix(600))")
            }
        }
    }
}
