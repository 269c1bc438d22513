import Foundation
import HubEngine
import HubStore
import PolicyCore
import Testing

/// A copy of the example fleet (directory members under the copy) on an in-memory store and a manual
/// clock: the engine's operations with every time and every state change visible to the test.
struct Fleet {
    let folder: String
    let store = MemoryHubStore()
    let clock = ManualClock(now: 1_800_000_000)
    let events = EventRecorder()

    var engine: HubEngine { HubEngine(root: folder, store: .shared(store), clock: clock, log: events.log) }

    /// The project's own example repository (policies/ and clusters/).
    static let exampleRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Runs `body` on a fresh copy of the example with production's gates replaced by `gates`.
    /// `staging` and `production`: more fields of each environment (`freeze: [...]`), inside its flow mapping.
    static func with(gates: String = "{}", staging: String = "", production: String = "",
                     _ body: (Fleet) async throws -> Void) async throws {
        let folder = NSTemporaryDirectory() + "policyhub-engine-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for part in ["policies", "clusters"] {
            try FileManager.default.copyItem(atPath: exampleRoot + "/" + part, toPath: folder + "/" + part)
        }
        try """
            apiVersion: policyhub.dev/v1alpha1
            kind: EnvironmentList
            environments:
            - {name: staging, defaultPolicyMode: Monitor, minimumPolicyMode: Discover\(staging.isEmpty ? "" : ", " + staging)}
            - {name: production, promotesFrom: staging, defaultPolicyMode: Protect, minimumPolicyMode: Monitor, gates: \(gates)\(production.isEmpty ? "" : ", " + production)}
            """.write(toFile: folder + "/clusters/environments.yaml", atomically: true, encoding: .utf8)
        try await body(Fleet(folder: folder))
    }

    /// `apply`: records policies/ and pushes staging.
    func apply() async throws -> PushSummary {
        let applied = try engine.recordAndPlan(author: "alice")
        return try await PushRun.push(session: applied.session, plan: applied.plan, concurrency: 4)
    }
}

/// Every event an operation sent, in order.
final class EventRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    var log: EngineLog {
        EngineLog { event in
            let line: String
            switch event {
            case .diagnostic(let diagnostic): line = diagnostic.description
            case .note(let text): line = text
            case .progress(let done, let total, let text): line = "[\(done)/\(total)] \(text)"
            case .progressEnd: return
            case .waiting(let waiting): line = waiting.joined(separator: "\n")
            }
            self.lock.withLock { self.lines.append(line) }
        }
    }

    var all: [String] { lock.withLock { lines } }
}

@Suite struct EngineTests {
    @Test func theSoakGateCountsOnTheInjectedClock() async throws {
        try await Fleet.with(gates: "{minimumSoak: 1h}") { fleet in
            let pushed = try await fleet.apply()
            #expect(pushed.pushed == 1 && pushed.failures.isEmpty && pushed.untouched == 2)
            let appliedAt = try #require(try fleet.store.clusterState(named: "staging-eu-1")?.appliedAt)
            #expect(appliedAt == 1_800_000_000)
            let input = PromotionInput(target: "production", selectors: [.namespace("demo")], author: "bob")

            func gates() throws -> [GateFailure] { try fleet.engine.open(workingTree: .optional).preparePromotion(input).gateFailures }
            let demo = "NvSecurityRule/demo/nv.nginx-pod.demo, NvSecurityRule/demo/nv.node-pod.demo, NvSecurityRule/demo/nv.redis-pod.demo"
            #expect(try gates() == [GateFailure(.minimumSoak, "\(demo) have soaked 0 s of 3600 s on staging (3600 s to go)")])
            fleet.clock.advance(to: 1_800_000_000 + 1799)
            #expect(try gates() == [GateFailure(.minimumSoak, "\(demo) have soaked 1799 s of 3600 s on staging (1801 s to go)")])
            // refused as a value: which gate, and why
            let session = try fleet.engine.open(workingTree: .optional)
            do throws(EngineError) {
                _ = try session.commit(try session.preparePromotion(input))
                Issue.record("a promotion inside its soak time was recorded")
            } catch {
                guard case .gateFailed(let failures, let message) = error else {
                    Issue.record("expected gateFailed, got \(error)")
                    return
                }
                #expect(failures.map(\.gate) == [.minimumSoak])
                #expect(message.contains("1 gate of production failed; nothing was recorded"))
            }
            #expect(try fleet.store.desiredRevision(environment: "production") == nil)
            fleet.clock.advance(to: 1_800_000_000 + 3600)
            #expect(try gates().isEmpty)
            let recorded = try #require(try session.commit(try session.preparePromotion(input)))
            #expect(recorded.environment == "production" && recorded.createdAt == 1_800_000_000 + 3600)
            #expect(recorded.cause == "promote from staging r1: --namespace demo")
            #expect(fleet.events.all.contains("recorded revision \(recorded.id) of production (promote from staging r1: --namespace demo)"))
        }
    }

