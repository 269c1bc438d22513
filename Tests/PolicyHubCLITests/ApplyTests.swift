import Foundation
import HubStore
import PolicyHubTesting
import Testing

/// `apply`, `plan`, `status` and `history` on real folders and real SQLite files.
@Suite struct ApplyTests {
    typealias CLI = CommandLineTests

    @Test(arguments: ["0", "100001", "many"])
    func aConnectionBoundOutOfRangeIsRefusedBeforeAnythingIsRecorded(value: String) throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let run = try CLI.run(["apply", "--repo", folder, "--connections", value])
            #expect(run.status != 0)
            #expect(run.stderr.contains("--connections"), "\(run.stderr)")
            #expect(!FileManager.default.fileExists(atPath: folder + "/.policyhub/state.sqlite"))
        }
    }

    @Test func applyPushesTheRootEnvironmentOnlyAndThenNothing() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let first = try CLI.run(["apply", "--repo", folder])
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stderr.contains("recorded revision 1 of staging"))
            #expect(first.stderr.contains("1 pushed (9 created, 0 updated, 0 deleted)"))
            let gitops = folder + "/.policyhub/gitops"
            #expect(FileManager.default.fileExists(atPath: gitops + "/staging-eu-1/namespaces/demo/nvsecurityrules/nv.node-pod.demo.yaml"))
            // production changes only by promotion: untouched, not even created
            #expect(!FileManager.default.fileExists(atPath: gitops + "/prod-eu-1"))
            #expect(first.stderr.contains("prod-eu-1: environment production has no desired revision"))

            let second = try CLI.run(["apply", "--repo", folder])
            #expect(second.status == 0)
            #expect(second.stderr.contains("0 pushed (0 created, 0 updated, 0 deleted), 1 in step"))
            #expect(!second.stderr.contains("recorded revision"))

            let status = try CLI.run(["status", "--repo", folder, "--output", "json"])
            #expect(status.status == 0, "\(status.stdout)")
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]])
            let staging = try #require(rows.first { $0["cluster"] as? String == "staging-eu-1" })
            #expect(staging["appliedRevision"] as? String == "r1" && staging["lastResult"] as? String == "ok")
            #expect(rows.first { $0["cluster"] as? String == "prod-eu-1" }?["desiredRevision"] is NSNull)
        }
    }

    @Test func planShowsTheChangedRuleThenApplyConverges() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let node = folder + "/policies/namespaces/demo/node.yaml"
            try String(contentsOfFile: node, encoding: .utf8).replacingOccurrences(of: "tcp/6379", with: "tcp/6380")
                .write(toFile: node, atomically: true, encoding: .utf8)
            try FileManager.default.removeItem(atPath: folder + "/policies/namespaces/payments/ledger.yaml")
            let plan = try CLI.run(["plan", "--repo", folder])
            #expect(plan.status == 2)
            #expect(plan.stdout.contains("~ NvSecurityRule/demo/nv.node-pod.demo"))
            #expect(plan.stdout.contains("~ spec.egress[node-to-redis].ports: tcp/6379 -> tcp/6380"))
            #expect(plan.stdout.contains("- NvSecurityRule/payments/nv.ledger.payments"))
            let dry = try CLI.run(["apply", "--repo", folder, "--dry-run"])
            #expect(dry.status == 0)
            #expect(dry.stdout.contains("would record revision 2 of staging"))
            #expect(try CLI.run(["history", "--repo", folder]).stdout.split(separator: "\n").count == 1)

            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 0, "\(apply.stderr)")
            #expect(apply.stderr.contains("1 deleted"))
            #expect(!FileManager.default.fileExists(atPath: folder + "/.policyhub/gitops/staging-eu-1/namespaces/payments/nvsecurityrules/nv.ledger.payments.yaml"))
            #expect(try CLI.run(["plan", "--repo", folder]).status == 0)
            let live = try CLI.run(["plan", "--repo", folder, "--live", "--output", "json"])
            #expect(live.status == 0, "\(live.stdout)")

            // a changed port: a structured change (object, field path, before, after), and the text line
            let nodeFile = folder + "/policies/namespaces/demo/node.yaml"
            try String(contentsOfFile: nodeFile, encoding: .utf8).replacingOccurrences(of: "tcp/6380", with: "tcp/6381")
                .write(toFile: nodeFile, atomically: true, encoding: .utf8)
            let changed = try CLI.run(["plan", "--repo", folder, "--output", "json"])
            #expect(changed.status == 2)
            let plans = try #require(try JSONSerialization.jsonObject(with: Data(changed.stdout.utf8)) as? [[String: Any]])
            let staging = try #require(plans.first { $0["cluster"] as? String == "staging-eu-1" })
            let update = try #require((staging["update"] as? [[String: Any]])?.first { $0["object"] as? String == "NvSecurityRule/demo/nv.node-pod.demo" })
            let change = try #require((update["changes"] as? [[String: Any]])?.first { ($0["path"] as? String)?.hasSuffix(".ports") == true })
            #expect(change["path"] as? String == "spec.egress[node-to-redis].ports")
            #expect(change["before"] as? String == "tcp/6380")
            #expect(change["after"] as? String == "tcp/6381")
            let history = try CLI.run(["history", "--repo", folder, "--output", "json"])
            let revisions = try #require(try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]])
            #expect(revisions.map { $0["id"] as? String } == ["r2", "r1"])
            #expect(revisions.first?["parent"] as? String == "r1")
        }
    }

    @Test func anInvalidTreeRecordsAndPushesNothing() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let before = try CLI.run(["history", "--repo", folder]).stdout
            try "kind: [".write(toFile: folder + "/policies/global/broken.yaml", atomically: true, encoding: .utf8)
            let node = folder + "/policies/namespaces/demo/node.yaml"
            try String(contentsOfFile: node, encoding: .utf8).replacingOccurrences(of: "tcp/6379", with: "tcp/6380")
                .write(toFile: node, atomically: true, encoding: .utf8)
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("policies/global/broken.yaml:2:1: error"))
            #expect(try CLI.run(["history", "--repo", folder]).stdout == before)
            let pushed = try String(contentsOfFile: folder + "/.policyhub/gitops/staging-eu-1/namespaces/demo/nvsecurityrules/nv.node-pod.demo.yaml",
                                    encoding: .utf8)
            #expect(pushed.contains("tcp/6379"))
        }
    }

    @Test func aFailingClusterIsNamedAndTheOthersStillConverge() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            // a second staging cluster whose folder is a file: its push fails
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata: {name: staging-broken}
                spec:
                  environment: staging
                  target: {directory: {path: blocked}}
                """.write(toFile: folder + "/clusters/staging-broken.yaml", atomically: true, encoding: .utf8)
            try "not a folder".write(toFile: folder + "/blocked", atomically: true, encoding: .utf8)
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("policyhub: cluster staging-broken:"))
            #expect(apply.stderr.contains("1 pushed"))
            let status = try CLI.run(["status", "--repo", folder])
            #expect(status.status == 2)
            #expect(status.stdout.contains("staging-broken  staging  desired r1  applied none  failed"))
            // fixed: the rerun pushes only what is still not applied
            try FileManager.default.removeItem(atPath: folder + "/blocked")
            let rerun = try CLI.run(["apply", "--repo", folder])
            #expect(rerun.status == 0, "\(rerun.stderr)")
            #expect(rerun.stderr.contains("1 pushed (9 created, 0 updated, 0 deleted), 1 in step"))
        }
    }

    /// A generated fleet large enough that a push takes a while.
    static func bigFleet(in folder: String) throws {
        try TreeGenerator(globalDocuments: 10, namespaces: 30, rulesPerNamespace: 8, regions: 4, clusters: 160).write(to: folder)
    }

    @Test func killedMidPushLeavesASoundStateAndTheNextApplyConverges() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.bigFleet(in: folder)
            let log = folder + "/apply.log"
            FileManager.default.createFile(atPath: log, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLI.binary)
            process.arguments = ["apply", "--repo", folder, "--concurrency", "2"]
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            var sawProgress = false
            for _ in 0..<600 {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                if text.contains("[3/") {
                    sawProgress = true
                    break
                }
                usleep(20_000)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(sawProgress, "the apply finished or stalled before it could be killed")
            #expect(process.terminationReason == .uncaughtSignal)

            let store = try SQLiteHubStore(path: folder + "/.policyhub/state.sqlite")
            #expect(try store.integrityCheck() == "ok")
            let done = try store.clusterStates().filter { $0.lastResult == "ok" }.count
            #expect(done >= 3 && done < 80, "killed after \(done) clusters")

            let rerun = try CLI.run(["apply", "--repo", folder])
            #expect(rerun.status == 0, "\(rerun.stderr.suffix(500))")
            #expect(rerun.stderr.contains("\(80 - done) pushed"), "\(rerun.stderr.suffix(300))")
            #expect(try CLI.run(["status", "--repo", folder]).status == 0)
            #expect(try CLI.run(["plan", "--repo", folder]).status == 0)
        }
    }

    @Test func twoAppliesAtOnceTakeTurns() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.bigFleet(in: folder)
            func start(_ log: String) throws -> Process {
                FileManager.default.createFile(atPath: log, contents: nil)
                let process = Process()
                process.executableURL = URL(fileURLWithPath: CLI.binary)
                process.arguments = ["apply", "--repo", folder]
                process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
                process.standardOutput = FileHandle.nullDevice
                try process.run()
                return process
            }
            let a = try start(folder + "/a.log")
            let b = try start(folder + "/b.log")
            a.waitUntilExit()
            b.waitUntilExit()
            #expect(a.terminationStatus == 0 && b.terminationStatus == 0)
            let logs = [folder + "/a.log", folder + "/b.log"].map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" }
            #expect(logs.contains { $0.contains("holds") && $0.contains("waiting up to") }, "\(logs)")
            // one recorded the revision and pushed; the other found everything in step
            #expect(logs.filter { $0.contains("recorded revision 1 of staging") }.count == 1)
            #expect(logs.contains { $0.contains("0 pushed") && $0.contains("80 in step") })
            let store = try SQLiteHubStore(path: folder + "/.policyhub/state.sqlite")
            #expect(try store.integrityCheck() == "ok")
            #expect(try store.revisions(environment: nil).count == 1)
        }
    }
}
