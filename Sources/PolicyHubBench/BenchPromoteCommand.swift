import ArgumentParser
import Foundation
import HubEngine
import PolicyCore
import PolicyHubCLI
import PolicyHubTesting

/// `policyhub bench promote`: a dry-run promotion of one namespace to a large production environment,
/// against rendering those clusters' effective policy once.
struct BenchPromoteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Dry-run promotion of one namespace to --clusters production clusters vs one render of them (target <= 2x).")

    @Option(help: "Production clusters.")
    var clusters: Int = 500

    @Option(help: "Runs per measurement; the median is reported.")
    var runs: Int = 3

    func run() async throws {
        try await BenchSupport.withScratchAsync { root in
            try TreeGenerator(globalDocuments: 20, namespaces: 50, rulesPerNamespace: 16, regions: 10, clusters: 0).write(to: root)
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata: {name: staging-1, labels: {region: r0}}
                spec: {environment: staging, target: {directory: {path: .policyhub/gitops/staging-1}}}
                """.write(toFile: root + "/clusters/staging-1.yaml", atomically: true, encoding: .utf8)
            for index in 0..<clusters {
                try """
                    apiVersion: policyhub.dev/v1alpha1
                    kind: MemberCluster
                    metadata: {name: prod-\(index), labels: {region: r\(index % 10)}}
                    spec: {environment: production, target: {directory: {path: .policyhub/gitops/prod-\(index)}}}
                    """.write(toFile: root + "/clusters/prod-\(index).yaml", atomically: false, encoding: .utf8)
            }
            try await BenchPushCommand.run(["apply", "--repo", root, "--author", "bench"])
            try await BenchPushCommand.run(["promote", "--repo", root, "--to", "production", "--all", "--force", "--reason", "bench", "--author", "bench"])
            // staging moves on in namespace ns0: that is what the dry run will carry to production
            let rules = root + "/policies/namespaces/ns0/rules.yaml"
            try String(contentsOfFile: rules, encoding: .utf8).replacingOccurrences(of: "tcp/8000", with: "tcp/9000")
                .write(toFile: rules, atomically: true, encoding: .utf8)
            try await BenchPushCommand.run(["apply", "--repo", root, "--author", "bench"])
            let workspace = Workspace.open(root: root)
            guard workspace.renderer(revision: "r") != nil, let fleet = workspace.fleet else {
                throw ValidationError("generated tree is invalid")
            }
            let production = fleet.clusters.filter { $0.environment == "production" }
            let stdout = dup(1)
            let devnull = open("/dev/null", O_WRONLY)
            var render: [Double] = []
            var dryRun: [Double] = []
            for _ in 0..<max(runs, 1) {
                // the reference reads the repository and renders, as `policyhub render` does (without printing)
                render.append(try await BenchSupport.timeAsync {
                    let fresh = Workspace.open(root: root)
                    _ = fresh.renderer(revision: "r")?.render(clusters: production, parallel: .dispatch)
                })
                fflush(nil)
                dup2(devnull, 1)  // the dry run prints every cluster's difference; time it, do not show it
                dryRun.append(try await BenchSupport.timeAsync {
                    try await BenchPushCommand.run(["promote", "--repo", root, "--to", "production", "--namespace", "ns0",
                                                                         "--dry-run"])
                })
                fflush(nil)
                dup2(stdout, 1)
            }
            close(devnull)
            let r = render.sorted()[render.count / 2]
            let d = dryRun.sorted()[dryRun.count / 2]
            print("production: \(production.count) clusters; \(workspace.repository.tree.objects.count) documents")
            print("  read the repository, render production once    \(BenchSupport.ms(r)) ms")
            print("  promote --namespace ns0 --dry-run               \(BenchSupport.ms(d)) ms (validation, state, before and after renders, diffs)")
            print(String(format: "promotion: %.2fx one render (target <= 2)", d / r))
        }
    }
}
