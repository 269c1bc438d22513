import Foundation
import HubStore
import Testing

/// `promote` and `rollback` on the example fleet with real state files.
@Suite struct PromoteTests {
    typealias CLI = CommandLineTests

    /// The example with production's gates replaced by `gates` (YAML flow mapping).
    static func example(gates: String, in folder: String) throws {
        try Repo.copyExample(to: folder)
        try """
            apiVersion: policyhub.dev/v1alpha1
            kind: EnvironmentList
            environments:
            - {name: staging, defaultPolicyMode: Monitor, minimumPolicyMode: Discover}
            - {name: production, promotesFrom: staging, defaultPolicyMode: Protect, minimumPolicyMode: Monitor, gates: \(gates)}
            """.write(toFile: folder + "/clusters/environments.yaml", atomically: true, encoding: .utf8)
    }

    @Test func promotingANamespaceCarriesExactlyItsDocuments() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.example(gates: "{}", in: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let dry = try CLI.run(["promote", "--repo", folder, "--to", "production", "--namespace", "demo", "--dry-run"])
            #expect(dry.status == 0)
            #expect(dry.stdout.contains("prod-eu-1 (production):\n  + NvSecurityRule/demo/nv.nginx-pod.demo"))
            #expect(try CLI.run(["history", "--repo", folder, "--env", "production"]).stdout == "no revisions of production yet\n")

            let promote = try CLI.run(["promote", "--repo", folder, "--to", "production", "--namespace", "demo", "--push"])
            #expect(promote.status == 0, "\(promote.stderr)")
            #expect(promote.stderr.contains("recorded revision 2 of production (promote from staging r1: --namespace demo)"))
            #expect(promote.stderr.contains("2 pushed (6 created"))
            let prod = folder + "/.policyhub/gitops/prod-eu-1"
            #expect(FileManager.default.fileExists(atPath: prod + "/namespaces/demo/nvsecurityrules/nv.node-pod.demo.yaml"))
            #expect(!FileManager.default.fileExists(atPath: prod + "/namespaces/payments"))
            #expect(!FileManager.default.fileExists(atPath: prod + "/cluster"))

            // a change in staging reaches production only when promoted
            let node = folder + "/policies/namespaces/demo/node.yaml"
            try String(contentsOfFile: node, encoding: .utf8).replacingOccurrences(of: "tcp/6379", with: "tcp/6380")
                .write(toFile: node, atomically: true, encoding: .utf8)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let held = try String(contentsOfFile: prod + "/namespaces/demo/nvsecurityrules/nv.node-pod.demo.yaml", encoding: .utf8)
            #expect(held.contains("tcp/6379"))
            let again = try CLI.run(["promote", "--repo", folder, "--to", "production", "--document",
                                     "NvSecurityRule/demo/nv.node-pod.demo", "--push"])
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stdout == "~ NvSecurityRule/demo/nv.node-pod.demo\n")
            #expect(try String(contentsOfFile: prod + "/namespaces/demo/nvsecurityrules/nv.node-pod.demo.yaml", encoding: .utf8)
                .contains("tcp/6380"))
            // the same promotion again changes nothing and records nothing
            let noop = try CLI.run(["promote", "--repo", folder, "--to", "production", "--namespace", "demo"])
            #expect(noop.status == 0 && noop.stdout.contains("already holds"))
            #expect(try CLI.run(["history", "--repo", folder, "--env", "production"]).stdout.split(separator: "\n").count == 2)
        }
    }

    @Test func selectionsThatMatchNothingAndBadTargetsAreErrors() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.example(gates: "{}", in: folder)
            let early = try CLI.run(["promote", "--repo", folder, "--to", "production", "--all"])
            #expect(early.status == 1 && early.stderr.contains("staging has no revision yet"))
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let nothing = try CLI.run(["promote", "--repo", folder, "--to", "production", "--global", "no-such-rule"])
            #expect(nothing.status == 1)
            #expect(nothing.stderr.contains("unknown global document 'no-such-rule' (known: baseline-defaults, deny-ssh-to-external,"), "\(nothing.stderr)")
            // one unknown name is an error even when another one matches
            let mixed = try CLI.run(["promote", "--repo", folder, "--to", "production", "--namespace", "demo", "--namespace", "paymnets"])
            #expect(mixed.status == 1)
            #expect(mixed.stderr.contains("unknown namespace 'paymnets'; did you mean 'payments'?"), "\(mixed.stderr)")
            let root = try CLI.run(["promote", "--repo", folder, "--to", "staging", "--all"])
            #expect(root.status == 1 && root.stderr.contains("staging is the root environment"), "\(root.status) \(root.stderr)")
            let usage = try CLI.run(["promote", "--repo", folder, "--to", "production"])
            #expect(usage.status == 64)
            let badDocument = try CLI.run(["promote", "--repo", folder, "--to", "production", "--document", "demo/x"])
            #expect(badDocument.status == 64)
        }
    }

    @Test(arguments: [
        ("{requireInSync: true}", "gate requireInSync: staging-broken of staging do not hold r1"),
        ("{requireNoDrift: true}", "gate requireNoDrift: no drift check of staging is recorded yet"),
        ("{minimumSoak: 1h}", "gate minimumSoak: NvSecurityRule/demo/nv.nginx-pod.demo, NvSecurityRule/demo/nv.node-pod.demo, NvSecurityRule/demo/nv.redis-pod.demo are not applied as in r1 on every cluster of staging yet"),
    ])
    func eachGateFailsOnItsOwnAndForceIsRecorded(_ gates: String, _ message: String) throws {
        try Repo.withTemporaryFolder { folder in
            try Self.example(gates: gates, in: folder)
            // a second staging cluster that cannot be pushed keeps staging out of step
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata: {name: staging-broken}
                spec: {environment: staging, target: {directory: {path: blocked}}}
                """.write(toFile: folder + "/clusters/staging-broken.yaml", atomically: true, encoding: .utf8)
            try "file".write(toFile: folder + "/blocked", atomically: true, encoding: .utf8)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 1)
            let refused = try CLI.run(["promote", "--repo", folder, "--to", "production", "--namespace", "demo"])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains(message), "\(refused.stderr)")
            #expect(refused.stderr.contains("1 gate of production failed; nothing was recorded"))
            let forced = try CLI.run(["promote", "--repo", folder, "--to", "production", "--namespace", "demo", "--force", "--reason", "override in a test"])
            #expect(forced.status == 0)
            let gate = String(message.dropFirst("gate ".count).prefix { $0 != ":" })
            #expect(forced.stderr.contains("(forced past: \(gate); reason: override in a test)"), "\(forced.stderr)")
        }
    }

    @Test func theDriftAndSoakGatesPassWhenMet() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.example(gates: "{requireInSync: true, requireNoDrift: true, minimumSoak: 0s}", in: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let store = try SQLiteHubStore(path: folder + "/.policyhub/state.sqlite")
            try store.recordDriftCheck(environment: "staging", findings: 2, at: Date().timeIntervalSince1970)
            let drifted = try CLI.run(["promote", "--repo", folder, "--to", "production", "--all"])
            #expect(drifted.status == 1 && drifted.stderr.contains("found 2 findings"))
            try store.recordDriftCheck(environment: "staging", findings: 0, at: Date().timeIntervalSince1970)
            let clean = try CLI.run(["promote", "--repo", folder, "--to", "production", "--all"])
            #expect(clean.status == 0, "\(clean.stderr)")
            #expect(!clean.stderr.contains("gate "))
        }
    }

    @Test func racingPromotionsLoseNoRevision() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.example(gates: "{}", in: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            func start(_ namespace: String) throws -> Process {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: CLI.binary)
                process.arguments = ["promote", "--repo", folder, "--to", "production", "--namespace", namespace]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                return process
            }
            let a = try start("demo")
            let b = try start("payments")
            a.waitUntilExit()
            b.waitUntilExit()
            #expect(a.terminationStatus == 0 && b.terminationStatus == 0)
            let store = try SQLiteHubStore(path: folder + "/.policyhub/state.sqlite")
            let production = try store.revisions(environment: "production")
            #expect(production.count == 2)
            // the later one builds on the earlier: both namespaces are there
            let documents = try store.documents(revision: try #require(production.first).id)
            // by folder: an admission document of a namespace is cluster-scoped, but it is the team's
            #expect(Set(documents.map { $0.source.split(separator: "/")[2] }) == ["demo", "payments"])
            #expect(production.first?.parent == production.last?.id)
        }
    }

    @Test func rollbackRecordsTheEarlierTreeAndRefusesStrangers() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.example(gates: "{}", in: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            #expect(try CLI.run(["promote", "--repo", folder, "--to", "production", "--namespace", "demo"]).status == 0)
            #expect(try CLI.run(["promote", "--repo", folder, "--to", "production", "--all"]).status == 0)
            let unknown = try CLI.run(["rollback", "--repo", folder, "--env", "production", "--to", "r42", "--reason", "test"])
            #expect(unknown.status == 1 && unknown.stderr.contains("revision 42 does not exist"))
            let stranger = try CLI.run(["rollback", "--repo", folder, "--env", "production", "--to", "r1", "--reason", "test"])
            #expect(stranger.status == 1 && stranger.stderr.contains("r1 is a revision of staging, not of production"))
            let rollback = try CLI.run(["rollback", "--repo", folder, "--env", "production", "--to", "r2", "--push", "--reason", "test"])
            #expect(rollback.status == 0, "\(rollback.stderr)")
            let store = try SQLiteHubStore(path: folder + "/.policyhub/state.sqlite")
            let revisions = try store.revisions(environment: "production")
            #expect(revisions.first?.cause == "rollback to r2 (reason: test)")
            #expect(revisions.first?.treeHash == revisions.first { $0.id == 2 }?.treeHash)
            #expect(!FileManager.default.fileExists(atPath: folder + "/.policyhub/gitops/prod-eu-1/namespaces/payments"))
            #expect(try store.auditLog(limit: 10).contains { $0.detail.contains("rollback to r2") })
        }
    }

    @Test func overridesAndRollbacksTakeAReasonAndDryRunsExitAsTheRealOnes() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.example(gates: "{minimumSoak: 1h}", in: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            // the dry run exits 1 as the promotion would, and 0 when forcing with a reason would pass
            let dry = try CLI.run(["promote", "--repo", folder, "--to", "production", "--all", "--dry-run"])
            #expect(dry.status == 1 && dry.stderr.contains("gate minimumSoak:"), "\(dry.stderr)")
            let dryForced = try CLI.run(["promote", "--repo", folder, "--to", "production", "--all", "--dry-run", "--force", "--reason", "CAB-1"])
            #expect(dryForced.status == 0, "\(dryForced.stderr)")
            let noReason = try CLI.run(["promote", "--repo", folder, "--to", "production", "--all", "--force"])
            #expect(noReason.status == 64 && noReason.stderr.contains("--force needs --reason TEXT"), "\(noReason.stderr)")
            #expect(try CLI.run(["promote", "--repo", folder, "--to", "production", "--all", "--force", "--reason", "CAB-1"]).status == 0)
            let rollback = try CLI.run(["rollback", "--repo", folder, "--env", "staging", "--to", "r1"])
            #expect(rollback.status == 64 && rollback.stderr.contains("a rollback needs --reason TEXT"), "\(rollback.stderr)")
            let preview = try CLI.run(["rollback", "--repo", folder, "--env", "production", "--to", "r2", "--dry-run"])
            #expect(preview.status == 0 && preview.stdout.contains("production already holds what r2 holds"), "\(preview.stdout)\(preview.stderr)")
            let history = try CLI.run(["history", "--repo", folder])
            #expect(history.stdout.contains("(forced past: minimumSoak; reason: CAB-1)"), "\(history.stdout)")
        }
    }

    @Test func aFirstPromotionOfNamespacesWithoutTheirGlobalsWarns() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.example(gates: "{}", in: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let alone = try CLI.run(["promote", "--repo", folder, "--to", "production", "--namespace", "demo", "--dry-run"])
            #expect(alone.stderr.contains("warning: this is the first promotion into production, and it carries none of the"), "\(alone.stderr)")
            let withGlobals = try CLI.run(["promote", "--repo", folder, "--to", "production", "--namespace", "demo",
                                           "--global", "deny-ssh-to-external", "--dry-run"])
            #expect(!withGlobals.stderr.contains("first promotion"), "\(withGlobals.stderr)")
        }
    }
}
