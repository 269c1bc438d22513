import Foundation
import HubEngine
import HubStore
import PolicyCore
import Testing

/// Change control on promotion (issue 15): freeze windows on a manual clock, reasons for overrides and
/// rollbacks, promoting an earlier revision, a rollback's dry run. The clock starts on Friday 2027-01-15
/// at 08:00 UTC (1,800,000,000).
@Suite struct ChangeControlTests {
    static let fridayMorning = #"freeze: [{schedule: "0 8 * * 5", duration: 2h}]"#

    @Test func aFreezeRefusesPromotionsAndPushesUntilItClosesButNotRollbacks() async throws {
        try await Fleet.with(production: Self.fridayMorning) { fleet in
            _ = try await fleet.apply()  // staging has no freeze
            let input = PromotionInput(target: "production", selectors: [.all], author: "bob")
            let prepared = try fleet.engine.open(workingTree: .optional).preparePromotion(input)
            #expect(prepared.gateFailures == [GateFailure(.freeze, #"production is frozen from 2027-01-15T08:00:00Z until 2027-01-15T10:00:00Z (freeze "0 8 * * 5" for 2h)"#)])
            #expect(throws: EngineError.self) { try fleet.engine.open(workingTree: .optional).commit(prepared) }
            // forcing takes a reason
            var forced = input
            forced.force = true
            let noReason = try fleet.engine.open(workingTree: .optional).preparePromotion(forced)
            do throws(EngineError) {
                _ = try fleet.engine.open(workingTree: .optional).commit(noReason)
                Issue.record("forced without a reason")
            } catch {
                #expect(error.message.hasPrefix("--force needs --reason TEXT"), "\(error.message)")
            }
            #expect(try fleet.store.desiredRevision(environment: "production") == nil)
            forced.reason = "CAB-1234: hotfix"
            let session = try fleet.engine.open(workingTree: .optional)
            let promoted = try #require(try session.commit(try session.preparePromotion(forced)))
            #expect(promoted.cause == "promote from staging r1: --all (forced past: freeze; reason: CAB-1234: hotfix)")
            #expect(try fleet.store.auditLog(limit: 1).first?.detail.contains("reason: CAB-1234: hotfix") == true)

            // the push waits for the window to close, unless forced
            let production = session.fleet.clusters.filter { $0.environment == "production" }
            let frozen = try PushPlan.make(session: fleet.engine.open(workingTree: .optional), clusters: production, rootRevision: nil)
            #expect(frozen.toPush.isEmpty && frozen.untouched.count == production.count)
            #expect(frozen.untouched.first?.reason.contains("is frozen until 2027-01-15T10:00:00Z") == true)
            let overridden = try PushPlan.make(session: fleet.engine.open(workingTree: .optional), clusters: production,
                                               rootRevision: nil, ignoringFreeze: true)
            #expect(overridden.toPush.count == production.count)
            fleet.clock.advance(to: 1_800_000_000 + 7200)
            let open = try PushPlan.make(session: fleet.engine.open(workingTree: .optional), clusters: production, rootRevision: nil)
            #expect(open.toPush.count == production.count && open.untouched.isEmpty)
            try await fleet.engine.open(workingTree: .optional).pushEnvironment("production", rootRevision: nil, concurrency: 2)

            // next Friday, inside the window again: a rollback is recorded and pushed
            fleet.clock.advance(to: 1_800_000_000 + 7 * 86_400 + 1800)
            let later = try fleet.engine.open(workingTree: .optional)
            #expect(throws: EngineError.self) { try later.rollback(environment: "production", to: promoted.id, author: "carol", reason: "") }
            let (rolledBack, _) = try later.rollback(environment: "production", to: promoted.id, author: "carol", reason: "INC-1")
            #expect(rolledBack.cause == "rollback to r\(promoted.id) (reason: INC-1)")
            let states = try fleet.store.clusterStates()
            for cluster in production {
                #expect(states.first { $0.cluster == cluster.name }?.appliedRevision == promoted.id)
            }
        }
    }

