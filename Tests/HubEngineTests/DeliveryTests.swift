import Foundation
import HubEngine
import HubStore
import PolicyCore
import Testing

/// Per-object pushes, drift that puts a cluster out of step, and what a report for some clusters keeps.
@Suite struct DeliveryTests {
    static let member = "/.policyhub/gitops/staging-eu-1"

    /// Replaces `old` with `new` in a repository file.
    static func edit(_ fleet: Fleet, _ file: String, _ old: String, _ new: String) throws {
        let path = fleet.folder + "/" + file
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains(old), "\(file) has no \(old)")
        try text.replacingOccurrences(of: old, with: new).write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func revisionAnnotation(_ fleet: Fleet, _ relative: String) throws -> String? {
        let text = try String(contentsOfFile: fleet.folder + member + "/" + relative, encoding: .utf8)
        return text.split(separator: "\n").first { $0.contains("policyhub.dev/revision:") }
            .map { String($0.split(separator: ":").last ?? "").trimmingCharacters(in: .whitespaces) }
    }

    @Test func aOneDocumentChangeRewritesOnlyThatObjectAndKeepsTheOthersRevision() async throws {
        try await Fleet.with { fleet in
            _ = try await fleet.apply()
            let redis = "namespaces/demo/nvsecurityrules/nv.redis-pod.demo.yaml"
            let api = "namespaces/payments/nvsecurityrules/nv.api.payments.yaml"
            #expect(try Self.revisionAnnotation(fleet, redis) == "r1")
            try Self.edit(fleet, "policies/namespaces/payments/api.yaml", "tcp/8080", "tcp/8081")
            fleet.clock.advance(to: 1_800_000_100)
            let second = try await fleet.apply()
            #expect(second.created == 0 && second.updated == 1 && second.deleted == 0, "\(second)")
            #expect(try Self.revisionAnnotation(fleet, api) == "r2")
            #expect(try Self.revisionAnnotation(fleet, redis) == "r1")  // unchanged: not rewritten
            let applied = try fleet.store.appliedObjects(cluster: "staging-eu-1")
            #expect(applied[ObjectIdentity(kind: .securityRule, namespace: "payments", name: "nv.api.payments")]?.revision == 2)
            #expect(applied[ObjectIdentity(kind: .securityRule, namespace: "demo", name: "nv.redis-pod.demo")]?.revision == 1)
            #expect(try fleet.store.clusterState(named: "staging-eu-1")?.appliedRevision == 2)
        }
    }

