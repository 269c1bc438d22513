import Foundation
import Testing

/// `plan --out FILE` and `apply FILE` (issue 17): a saved plan is pushed exactly as reviewed, and refused,
/// naming what moved, after a change to the tree, to the state file or to what a member holds; the plan's
/// text has a summary line and `+ ~ -` in colour on a terminal only.
@Suite struct SavedPlanTests {
    static let member = "/.policyhub/gitops/staging-eu-1"

    /// The example, with policies/ applied once and then changed (one port of demo/nginx), so that the
    /// next plan updates one object of staging-eu-1.
    static func appliedAndChanged(_ folder: String) throws {
        try Repo.copyExample(to: folder)
        let first = try CommandLineTests.run(["apply", "--repo", folder])
        #expect(first.status == 0, "\(first.stderr)")
        let nginx = folder + "/policies/namespaces/demo/nginx.yaml"
        let text = try String(contentsOfFile: nginx, encoding: .utf8)
        #expect(text.contains("ports: tcp/80\n"))
        try text.replacingOccurrences(of: "ports: tcp/80\n", with: "ports: tcp/8080\n").write(toFile: nginx, atomically: true, encoding: .utf8)
    }

    static func savePlan(_ folder: String) throws -> String {
        let path = folder + "/plan.json"
        let plan = try CommandLineTests.run(["plan", "--repo", folder, "--out", path])
        #expect(plan.status == 2, "a plan with changes exits 2: \(plan.stderr)")
        #expect(plan.stderr.contains("saved the plan to \(path)"))
        #expect(plan.stdout.hasSuffix("Plan: 1 cluster to change, 0 objects to add, 1 to change, 0 to destroy.\n"), "\(plan.stdout)")
        return path
    }

    static func held(_ folder: String, _ object: String) throws -> String {
        try String(contentsOfFile: folder + member + "/namespaces/demo/nvsecurityrules/" + object + ".yaml", encoding: .utf8)
    }

    @Test func aSavedPlanIsAppliedAsIs() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.appliedAndChanged(folder)
            let path = try Self.savePlan(folder)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
            #expect(json["format"] as? String == "policyhub-plan/1")
            let push = try #require(json["push"] as? [[String: Any]])
            #expect(push.map { $0["cluster"] as? String } == ["staging-eu-1"])
            let objects = try #require(push.first?["objects"] as? [[String: Any]])
            let actions = Dictionary(uniqueKeysWithValues: objects.map { ($0["object"] as? String ?? "", $0["action"] as? String ?? "") })
            #expect(actions["NvSecurityRule/demo/nv.nginx-pod.demo"] == "update")
            #expect(actions.values.filter { $0 == "update" }.count == 1 && !actions.values.contains("create"))
            #expect(objects.allSatisfy { ($0["hash"] as? String)?.hasPrefix("sha256:") == true })

            // a dry run checks and changes nothing
            let check = try CommandLineTests.run(["apply", "--repo", folder, "--dry-run", path])
            #expect(check.status == 0, "\(check.stderr)")
            #expect(check.stdout.contains("the saved plan still holds"), "\(check.stdout)")
            #expect(try !Self.held(folder, "nv.nginx-pod.demo").contains("tcp/8080"))

            let apply = try CommandLineTests.run(["apply", "--repo", folder, path])
            #expect(apply.status == 0, "\(apply.stderr)")
            #expect(apply.stderr.contains("recorded revision 2 of staging"))
            #expect(apply.stderr.contains("staging-eu-1: 0 created, 1 updated, 0 deleted"), "\(apply.stderr)")
            #expect(try Self.held(folder, "nv.nginx-pod.demo").contains("tcp/8080"))
            let status = try CommandLineTests.run(["status", "--repo", folder])
            #expect(status.status == 0, "in step after the saved plan: \(status.stdout)\(status.stderr)")