    @Test func aFrozenRootEnvironmentRecordsNothingUnlessForcedWithAReason() async throws {
        try await Fleet.with(staging: Self.fridayMorning) { fleet in
            do throws(EngineError) {
                _ = try fleet.engine.recordAndPlan(author: "alice")
                Issue.record("recorded inside a freeze")
            } catch {
                if case .gateFailed(let failures, _) = error {
                    #expect(failures.map(\.gate) == [.freeze])
                } else {
                    Issue.record("not a gate failure: \(error)")
                }
            }
            #expect(try fleet.store.revisions(environment: nil).isEmpty)
            #expect(throws: EngineError.self) { try fleet.engine.recordAndPlan(author: "alice", force: true) }
            let applied = try fleet.engine.recordAndPlan(author: "alice", force: true, reason: "CAB-9")
            #expect(applied.rootRevision.cause == "apply (forced past: freeze; reason: CAB-9)")
            #expect(applied.plan.toPush.count == 1)
            // two hours later the window has closed; deny wins while any window is open
            fleet.clock.advance(to: 1_800_000_000 + 7200)
            let environment = try #require(try fleet.engine.open(workingTree: .optional).fleet.environment(named: "staging"))
            #expect(environment.frozen(at: 1_800_000_000 + 7200) == nil)
            var two = environment
            two.freeze.append(FreezeWindow(schedule: try CronExpression("0 9 * * *"), durationSeconds: 3600, durationText: "1h"))
            #expect(two.frozen(at: 1_800_000_000 + 3600 + 60)?.window.durationText == "2h")
            #expect(two.frozen(at: 1_800_000_000 + 7200 + 60) == nil)
        }
    }

