import Foundation
import HubService
import HubTransport
import HubStore
import PolicyCore
import PolicyHubTesting
import Testing

/// The daemon's tamper detection: hand-made changes put back on `selfHeal` environments, reported at once
/// on the others, each repair audited.
@Suite(.serialized) struct SelfHealTests {
    typealias CLI = CommandLineTests

    static func waitFor(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(100_000)
        }
        return try condition()
    }

    /// The example fleet with staging healing itself, a Kubernetes member `nv` of staging on a started API double
    /// (returned: the caller stops it), staging applied, promoted to production and production's first revision pushed.
    static func selfHealingFleet(in folder: String) throws -> KubernetesAPIDouble {
        try Repo.copyExample(to: folder)
        try """
            apiVersion: policyhub.dev/v1alpha1
            kind: EnvironmentList
            environments:
            - {name: staging, defaultPolicyMode: Monitor, minimumPolicyMode: Discover, selfHeal: true}
            - {name: production, promotesFrom: staging, defaultPolicyMode: Protect, minimumPolicyMode: Monitor}
            """.write(toFile: folder + "/clusters/environments.yaml", atomically: true, encoding: .utf8)
        let pki = try TestPKI.make(in: folder + "/pki")
        let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["hub-token"], clientCertificates: false)
        try KubernetesApplyTests.addMember("nv", kubeconfig: "kubeconfig.yaml", in: folder, double: double, pki: pki)
        #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
        #expect(try CLI.run(["promote", "--repo", folder, "--to", "production", "--all", "--force", "--reason", "override in a test"]).status == 0)
        #expect(try CLI.run(["apply", "--repo", folder]).status == 0)  // pushes production's first revision
        return double
    }

    @Test func handMadeChangesAreRestoredOnSelfHealAndReportedElsewhere() async throws {
        try await Repo.withTemporaryFolderAsync { folder in
            let double = try Self.selfHealingFleet(in: folder)
            defer { double.stop() }
            let made = TokenFile.newToken()
            try TokenFile.append(path: folder + "/tokens.yaml", name: "viewer", role: .viewer, namespaces: [], sha256: made.sha256)
            try """
                listen: 127.0.0.1:0
                tokens: tokens.yaml
                schedules: {selfHealInterval: 1s}
                """.write(toFile: folder + "/hub.yaml", atomically: true, encoding: .utf8)
            let serve = try ServeTests.ServeProcess(config: folder + "/hub.yaml")
            _ = try await serve.port()
            defer { _ = serve.terminate() }

            // on the directory member of staging: one deleted, one edited, one added by hand
            let rules = folder + "/.policyhub/gitops/staging-eu-1/namespaces/demo/nvsecurityrules"
            let redis = rules + "/nv.redis-pod.demo.yaml", nginx = rules + "/nv.nginx-pod.demo.yaml"
            let original = try String(contentsOfFile: nginx, encoding: .utf8)
            try FileManager.default.removeItem(atPath: redis)
            try original.replacingOccurrences(of: "policymode: Protect", with: "policymode: Discover").write(toFile: nginx, atomically: true, encoding: .utf8)
            try original.replacingOccurrences(of: "nv.nginx-pod.demo", with: "nv.planted.demo")
                .write(toFile: rules + "/nv.planted.demo.yaml", atomically: true, encoding: .utf8)
            // on the Kubernetes member of staging: one deleted with kubectl's verb
            let deleted = ObjectIdentity(kind: .securityRule, namespace: "demo", name: "nv.redis-pod.demo")
            #expect(double.objects(cluster: "nv")[deleted] != nil)
            double.remove(deleted, cluster: "nv")
            // on production (no selfHeal): a file deleted by hand is reported, never restored
            let production = folder + "/.policyhub/gitops/prod-eu-1/namespaces/demo/nvsecurityrules/nv.redis-pod.demo.yaml"
            try FileManager.default.removeItem(atPath: production)

            let restored = try Self.waitFor(15) {
                FileManager.default.fileExists(atPath: redis) && !FileManager.default.fileExists(atPath: rules + "/nv.planted.demo.yaml")
                    && (try? String(contentsOfFile: nginx, encoding: .utf8)) == original && double.objects(cluster: "nv")[deleted] != nil
            }
            #expect(restored, "\(serve.log.suffix(2000))")
            #expect(!FileManager.default.fileExists(atPath: production))
            let store = try SQLiteHubStore(path: folder + "/.policyhub/state.sqlite")
            // the repair's audit line follows the push that put the files back: wait for it on a loaded machine
            func repairAudit() throws -> [AuditEntry] { try store.auditLog(limit: 100).filter { $0.actor == "self-heal" && $0.action == "repair" } }
            _ = try Self.waitFor(10) { try repairAudit().count >= 2 && serve.log.contains("self-heal: restored staging-eu-1") }
            let repairs = try repairAudit()
            #expect(repairs.contains { $0.detail.hasPrefix("restored staging-eu-1: ") && $0.detail.contains("missing NvSecurityRule/demo/nv.redis-pod.demo") },
                    "\(repairs)")
            #expect(repairs.contains { $0.detail.hasPrefix("restored nv: missing NvSecurityRule/demo/nv.redis-pod.demo") })
            #expect(try Self.waitFor(5) {
                try store.clusterState(named: "prod-eu-1")?.outOfStep?.hasPrefix("drift found at ") == true
            })
            let reported = try store.driftReports(limit: 20).contains { $0.json.contains("\"cluster\":\"prod-eu-1\"") && $0.json.contains("nv.redis-pod.demo") }
            #expect(reported)
            #expect(serve.log.contains("self-heal: restored staging-eu-1"))
            // reported once, not at every turn
            let count = try store.driftReports(limit: 1000).count
            usleep(2_500_000)
            #expect(try store.driftReports(limit: 1000).count == count)
        }
    }

    /// Seconds until `condition` holds (nil after `seconds`).
    static func timeUntil(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Double? {
        let start = Date()
        return try waitFor(seconds, condition) ? Date().timeIntervalSince(start) : nil
    }

    @Test func watchesRestoreWithinSecondsAndSurviveGoneAndDroppedConnections() async throws {
        try await Repo.withTemporaryFolderAsync { folder in
            let double = try Self.selfHealingFleet(in: folder)
            defer { double.stop() }
            // no selfHealInterval: only the watches notice
            try """
                listen: 127.0.0.1:0
                tokens: tokens.yaml
                """.write(toFile: folder + "/hub.yaml", atomically: true, encoding: .utf8)
            try "tokens: []\n".write(toFile: folder + "/tokens.yaml", atomically: true, encoding: .utf8)
            let serve = try ServeTests.ServeProcess(config: folder + "/hub.yaml")
            let port = try await serve.port()
            defer { _ = serve.terminate() }
            let kinds = Set(double.objects(cluster: "nv").keys.map(\.kind)).count
            #expect(Self.waitFor(10) { double.activeWatches(cluster: "nv") == kinds }, "\(serve.log.suffix(2000))")

            let redis = ObjectIdentity(kind: .securityRule, namespace: "demo", name: "nv.redis-pod.demo")
            let nginx = ObjectIdentity(kind: .securityRule, namespace: "demo", name: "nv.nginx-pod.demo")
            let original = try #require(double.objects(cluster: "nv")[nginx])
            func held(_ identity: ObjectIdentity) -> Value? { double.objects(cluster: "nv")[identity] }
            func sameSpec(_ identity: ObjectIdentity) -> Bool { held(identity)?["spec"] == original["spec"] }

            // deleted by hand: back within seconds
            double.remove(redis, cluster: "nv")
            let deletedBack = Self.timeUntil(5) { held(redis) != nil }
            #expect(deletedBack != nil, "\(serve.log.suffix(2000))")
            // edited by hand
            let edited = KubernetesAPIDouble.removing(["spec", "process"], from: original)
            double.put(edited, cluster: "nv")
            #expect(Self.waitFor(5) { sameSpec(nginx) }, "\(serve.log.suffix(2000))")
            // added by hand, with the hub's label: removed
            let planted = ObjectIdentity(kind: .securityRule, namespace: "demo", name: "nv.planted.demo")
            var plantedValue = original
            if case .map(var entries) = plantedValue, let index = entries.firstIndex(where: { $0.key == "metadata" }) {
                entries[index].value = .map([
                    Value.MapEntry("labels", .map([Value.MapEntry(HubAnnotation.managedByKey, .string(HubAnnotation.managedByValue))])),
                    Value.MapEntry("name", .string(planted.name)), Value.MapEntry("namespace", .string("demo")),
                ])
                plantedValue = .map(entries)
            }
            double.put(plantedValue, cluster: "nv")
            #expect(Self.waitFor(5) { held(planted) == nil }, "\(serve.log.suffix(2000))")

            // a dropped connection: the watch resumes from its resourceVersion
            double.dropWatches(cluster: "nv")
            #expect(Self.waitFor(10) { double.activeWatches(cluster: "nv") == kinds })
            double.remove(redis, cluster: "nv")
            #expect(Self.waitFor(5) { held(redis) != nil }, "after a dropped connection: \(serve.log.suffix(2000))")

            // 410 Gone: the history compacted while the connection was down, so the watch lists again
            double.compactHistory(cluster: "nv")
            double.dropWatches(cluster: "nv")
            #expect(Self.waitFor(10) { serve.log.contains("listing again") }, "\(serve.log.suffix(2000))")
            #expect(Self.waitFor(10) { double.activeWatches(cluster: "nv") == kinds })
            double.remove(redis, cluster: "nv")
            #expect(Self.waitFor(5) { held(redis) != nil }, "after 410 Gone: \(serve.log.suffix(2000))")

            // a directory member of staging: a file deleted by hand comes back
            let file = folder + "/.policyhub/gitops/staging-eu-1/namespaces/demo/nvsecurityrules/nv.redis-pod.demo.yaml"
            try FileManager.default.removeItem(atPath: file)
            #expect(Self.waitFor(6) { FileManager.default.fileExists(atPath: file) }, "\(serve.log.suffix(2000))")
            // production has no selfHeal: reported at once (no scheduled report), never restored
            let production = folder + "/.policyhub/gitops/prod-eu-1/namespaces/demo/nvsecurityrules/nv.redis-pod.demo.yaml"
            try FileManager.default.removeItem(atPath: production)
            let store = try SQLiteHubStore(path: folder + "/.policyhub/state.sqlite")
            #expect(try Self.waitFor(6) { try store.clusterState(named: "prod-eu-1")?.outOfStep?.hasPrefix("drift found at ") == true })
            #expect(!FileManager.default.fileExists(atPath: production))
            let repairs = try store.auditLog(limit: 200).filter { $0.actor == "self-heal" && $0.action == "repair" }
            #expect(repairs.filter { $0.detail.hasPrefix("restored nv: ") }.count >= 5, "\(repairs.map(\.detail))")
            let transport = CurlTransport()
            defer { transport.shutdown() }
            let metrics = try await transport.send(HTTPRequest(method: "GET", url: "http://127.0.0.1:\(port)/metrics"), tls: TLSSettings()).get().bodyText
            #expect(metrics.contains("policyhub_self_heal_repairs_total{cluster=\"nv\"}"), "\(metrics.prefix(3000))")
            #expect(metrics.contains("policyhub_watches \(kinds)"), "\(metrics.prefix(3000))")
            print("watch self-heal: an object deleted by hand was back after \(String(format: "%.3f", deletedBack ?? -1)) s")
        }
    }
}
