import Foundation
import Testing

/// What a script reads from a command agrees with its exit status, and an option it cannot honour is refused.
@Suite struct OutputContractTests {
    typealias CLI = CommandLineTests

    @Test(arguments: ["status", "history", "plan", "explain"])
    func aFormatACommandCannotPrintIsAUsageError(_ command: String) throws {
        let run = try CLI.run([command, "--output", "yaml"])
        #expect(run.status == 64, "\(run.stderr)")
        #expect(run.stderr.contains("yaml"), "\(run.stderr)")
    }

    /// `status` exits 2 exactly when its JSON has a cluster that is not in step.
    @Test func statusExitAgreesWithItsJSON() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            func check(_ wanted: Int32) throws {
                let status = try CLI.run(["status", "--repo", folder, "--output", "json"])
                #expect(status.status == wanted, "\(status.stderr)")
                let rows = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]])
                let behind = rows.contains { $0["inStep"] as? Bool == false }
                #expect(behind == (status.status == 2), "\(status.stdout)")
            }
            try check(0)  // nothing recorded yet: nothing is desired
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            try check(0)  // staging applied; production waits for its first promotion, untouched
            #expect(try CLI.run(["promote", "--repo", folder, "--to", "production", "--all", "--force", "--reason", "override in a test"]).status == 0)
            try check(2)  // production now desires a revision it does not hold
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            try check(0)
        }
    }

    /// Help paragraphs are wrapped by the argument parser to the terminal, never broken inside a sentence.
    @Test func helpIsWrappedByTheParser() throws {
        let wide = try CLI.runProcess(CLI.binary, ["apply", "--help"], environment: ["COLUMNS": "300"])
        #expect(wide.stdout.contains("Validates first: an invalid tree records and pushes nothing. Then records a revision of the root environment (when policies/ changed)"),
                "\(wide.stdout)")
        let narrow = try CLI.runProcess(CLI.binary, ["drift", "--help"], environment: ["COLUMNS": "60"])
        for line in narrow.stdout.split(separator: "\n") where !line.hasPrefix("USAGE") {
            #expect(line.count <= 60, "\(line)")
        }
    }

    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScripts(_ shell: String) throws {
        let run = try CLI.run(["completion", shell])
        #expect(run.status == 0)
        #expect(run.stdout.contains("promote") && run.stdout.contains("max-deletions"), "\(run.stdout.prefix(300))")
    }

    /// `policyhub` ships no test code: the API double, the test PKI and the generators live in
    /// PolicyHubTesting, which only the tests and `policyhub-bench` link.
    @Test func thePolicyhubBinaryLinksNoTestCode() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: CLI.binary))
        #expect(bytes.range(of: Data("PolicyHubTesting".utf8)) == nil)
        #expect(bytes.range(of: Data("KubernetesAPIDouble".utf8)) == nil)
        let bench = try CLI.run(["bench", "parse"])
        #expect(bench.status == 64, "\(bench.stderr)")
    }

    @Test func aWarningOnManyClustersNamesTenAndCountsTheRest() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            for index in 0..<12 {
                try """
                    apiVersion: policyhub.dev/v1alpha1
                    kind: MemberCluster
                    metadata: {name: extra-\(String(format: "%02d", index)), labels: {region: eu}}
                    spec: {environment: staging, target: {directory: {path: .policyhub/gitops/extra-\(index)}}}
                    """.write(toFile: folder + "/clusters/extra-\(index).yaml", atomically: true, encoding: .utf8)
            }
            let run = try CLI.run(["apply", "--repo", folder, "--dry-run"])
            #expect(run.status == 0, "\(run.stderr)")
            let line = try #require(run.stderr.split(separator: "\n").first { $0.contains("warning: [") && $0.contains("shadowed") })
            #expect(line.contains("warning: [extra-00, extra-01, extra-02, extra-03, extra-04, extra-05, extra-06, extra-07, extra-08, extra-09, and 3 more] shadowed:"),
                    "\(line)")
        }
    }
}