            // applied once: the store has moved, so the same plan is now refused
            let again = try CommandLineTests.run(["apply", "--repo", folder, path])
            #expect(again.status == 1)
            #expect(again.stderr.contains("environment staging: its desired revision moved from r1 to r2"), "\(again.stderr)")
        }
    }

    @Test func aPlanIsRefusedAfterTheTreeChanged() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.appliedAndChanged(folder)
            let path = try Self.savePlan(folder)
            let redis = folder + "/policies/namespaces/demo/redis.yaml"
            try (String(contentsOfFile: redis, encoding: .utf8) + "# reviewed? no\n").write(toFile: redis, atomically: true, encoding: .utf8)
            try "apiVersion: neuvector.com/v1\nkind: NvSecurityRule\nmetadata:\n  name: nv.extra.demo\n  namespace: demo\nspec:\n  target:\n    selector:\n      name: nv.extra.demo\n      criteria:\n      - key: service\n        op: =\n        value: extra.demo\n      - key: domain\n        op: =\n        value: demo\n"
                .write(toFile: folder + "/policies/namespaces/demo/extra.yaml", atomically: true, encoding: .utf8)
            let before = try Self.held(folder, "nv.nginx-pod.demo")
            let apply = try CommandLineTests.run(["apply", "--repo", folder, path])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("the saved plan no longer matches (2 changes since it was made); nothing was recorded or pushed"), "\(apply.stderr)")
            #expect(apply.stderr.contains("policies/namespaces/demo/redis.yaml changed"))
            #expect(apply.stderr.contains("policies/namespaces/demo/extra.yaml was added to the repository"))
            #expect(try Self.held(folder, "nv.nginx-pod.demo") == before, "nothing pushed")
            let history = try CommandLineTests.run(["history", "--repo", folder])
            #expect(!history.stdout.contains("r2"), "nothing recorded: \(history.stdout)")
        }
    }

    @Test func aPlanIsRefusedAfterTheStoreChanged() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.appliedAndChanged(folder)
            let path = try Self.savePlan(folder)
            // someone else applied first: same tree, but the state file moved under the plan
            let other = try CommandLineTests.run(["apply", "--repo", folder])
            #expect(other.status == 0, "\(other.stderr)")
            let apply = try CommandLineTests.run(["apply", "--repo", folder, path])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("environment staging: its desired revision moved from r1 to r2 in the state file"), "\(apply.stderr)")
            #expect(apply.stderr.contains("cluster staging-eu-1: the state file's record changed (appliedHash"), "\(apply.stderr)")
        }
    }

    @Test func aPlanIsRefusedAfterAMemberChanged() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.appliedAndChanged(folder)
            let path = try Self.savePlan(folder)
            // changed by hand on the member after the review
            let file = folder + Self.member + "/namespaces/demo/nvsecurityrules/nv.redis-pod.demo.yaml"
            let text = try String(contentsOfFile: file, encoding: .utf8)
            try text.replacingOccurrences(of: "action: allow", with: "action: deny").write(toFile: file, atomically: true, encoding: .utf8)
            #expect(try String(contentsOfFile: file, encoding: .utf8) != text)
            let apply = try CommandLineTests.run(["apply", "--repo", folder, path])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("cluster staging-eu-1: what its member holds changed since the plan (NvSecurityRule/demo/nv.redis-pod.demo changed)"), "\(apply.stderr)")
            #expect(try !Self.held(folder, "nv.nginx-pod.demo").contains("tcp/8080"), "nothing pushed")
        }
    }

    @Test func anEditedOrForeignPlanIsRefused() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.appliedAndChanged(folder)
            let path = try Self.savePlan(folder)
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try text.replacingOccurrences(of: "\"update\"", with: "\"unchanged\"").write(toFile: path, atomically: true, encoding: .utf8)
            let edited = try CommandLineTests.run(["apply", "--repo", folder, path])
            #expect(edited.status == 1)
            #expect(edited.stderr.contains("was changed after plan wrote it"), "\(edited.stderr)")
            try "{\"format\": \"terraform\"}".write(toFile: path, atomically: true, encoding: .utf8)
            let foreign = try CommandLineTests.run(["apply", "--repo", folder, path])
            #expect(foreign.status == 1 && foreign.stderr.contains("is not a saved plan of this hub"), "\(foreign.stderr)")
            let missing = try CommandLineTests.run(["apply", "--repo", folder, folder + "/none.json"])
            #expect(missing.status == 1 && missing.stderr.contains("cannot read the saved plan"))
            let combined = try CommandLineTests.run(["apply", "--repo", folder, "--cluster", "staging-eu-1", path])
            #expect(combined.status == 64 && combined.stderr.contains("--cluster does not go with a saved plan"))
            let stored = try CommandLineTests.run(["plan", "--repo", folder, "--env", "staging", "--out", path])
            #expect(stored.status == 64 && stored.stderr.contains("--out saves a plan of the working tree"))
        }
    }

    /// Colour on a terminal (run under script(1), which gives the command a pseudo-terminal), never with
    /// NO_COLOR, --no-color or a pipe.
    @Test func colourOnATerminalOnly() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.appliedAndChanged(folder)
            let plan = CommandLineTests.binary + " plan --repo " + folder
            let escape = "\u{1B}[33m  ~ NvSecurityRule/demo/nv.nginx-pod.demo\u{1B}[0m"
            var environment = ProcessInfo.processInfo.environment
            environment["NO_COLOR"] = nil
            environment["TERM"] = "xterm"
            let terminal = try CommandLineTests.runProcess("/usr/bin/script", ["-qec", plan, "/dev/null"], environment: environment)
            #expect(terminal.stdout.contains(escape), "\(terminal.stdout)")
            #expect(terminal.stdout.contains("\u{1B}[31m0 to destroy\u{1B}[0m"))
            let flag = try CommandLineTests.runProcess("/usr/bin/script", ["-qec", plan + " --no-color", "/dev/null"], environment: environment)
            #expect(flag.stdout.contains("  ~ NvSecurityRule/demo/nv.nginx-pod.demo") && !flag.stdout.contains("\u{1B}["), "\(flag.stdout)")
            environment["NO_COLOR"] = "1"
            let variable = try CommandLineTests.runProcess("/usr/bin/script", ["-qec", plan, "/dev/null"], environment: environment)
            #expect(variable.stdout.contains("  ~ NvSecurityRule/demo/nv.nginx-pod.demo") && !variable.stdout.contains("\u{1B}["))
            let piped = try CommandLineTests.run(["plan", "--repo", folder])
            #expect(piped.status == 2 && piped.stdout.contains("  ~ NvSecurityRule/demo/nv.nginx-pod.demo") && !piped.stdout.contains("\u{1B}["))
        }
    }

    @Test func aPlanWithNothingToDoSaysSo() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            _ = try CommandLineTests.run(["apply", "--repo", folder])
            let plan = try CommandLineTests.run(["plan", "--repo", folder])
            #expect(plan.status == 0)
            #expect(plan.stdout.hasSuffix("Plan: no changes; every cluster planned is in step.\n"), "\(plan.stdout)")
        }
    }
}
