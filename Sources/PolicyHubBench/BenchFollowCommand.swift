import ArgumentParser
import Foundation
import HubEngine
import Members
import PolicyCore
import PolicyHubTesting

/// `policyhub-bench follow`: from `git push` of a one-document change to a bare repository on this machine
/// to every one of --clusters clusters holding it, through the daemon's own sync (`HubEngine.follow`: fetch,
/// check out, validate, record with provenance, push), against git alone doing the same push, fetch and
/// checkout into a plain clone.
struct BenchFollowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "follow",
        abstract: "git push to a bare repository -> every cluster applied, through the daemon's sync (target < 2 s at 1,000 clusters).")

    @Option(help: "Clusters (all in the root environment, GitOps folders).")
    var clusters: Int = 1000

    @Option(help: "Changes pushed and followed; the median is reported.")
    var runs: Int = 5

    func run() async throws {
        try await BenchSupport.withScratchAsync { scratch in
            let work = scratch + "/work", upstream = scratch + "/upstream.git", hub = scratch + "/hub", plain = scratch + "/plain"
            try TreeGenerator(globalDocuments: 20, namespaces: 50, rulesPerNamespace: 16, regions: 10, clusters: 0).write(to: work)
            // the clusters are in the root environment, which takes the followed branch; one production cluster
            // gives production's placements a cluster (untouched: production changes by promotion)
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata: {name: p0, labels: {region: r0}}
                spec: {environment: production, target: {directory: {path: .policyhub/gitops/p0}}}
                """.write(toFile: work + "/clusters/p0.yaml", atomically: false, encoding: .utf8)
            for index in 0..<clusters {
                try """
                    apiVersion: policyhub.dev/v1alpha1
                    kind: MemberCluster
                    metadata: {name: c\(index), labels: {region: r\(index % 10)}}
                    spec: {environment: staging, target: {directory: {path: .policyhub/gitops/c\(index)}}}
                    """.write(toFile: work + "/clusters/c\(index).yaml", atomically: false, encoding: .utf8)
            }
            let git = Git(home: scratch)
            try git.run(["init", "-q", "--bare", upstream], in: scratch)
            try git.run(["init", "-q"], in: work)
            try git.run(["add", "-A"], in: work)
            try git.run(["commit", "-q", "-m", "fleet of \(clusters)"], in: work)
            try git.run(["push", "-q", upstream, "HEAD:main"], in: work)
            try git.run(["clone", "-q", "--branch", "main", upstream, plain], in: scratch)

            let followed = FollowedBranch(url: upstream, branch: "main", checkout: hub + "/checkout")
            let engine = HubEngine(root: followed.checkout, statePath: hub + "/state.sqlite")
            let first = try await BenchSupport.timeAsync {
                let run = try await engine.follow(followed, concurrency: 16)
                guard run.summary?.failures.isEmpty == true, run.summary?.pushed == clusters else {
                    throw ValidationError("the first sync did not push every cluster: \(run.summary.map { "\($0.pushed) pushed" } ?? "nothing"); \(run.rejected.flatMap(\.errors).prefix(5))")
                }
            }
            print("follow: \(clusters) clusters (GitOps folders), a one-document change per commit, \(max(runs, 1)) runs (median)")
            print("  first sync (clone, record, push every cluster)  \(BenchSupport.ms(first)) ms")
            fflush(nil)
            var hubTimes: [Double] = [], pushTimes: [Double] = [], gitTimes: [Double] = [], floorTimes: [Double] = []
            let rules = work + "/policies/namespaces/ns0/rules.yaml"
            for round in 0..<max(runs, 1) {
                let text = try String(contentsOfFile: rules, encoding: .utf8)
                try text.replacingOccurrences(of: #"tcp/\d+"#, with: "tcp/\(9000 + round)", options: .regularExpression)
                    .write(toFile: rules, atomically: true, encoding: .utf8)
                try git.run(["commit", "-q", "-a", "-m", "ns0 round \(round)"], in: work)
                let pushed = try await BenchSupport.timeAsync { try git.run(["push", "-q", upstream, "HEAD:main"], in: work) }
                var run: FollowRun?
                let followedTime = try await BenchSupport.timeAsync { run = try await engine.follow(followed, concurrency: 16) }
                guard let summary = run?.summary, summary.failures.isEmpty, summary.pushed == clusters else {
                    throw ValidationError("round \(round): not every cluster was pushed: \(run?.summary.map { "\($0.pushed) pushed, \($0.failures.count) failed" } ?? "no push")")
                }
                // git alone: the same fetch and checkout into a plain clone
                let gitAlone = try await BenchSupport.timeAsync {
                    try git.run(["fetch", "-q", "origin", "main"], in: plain)
                    try git.run(["checkout", "-q", "--detach", "FETCH_HEAD"], in: plain)
                }
                if round == 0 { print("  one change: \(summary.created) created, \(summary.updated) updated, \(summary.deleted) deleted over \(summary.pushed) clusters") }
                // the floor of the writes: the same changed files replaced (temporary file, rename, one syncfs per
                // cluster) by a few lines of Python, in the same folders
                let changed = (summary.created + summary.updated) / max(summary.pushed, 1)
                floorTimes.append(try await BenchSupport.timeAsync {
                    try git.python(Self.replaceScript, [hub + "/checkout/.policyhub/gitops", "\(clusters)", "\(changed)"])
                })
                pushTimes.append(pushed)
                hubTimes.append(followedTime)
                gitTimes.append(pushed + gitAlone)
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            // where a sync's time goes, with nothing new: reading and planning, and a reconcile with nothing to push
            let plan = try await BenchSupport.timeAsync { _ = try engine.recordAndPlan(author: "bench") }
            let idle = try await BenchSupport.timeAsync { _ = try await engine.reconcile(concurrency: 16) }
            let idleSync = try await BenchSupport.timeAsync { _ = try await engine.follow(followed, concurrency: 16) }
            let total = median(pushTimes) + median(hubTimes)
            print("  git push to the bare repository                 \(BenchSupport.ms(median(pushTimes))) ms")
            print("  hub sync: fetch, checkout, validate, record, push \(BenchSupport.ms(median(hubTimes))) ms")
            print("  push -> every cluster applied                   \(BenchSupport.ms(total)) ms (target < 2000; NeuVector federation: up to ~70 s)")
            print("  reference: git alone, push + fetch + checkout   \(BenchSupport.ms(median(gitTimes))) ms")
            print("  reference: the same files replaced by Python     \(BenchSupport.ms(median(floorTimes))) ms (temporary file, rename, syncfs per cluster)")
            print("  parts: read + validate + plan \(BenchSupport.ms(plan)) ms, reconcile in step \(BenchSupport.ms(idle)) ms, sync with nothing new \(BenchSupport.ms(idleSync)) ms")
        }
    }

    /// Replaces the first N files of ns0's nvsecurityrules in every cluster's folder as the hub does: temporary
    /// files, a flush of the file system, the renames, a flush again.
    static let replaceScript = """
        import ctypes, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        root, clusters, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        for c in range(clusters):
            folder = os.path.join(root, f"c{c}", "namespaces", "ns0", "nvsecurityrules")
            names = sorted(os.listdir(folder))[:per]
            for name in names:
                with open(os.path.join(folder, name), "rb") as f: data = f.read()
                with open(os.path.join(folder, ".floor-tmp." + name), "wb") as f: f.write(data)
            fd = os.open(folder, os.O_RDONLY)
            libc.syncfs(fd)
            for name in names:
                os.rename(os.path.join(folder, ".floor-tmp." + name), os.path.join(folder, name))
            libc.syncfs(fd)
            os.close(fd)
        """

    /// The system git with no configuration of the machine's.
    struct Git {
        let home: String

        @discardableResult
        func run(_ arguments: [String], in folder: String) throws -> String {
            guard let git = ExecPlugin.resolve("git", kubeconfigFolder: "/") else { throw ValidationError("git is not installed") }
            let outcome = try ChildProcess.run(git, ["-C", folder, "-c", "user.name=Bench", "-c", "user.email=bench@example.com",
                                                     "-c", "init.defaultBranch=main"] + arguments,
                                               environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                                                             "HOME": home, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"],
                                               timeout: 600)
            guard outcome.status == 0 else { throw ValidationError("git \(arguments.first ?? ""): \(outcome.lastErrorLine)") }
            return String(decoding: outcome.output, as: UTF8.self)
        }

        /// Runs a Python script (the reference of the writes).
        func python(_ script: String, _ arguments: [String]) throws {
            guard let python = ExecPlugin.resolve("python3", kubeconfigFolder: "/") else { throw ValidationError("python3 is not installed") }
            let outcome = try ChildProcess.run(python, ["-c", script] + arguments, environment: ["PATH": "/usr/bin:/bin"], timeout: 600)
            guard outcome.status == 0 else { throw ValidationError("the reference script failed: \(outcome.lastErrorLine)") }
        }
    }
}
