import Foundation
import Testing

/// SEMANTICS §7: every view of effective policy can show the working tree, an environment's desired
/// revision or a stored revision, and says in its first line which one it shows.
@Suite struct PolicyViewTests {
    typealias CLI = CommandLineTests

    /// Staging applied (r1), then only demo promoted to production (r2).
    static func promotedDemo(_ body: (String) throws -> Void) throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            #expect(try CLI.run(["promote", "--repo", folder, "--to", "production", "--namespace", "demo", "--force", "--reason", "override in a test"]).status == 0)
            try body(folder)
        }
    }

    @Test func explainSaysWhichPolicyItShowsAndAnswersWhatProductionHolds() throws {
        try Self.promotedDemo { folder in
            let query = ["--repo", folder, "--cluster", "prod-eu-1", "--target", "nv.node-pod.demo", "--process", "/usr/bin/nc"]
            let preview = try CLI.run(["explain"] + query)
            #expect(preview.stdout.hasPrefix("cluster prod-eu-1 (environment production), from the working tree policies/"), "\(preview.stdout)")
            #expect(preview.stdout.contains("decision: DENY"))
            // production holds only demo's documents: the global nc deny is not there yet
            let held = try CLI.run(["explain", "--env", "production"] + query)
            #expect(held.status == 0, "\(held.stderr)")
            #expect(held.stdout.hasPrefix("cluster prod-eu-1 (environment production), from what production holds: its desired revision r2"))
            #expect(!held.stdout.contains("decision: DENY"), "\(held.stdout)")
            let json = try CLI.run(["explain", "--revision", "r2", "--output", "json"] + query)
            #expect(json.stdout.contains(#""revision": "r2""#), "\(json.stdout)")
            let wrong = try CLI.run(["explain", "--env", "staging"] + query)
            #expect(wrong.status == 1)
            #expect(wrong.stderr.contains("use --env production"))
        }
    }

    @Test func explainLiveReadsWhatTheMemberHoldsAndSaysWhenItDiffers() throws {
        try Self.promotedDemo { folder in
            let query = ["--repo", folder, "--cluster", "staging-eu-1", "--target", "nv.node-pod.demo", "--process", "/usr/bin/nc"]
            let held = try CLI.run(["explain", "--live"] + query)
            #expect(held.status == 0, "\(held.stderr)")
            #expect(held.stdout.hasPrefix("cluster staging-eu-1 (environment staging), from what staging-eu-1 holds now (read from the member)"))
            #expect(held.stdout.contains("decision: DENY"))
            #expect(held.stdout.contains("from policies/namespaces/demo/node.yaml in NvSecurityRule/demo/nv.node-pod.demo"), "\(held.stdout)")
            #expect(!held.stdout.contains("the hub wants"))
            // someone edits the member by hand: the live answer changes, the working tree's does not, and it says so
            let file = folder + "/.policyhub/gitops/staging-eu-1/namespaces/demo/nvsecurityrules/nv.node-pod.demo.yaml"
            try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(of: "path: /usr/bin/nc\n", with: "path: /usr/bin/ncx\n")
                .write(toFile: file, atomically: true, encoding: .utf8)
            let edited = try CLI.run(["explain", "--live", "--output", "json"] + query)
            #expect(edited.stdout.contains(#""decision": "no-rule""#), "\(edited.stdout)")
            #expect(edited.stdout.contains("the hub wants DENY here (r1 of staging)"))
            #expect(try CLI.run(["explain"] + query).stdout.contains("decision: DENY"))
            #expect(try CLI.run(["explain", "--live", "--env", "staging"] + query).status == 64)
            let unknown = try CLI.run(["explain", "--live", "--repo", folder, "--cluster", "nowhere", "--target", "x", "--process", "/a"])
            #expect(unknown.status == 1 && unknown.stderr.contains("unknown cluster 'nowhere'"))
        }
    }

    @Test func renderOfAStoredRevisionIsThatRevision() throws {
        try Self.promotedDemo { folder in
            let stored = try CLI.run(["render", "--repo", folder, "--revision", "r2", "--output", "json"])
            #expect(stored.status == 0, "\(stored.stderr)")
            #expect(stored.stderr.hasPrefix("policyhub render: stored revision r2 of production"))
            let clusters = try #require(try JSONSerialization.jsonObject(with: Data(stored.stdout.utf8)) as? [[String: Any]])
            #expect(Set(clusters.compactMap { $0["cluster"] as? String }) == ["prod-eu-1", "prod-us-1"])
            #expect(!stored.stdout.contains("forbidden-processes") && stored.stdout.contains("nv.nginx-pod.demo"))
            #expect(stored.stdout.contains(#""policyhub.dev/revision": "r2""#))
            let preview = try CLI.run(["render", "--repo", folder, "--cluster", "prod-eu-1"])
            #expect(preview.stderr.hasPrefix("policyhub render: the working tree policies/"))
            #expect(preview.stdout.contains("forbidden-processes"))
            let missing = try CLI.run(["render", "--repo", folder, "--revision", "r9"])
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("there is no revision r9 (the newest is r2)"))
            #expect(try CLI.run(["render", "--repo", folder, "--env", "production", "--revision", "r1"]).status == 64)
        }
    }

    @Test func diffOfTwoRevisionsPerCluster() throws {
        try Self.promotedDemo { folder in
            #expect(try CLI.run(["promote", "--repo", folder, "--to", "production", "--all", "--force", "--reason", "override in a test"]).status == 0)
            let diff = try CLI.run(["diff", "--repo", folder, "r2", "r3"])
            #expect(diff.status == 2, "\(diff.stderr)")
            #expect(diff.stdout.hasPrefix("difference of effective policy from r2 to r3 of production, per cluster:"))
            #expect(diff.stdout.contains("prod-eu-1 (production):\n  + NvAdmissionControlSecurityRule//local\n  + NvClusterSecurityRule//baseline-defaults\n") && diff.stdout.contains("  + NvClusterSecurityRule//forbidden-processes\n"), "\(diff.stdout)")
            let same = try CLI.run(["diff", "--repo", folder, "r3", "r3"])
            #expect(same.status == 0)
            #expect(same.stdout.contains("no change"))
        }
    }

    @Test func planSaysWhatItPlans() throws {
        try Self.promotedDemo { folder in
            let plan = try CLI.run(["plan", "--repo", folder, "--env", "production"])
            #expect(plan.status == 2, "\(plan.stderr)")
            #expect(plan.stdout.hasPrefix("plan of what production holds: its desired revision r2, against the state file"), "\(plan.stdout)")
            #expect(!plan.stdout.contains("staging-eu-1"))
            let all = try CLI.run(["plan", "--repo", folder])
            #expect(all.stdout.hasPrefix("plan of the working tree policies/ for staging"))
        }
    }
}
