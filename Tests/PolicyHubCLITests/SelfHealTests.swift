import Foundation
import HubService
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

    @Test func handMadeChangesAreRestoredOnSelfHealAndReportedElsewhere() async throws {
        try await Repo.withTemporaryFolderAsync { folder in
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
            defer { double.stop() }
            try KubernetesApplyTests.addMember("nv", kubeconfig: "kubeconfig.yaml", in: folder, double: double, pki: pki)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            #expect(try CLI.run(["promote", "--repo", folder, "--to", "production", "--all", "--force"]).status == 0)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)  // pushes production's first revision
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
            let repairs = try store.auditLog(limit: 100).filter { $0.actor == "self-heal" && $0.action == "repair" }
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
}