    @Test func aBadFreezeWindowIsALocatedError() throws {
        let folder = NSTemporaryDirectory() + "policyhub-freeze-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        do {
            for part in ["policies", "clusters"] {
                try FileManager.default.copyItem(atPath: Fleet.exampleRoot + "/" + part, toPath: folder + "/" + part)
            }
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: EnvironmentList
                environments:
                - name: staging
                - name: production
                  promotesFrom: staging
                  freeze:
                  - {schedule: "0 25 * * *", duration: 2h}
                  - {schedule: "0 8 * * 5", duration: soon}
                  - {schedule: "0 8 * * 5"}
                """.write(toFile: folder + "/clusters/environments.yaml", atomically: true, encoding: .utf8)
            let errors = Workspace.open(root: folder).diagnostics.filter(\.isError).map(\.description)
            #expect(errors.contains { $0.hasPrefix("clusters/environments.yaml:8:16: error: freeze schedule '0 25 * * *'") }, "\(errors)")
            #expect(errors.contains("clusters/environments.yaml:9:39: error: freeze duration 'soon' is not a duration such as 30m, 2h or 1d"), "\(errors)")
            #expect(errors.contains { $0.hasPrefix("clusters/environments.yaml:10:5: error:") && $0.contains("duration") }, "\(errors)")
        }
    }

    /// r1 from the example, r2 with the SSH egress rule's priority lowered; both pushed.
    static func twoRevisionsOfStaging(_ fleet: Fleet) async throws {
            _ = try await fleet.apply()
            let file = fleet.folder + "/policies/global/egress-ssh.yaml"
            let text = try String(contentsOfFile: file, encoding: .utf8)
            try text.replacingOccurrences(of: "priority: 100", with: "priority: 90").write(toFile: file, atomically: true, encoding: .utf8)
            _ = try await fleet.apply()
    }

    @Test func aPromotionCanCarryAnEarlierRevisionOfTheSource() async throws {
        try await Fleet.with { fleet in
            try await Self.twoRevisionsOfStaging(fleet)
            let session = try fleet.engine.open(workingTree: .optional)
            let fromFirst = try session.preparePromotion(PromotionInput(target: "production", selectors: [.all], author: "bob", from: "r1"))
            #expect(fromFirst.sourceRevision.id == 1)
            #expect(try session.preparePromotion(PromotionInput(target: "production", selectors: [.all], author: "bob")).sourceRevision.id == 2)
            let promoted = try #require(try session.commit(fromFirst))
            #expect(promoted.cause.hasPrefix("promote from staging r1: --all"))
            for (from, message) in [(String(promoted.id), "is neither a revision"), ("r\(promoted.id)", "is a revision of production, not of staging"),
                                    ("r99", "revision 99 does not exist"), ("abcdef0", "no revision of staging was recorded from commit abcdef0")] {
                do throws(EngineError) {
                    _ = try session.preparePromotion(PromotionInput(target: "production", selectors: [.all], author: "bob", from: from))
                    Issue.record("--from \(from) was taken")
                } catch {
                    #expect(error.message.contains(message), "\(from): \(error.message)")
                }
            }
        }
    }

    @Test func aRollbackDryRunShowsTheChangeAndRecordsNothing() async throws {
        try await Fleet.with { fleet in
            try await Self.twoRevisionsOfStaging(fleet)
            let session = try fleet.engine.open(workingTree: .optional)
            let (lines, difference) = try session.rollbackPreview(environment: "staging", to: 1)
            #expect(lines == ["~ NvClusterSecurityRule//deny-ssh-to-external"])
            #expect(difference.text.contains("staging-eu-1 (staging):"), "\(difference.text)")
            #expect(difference.text.contains("priority"), "\(difference.text)")
            #expect(try fleet.store.revisions(environment: nil).count == 2)
            let (same, _) = try session.rollbackPreview(environment: "staging", to: 2)
            #expect(same == ["staging already holds what r2 holds; a rollback would change nothing"])
        }
    }
}

/// A document written through the API changes its own lines of its file and nothing else (issue 15, item 4).
@Suite struct DocumentEditTests {
    @Test func aWriteChangesOnlyItsDocumentInAMultiDocumentFile() async throws {
        try await Fleet.with { fleet in
            let file = fleet.folder + "/policies/namespaces/demo/pair.yaml"
            let node = try String(contentsOfFile: fleet.folder + "/policies/namespaces/demo/node.yaml", encoding: .utf8)
            let redis = try String(contentsOfFile: fleet.folder + "/policies/namespaces/demo/redis.yaml", encoding: .utf8)
            try FileManager.default.removeItem(atPath: fleet.folder + "/policies/namespaces/demo/node.yaml")
            try FileManager.default.removeItem(atPath: fleet.folder + "/policies/namespaces/demo/redis.yaml")
            let original = "# two documents, each with its comments\n" + node + "---\n# redis, kept as written\n" + redis
            try original.write(toFile: file, atomically: true, encoding: .utf8)
            _ = try await fleet.apply()
            let session = try fleet.engine.open(workingTree: .optional)
            let body = redis.split(separator: "\n", omittingEmptySubsequences: false).drop { $0.hasPrefix("#") }
                .joined(separator: "\n").replacingOccurrences(of: "tcp/6379", with: "tcp/6380")
            #expect(body != redis.split(separator: "\n", omittingEmptySubsequences: false).drop { $0.hasPrefix("#") }.joined(separator: "\n"))
            let identity = ObjectIdentity(kind: .securityRule, namespace: "demo", name: "nv.redis-pod.demo")
            let written = try session.writeDocument(identity, yaml: Array(body.utf8), precondition: nil, author: "api")
            #expect(!written.unchanged && written.source == "policies/namespaces/demo/pair.yaml")
            let after = try String(contentsOfFile: file, encoding: .utf8)
            // the node document and every comment are byte for byte as they were; only redis's port line moved
            #expect(after.hasPrefix("# two documents, each with its comments\n" + node + "---\n# redis, kept as written\n"), "\(after)")
            #expect(after.contains("tcp/6380") && after.components(separatedBy: "tcp/6379").count == node.components(separatedBy: "tcp/6379").count)
            #expect(after.split(separator: "\n").count == original.split(separator: "\n").count)
            // a removal takes its document out and leaves the other as written
            let removed = try fleet.engine.open(workingTree: .optional).writeDocument(identity, yaml: nil, precondition: nil, author: "api")
            #expect(!removed.unchanged)
            #expect(try String(contentsOfFile: file, encoding: .utf8) == "# two documents, each with its comments\n" + node)
        }
    }
}