    @Test func driftPutsTheClusterOutOfStepAndThePlainNextPushRestoresIt() async throws {
        try await Fleet.with { fleet in
            _ = try await fleet.apply()
            let root = fleet.folder + Self.member
            try FileManager.default.removeItem(atPath: root + "/namespaces/demo/nvsecurityrules/nv.redis-pod.demo.yaml")
            let nginx = root + "/namespaces/demo/nvsecurityrules/nv.nginx-pod.demo.yaml"
            try (try String(contentsOfFile: nginx, encoding: .utf8)).replacingOccurrences(of: "policymode: Protect", with: "policymode: Discover")
                .write(toFile: nginx, atomically: true, encoding: .utf8)
            let extra = (try String(contentsOfFile: nginx, encoding: .utf8)).replacingOccurrences(of: "nv.nginx-pod.demo", with: "nv.planted.demo")
            try extra.write(toFile: root + "/namespaces/demo/nvsecurityrules/nv.planted.demo.yaml", atomically: true, encoding: .utf8)

            let session = try fleet.engine.open(workingTree: .optional)
            let report = try await session.driftReport()
            #expect(Set(report.drift.map(\.kind)) == [.missing, .modified, .extra], "\(report.drift)")
            let state = try #require(try fleet.store.clusterState(named: "staging-eu-1"))
            #expect(state.outOfStep?.hasPrefix("drift found at ") == true && state.outOfStep?.contains("1 missing, 1 modified, 1 extra") == true,
                    "\(state.outOfStep ?? "-")")
            let status = try ClusterStatus.all(fleet: session.fleet, store: fleet.store, targets: session.targetKey)
            #expect(status.first { $0.cluster == "staging-eu-1" }?.inStep == false)

            let repaired = try await fleet.apply()  // a plain apply: no --repair
            #expect(repaired.pushed == 1 && repaired.created == 1 && repaired.updated == 1 && repaired.deleted == 1, "\(repaired)")
            #expect(try fleet.store.clusterState(named: "staging-eu-1")?.outOfStep == nil)
            let again = try await fleet.engine.open(workingTree: .optional).driftReport()
            #expect(again.drift.isEmpty, "\(again.drift)")
            #expect(try await fleet.apply().pushed == 0)
        }
    }

    @Test func aReportForOneClusterKeepsTheOthersFindingsAndNoRecordStoresNothing() async throws {
        try await Fleet.with { fleet in
            // a second staging member
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata: {name: staging-us-1, labels: {region: us, tier: silver}}
                spec: {environment: staging, target: {directory: {path: .policyhub/gitops/staging-us-1}}}
                """.write(toFile: fleet.folder + "/clusters/staging-us-1.yaml", atomically: true, encoding: .utf8)
            _ = try await fleet.apply()
            for member in ["staging-eu-1", "staging-us-1"] {
                try FileManager.default.removeItem(atPath: fleet.folder + "/.policyhub/gitops/\(member)/namespaces/demo/nvsecurityrules/nv.redis-pod.demo.yaml")
            }
            let session = try fleet.engine.open(workingTree: .optional)
            let first = try await session.driftReport()
            #expect(Set(first.drift.map(\.cluster)) == ["staging-eu-1", "staging-us-1"])

            // staging-eu-1 restored, then looked at alone: staging-us-1's finding is neither resolved nor lost
            _ = try await fleet.apply()
            #expect(try fleet.store.clusterState(named: "staging-us-1")?.outOfStep == nil)  // both were pushed
            try FileManager.default.removeItem(atPath: fleet.folder + "/.policyhub/gitops/staging-us-1/namespaces/demo/nvsecurityrules/nv.redis-pod.demo.yaml")
            _ = try await session.driftReport(clusters: ["staging-us-1"])
            let reportsBefore = try fleet.store.driftReports(limit: 100).count
            let unrecorded = try await session.driftReport(clusters: ["staging-eu-1"], record: false)
            #expect(unrecorded.drift.isEmpty && unrecorded.id == 0)
            #expect(try fleet.store.driftReports(limit: 100).count == reportsBefore)
            let scoped = try await session.driftReport(clusters: ["staging-eu-1"])
            #expect(scoped.drift.isEmpty)
            #expect(!scoped.resolved.contains { $0.hasPrefix("staging-us-1|") })
            let stored = try #require(try fleet.store.driftReports(limit: 1).first)
            #expect(stored.json.contains("\"cluster\":\"staging-us-1\""), "the scoped report dropped staging-us-1's finding")
            #expect(stored.findings == 1)
            // the environment's drift check still sees staging-us-1's finding (the requireNoDrift gate)
            #expect(try fleet.store.latestDriftCheck(environment: "staging")?.findings == 1)
            let full = try await session.driftReport()
            #expect(full.drift.map(\.cluster) == ["staging-us-1"])
            #expect(full.newDrift == 0)  // the same finding as before, not new
        }
    }

    @Test func anEdgeDifferenceIsDatedFromWhenTheDocumentFirstDiffered() async throws {
        try await Fleet.with { fleet in
            _ = try await fleet.apply()  // r1 at 1_800_000_000
            let session = try fleet.engine.open(workingTree: .optional)
            _ = try #require(try session.commit(try session.preparePromotion(
                PromotionInput(target: "production", selectors: [.all], author: "bob"))))
            fleet.clock.advance(to: 1_800_001_000)
            try Self.edit(fleet, "policies/namespaces/payments/api.yaml", "tcp/8080", "tcp/8081")
            _ = try await fleet.apply()  // r3: payments/api differs from here on
            fleet.clock.advance(to: 1_800_002_000)
            try Self.edit(fleet, "policies/namespaces/demo/redis.yaml", "tcp/6379", "tcp/6380")
            _ = try await fleet.apply()  // r4: demo/redis differs from here on
            let edges = try await fleet.engine.open(workingTree: .optional).driftReport().edges
            let api = try #require(edges.first { $0.identity.name == "nv.api.payments" })
            let redis = try #require(edges.first { $0.identity.name == "nv.redis-pod.demo" })
            #expect(api.since == 1_800_001_000)
            #expect(redis.since == 1_800_002_000)
        }
    }

    @Test func aNewTargetIsNotInStepUntilPushedThere() async throws {
        try await Fleet.with { fleet in
            _ = try await fleet.apply()
            try Self.edit(fleet, "clusters/staging-eu-1.yaml", ".policyhub/gitops/staging-eu-1", ".policyhub/gitops/staging-eu-1-new")
            let session = try fleet.engine.open(workingTree: .optional)
            let row = try #require(try ClusterStatus.all(fleet: session.fleet, store: fleet.store, targets: session.targetKey)
                .first { $0.cluster == "staging-eu-1" })
            #expect(!row.inStep && row.outOfStep == "its target changed since its last push")
            let pushed = try await fleet.apply()
            #expect(pushed.pushed == 1 && pushed.created > 0, "\(pushed)")
            #expect(FileManager.default.fileExists(atPath: fleet.folder + "/.policyhub/gitops/staging-eu-1-new/namespaces/demo/nvsecurityrules/nv.redis-pod.demo.yaml"))
        }
    }
}