    /// SEMANTICS §4 (issue 15): the soak is counted per promoted document; a later change to another
    /// document of staging does not restart the soak of the ones it left alone.
    @Test func theSoakIsCountedPerPromotedDocument() async throws {
        try await Fleet.with(gates: "{minimumSoak: 1h}") { fleet in
            _ = try await fleet.apply()  // r1 at t0
            fleet.clock.advance(to: 1_800_000_000 + 1800)
            // payments changes in r2; demo stays as it was in r1
            let api = fleet.folder + "/policies/namespaces/payments/api.yaml"
            let text = try String(contentsOfFile: api, encoding: .utf8)
            #expect(text.contains("tcp/443"))
            try text.replacingOccurrences(of: "tcp/443", with: "tcp/8443").write(toFile: api, atomically: true, encoding: .utf8)
            let second = try await fleet.apply()
            #expect(second.pushed == 1 && second.failures.isEmpty)
            #expect(try fleet.store.clusterState(named: "staging-eu-1")?.appliedRevision == 2)
            fleet.clock.advance(to: 1_800_000_000 + 3600)
            func gates(_ selector: PromotionSelector) throws -> [GateFailure] {
                try fleet.engine.open(workingTree: .optional)
                    .preparePromotion(PromotionInput(target: "production", selectors: [selector], author: "bob")).gateFailures
            }
            // demo has been held as it is since r1, an hour ago: r2 did not restart its soak
            #expect(try gates(.namespace("demo")).isEmpty)
            // payments changed in r2, half an hour ago
            let payments = try gates(.namespace("payments")).map(\.description)
            #expect(payments.contains("minimumSoak: NvSecurityRule/payments/nv.api.payments has soaked 1800 s of 3600 s on staging (1800 s to go)"), "\(payments)")
            // demo alone promotes; payments waits
            let session = try fleet.engine.open(workingTree: .optional)
            let promoted = try #require(try session.commit(try session.preparePromotion(
                PromotionInput(target: "production", selectors: [.namespace("demo")], author: "bob"))))
            #expect(promoted.cause == "promote from staging r2: --namespace demo")
            fleet.clock.advance(to: 1_800_000_000 + 5400)
            #expect(try gates(.namespace("payments")).isEmpty)
        }
    }

    @Test func forcingPastAGateRecordsWhichGates() async throws {
        try await Fleet.with(gates: "{requireNoDrift: true, requireInSync: true}") { fleet in
            _ = try await fleet.apply()
            let session = try fleet.engine.open(workingTree: .optional)
            let forced = try session.preparePromotion(PromotionInput(target: "production", selectors: [.all], force: true, author: "bob", reason: "CAB-7"))
            // staging-eu-1 holds r1, so only the drift gate fails
            #expect(forced.gateFailures.map(\.gate) == [.requireNoDrift])
            #expect(!forced.added.isEmpty && forced.changed.isEmpty && forced.removed.isEmpty)
            let revision = try #require(try session.commit(forced))
            #expect(revision.cause.hasSuffix("(forced past: requireNoDrift; reason: CAB-7)"))
            // the same promotion again changes nothing and records nothing
            let again = try fleet.engine.open(workingTree: .optional)
                .preparePromotion(PromotionInput(target: "production", selectors: [.all], author: "bob"))
            #expect(again.isNoChange && again.gateFailures.isEmpty)
            #expect(try session.commit(again) == nil)
            #expect(try fleet.store.revisions(environment: "production").count == 1)
        }
    }

    @Test func aStaleBaseIsAConflictWithTheCurrentRevision() async throws {
        try await Fleet.with { fleet in
            _ = try await fleet.apply()
            let session = try fleet.engine.open(workingTree: .optional)
            let first = try #require(try session.commit(try session.preparePromotion(
                PromotionInput(target: "production", selectors: [.namespace("demo")], author: "a", baseRevision: nil))))
            do throws(EngineError) {
                _ = try session.preparePromotion(PromotionInput(target: "production", selectors: [.all], author: "b", baseRevision: 99))
                Issue.record("a stale base was accepted")
            } catch {
                guard case .conflict(let message, let current) = error else {
                    Issue.record("expected conflict, got \(error)")
                    return
                }
                #expect(current == first.id && message.contains("production is at r\(first.id), not r99"))
            }
        }
    }

    @Test func aBrokenWorkingTreeBlocksOnlyWhatRecordsIt() async throws {
        try await Fleet.with { fleet in
            _ = try await fleet.apply()
            try "apiVersion: neuvector.com/v1\nkind: NvClusterSecurityRule\nmetadata: {name: broken}\nspec: {target: 7}\n"
                .write(toFile: fleet.folder + "/policies/global/broken.yaml", atomically: true, encoding: .utf8)
            do throws(EngineError) {
                _ = try fleet.engine.recordAndPlan(author: "alice")
                Issue.record("an invalid tree was recorded")
            } catch {
                guard case .invalid(let message, let diagnostics) = error else {
                    Issue.record("expected invalid, got \(error)")
                    return
                }
                #expect(message == "the policy repository is invalid; nothing was recorded or pushed")
                #expect(diagnostics.contains { $0.isError && $0.location.file == "policies/global/broken.yaml" && $0.location.line == 4 })
            }
            #expect(try fleet.store.revisions(environment: nil).count == 1)
            // stored revisions still serve: a session, drift, a promotion
            let session = try fleet.engine.open(workingTree: .optional)
            #expect(session.policy == nil)
            #expect(session.treeProblem?.hasPrefix("policies/ is invalid (2 errors, first: policies/global/broken.yaml:4:") == true,
                    "\(session.treeProblem ?? "-")")
            #expect(fleet.events.all.contains { $0.hasPrefix("policyhub: warning: policies/ is invalid") })
            let report = try await session.driftReport()
            #expect(report.drift.isEmpty, "\(report.findings)")
            #expect(report.checked == ["staging-eu-1"] && report.untouched.map(\.cluster) == ["prod-eu-1", "prod-us-1"])
            let promoted = try session.commit(try session.preparePromotion(
                PromotionInput(target: "production", selectors: [.namespace("demo")], author: "bob")))
            #expect(promoted != nil)
        }
    }

    @Test func rollbackRecordsTheEarlierTreeAndRefusesAForeignRevision() async throws {
        try await Fleet.with { fleet in
            _ = try await fleet.apply()
            let session = try fleet.engine.open(workingTree: .optional)
            let promoted = try #require(try session.commit(try session.preparePromotion(
                PromotionInput(target: "production", selectors: [.namespace("demo")], author: "a"))))
            _ = try #require(try session.commit(try session.preparePromotion(
                PromotionInput(target: "production", selectors: [.all], author: "a"))))
            let (recorded, previous) = try session.rollback(environment: "production", to: promoted.id, author: "carol", reason: "r3 broke checkout")
            #expect(recorded.treeHash == promoted.treeHash && recorded.parent == previous?.id && recorded.cause == "rollback to r\(promoted.id) (reason: r3 broke checkout)")
            #expect(throws: EngineError.self) { try session.rollback(environment: "production", to: 1, author: "carol", reason: "x") }
            #expect(throws: EngineError.self) { try session.rollback(environment: "nowhere", to: 1, author: "carol", reason: "x") }
            #expect(throws: EngineError.self) { try session.rollback(environment: "production", to: promoted.id, author: "carol", reason: " ") }
        }
    }

    @Test func documentWritesAreLocatedInTheBodyAndKeepTheFileInStep() async throws {
        try await Fleet.with { fleet in
            _ = try await fleet.apply()
            let session = try fleet.engine.open(workingTree: .optional)
            let identity = ObjectIdentity(kind: .clusterSecurityRule, namespace: "", name: "api-rule")
            let bad = "apiVersion: neuvector.com/v1\nkind: NvClusterSecurityRule\nmetadata: {name: api-rule}\nspec:\n  target: {selector: {name: containers, criteria: [{key: container, op: \"=\", value: \"*\"}]}}\n  process:\n  - {action: maybe, name: nc, path: /bin/nc}\n"
            do throws(EngineError) {
                _ = try session.writeDocument(identity, yaml: Array(bad.utf8), precondition: nil, author: "admin")
                Issue.record("an invalid document was written")
            } catch {
                #expect(error.diagnostics.contains { $0.location.file == "body" && $0.location.line == 7 }, "\(error.diagnostics)")
            }
            #expect(!FileManager.default.fileExists(atPath: fleet.folder + "/policies/global/api-rule.yaml"))
            let good = bad.replacingOccurrences(of: "maybe", with: "deny")
            let written = try session.writeDocument(identity, yaml: Array(good.utf8), precondition: .etag("absent"), author: "admin")
            #expect(!written.unchanged && written.source == "policies/global/api-rule.yaml")
            #expect(FileManager.default.fileExists(atPath: fleet.folder + "/policies/global/api-rule.yaml"))
            let again = try session.writeDocument(identity, yaml: Array(good.utf8), precondition: nil, author: "admin")
            #expect(again.unchanged && again.revision == written.revision)
            // the ETag the caller saw is no longer the document's
            #expect(throws: EngineError.self) {
                try session.writeDocument(identity, yaml: nil, precondition: .etag("absent"), author: "admin")
            }
            let removed = try session.writeDocument(identity, yaml: nil, precondition: .etag(written.hash ?? ""), author: "admin")
            #expect(removed.hash == nil && !FileManager.default.fileExists(atPath: fleet.folder + "/policies/global/api-rule.yaml"))
        }
    }
}
