import Foundation
import HubStore
import PolicyHubTesting
import Testing

/// `policyhub drift` on GitOps folders and, with real kubectl making out-of-band changes, on Kubernetes.
@Suite struct DriftTests {
    typealias CLI = CommandLineTests

    @Test func directoryDriftEveryClassAndNewResolved() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let clean = try CLI.run(["drift", "--repo", folder])
            #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
            #expect(clean.stdout.hasPrefix("no drift"))
            #expect(clean.stdout.contains("staging -> production: NvSecurityRule/demo/nv.node-pod.demo not yet promoted"))

            let gitops = folder + "/.policyhub/gitops/staging-eu-1"
            let node = gitops + "/namespaces/demo/nvsecurityrules/nv.node-pod.demo.yaml"
            try String(contentsOfFile: node, encoding: .utf8).replacingOccurrences(of: "tcp/6379", with: "tcp/9999")
                .write(toFile: node, atomically: true, encoding: .utf8)
            try FileManager.default.removeItem(atPath: gitops + "/namespaces/demo/nvsecurityrules/nv.redis-pod.demo.yaml")
            try "garbage: [".write(toFile: gitops + "/namespaces/payments/nvsecurityrules/nv.api.payments.yaml",
                                   atomically: true, encoding: .utf8)
            try """
                apiVersion: neuvector.com/v1
                kind: NvClusterSecurityRule
                metadata: {name: handmade}
                spec: {target: {selector: {name: containers, criteria: [{key: container, op: '=', value: '*'}]}}}
                """.write(toFile: gitops + "/cluster/nvclustersecurityrules/handmade.yaml", atomically: true, encoding: .utf8)
            let drift = try CLI.run(["drift", "--repo", folder, "--output", "json"])
            #expect(drift.status == 2)
            let report = try #require(try JSONSerialization.jsonObject(with: Data(drift.stdout.utf8)) as? [String: Any])
            let findings = try #require(report["findings"] as? [[String: Any]])
            func find(_ kind: String, _ object: String) -> [String: Any]? {
                findings.first { $0["class"] as? String == kind && $0["object"] as? String == object }
            }
            #expect((find("modified", "NvSecurityRule/demo/nv.node-pod.demo")?["fields"] as? [String]) == ["spec.egress[node-to-redis].ports"])
            #expect(find("missing", "NvSecurityRule/demo/nv.redis-pod.demo") != nil)
            #expect((find("modified", "NvSecurityRule/payments/nv.api.payments")?["message"] as? String)?
                .hasPrefix("the live object is not valid NeuVector YAML") == true)
            #expect(find("unmanaged", "NvClusterSecurityRule//handmade") != nil)
            #expect(findings.allSatisfy { $0["new"] as? Bool == true })

            // drift put the cluster out of step: the next plain apply would push it (SEMANTICS §6)
            let dryRun = try CLI.run(["apply", "--repo", folder, "--dry-run"])
            #expect(dryRun.stdout.contains("1 to push"), "\(dryRun.stdout)")
            let status = try CLI.run(["status", "--repo", folder])
            #expect(status.status == 2 && status.stdout.contains("OUT OF STEP: drift found at"), "\(status.stdout)")
            let store = try SQLiteHubStore(path: folder + "/.policyhub/state.sqlite")
            let states = try store.clusterStates()
            #expect(states.first { $0.cluster == "staging-eu-1" }?.appliedRevision == 1)
            try FileManager.default.removeItem(atPath: node)
            try FileManager.default.removeItem(atPath: gitops + "/namespaces/payments/nvsecurityrules/nv.api.payments.yaml")
            let markdown = try CLI.run(["drift", "--repo", folder, "--output", "markdown"])
            #expect(markdown.status == 2)
            #expect(markdown.stdout.contains("| staging-eu-1 | missing | NvSecurityRule/demo/nv.node-pod.demo |"))
            #expect(markdown.stdout.contains("## Resolved since the previous report"))
            #expect(markdown.stdout.contains("- staging-eu-1 modified NvSecurityRule/payments/nv.api.payments"))
            #expect(try CLI.run(["drift", "--repo", folder, "--history"]).stdout.split(separator: "\n").count == 3)
            #expect(try store.latestDriftCheck(environment: "staging")?.findings == 3)
        }
    }

    @Test func anUnreachableClusterIsReportedAndTheOthersStillAre() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata: {name: staging-gone}
                spec: {environment: staging, target: {directory: {path: gone}}}
                """.write(toFile: folder + "/clusters/staging-gone.yaml", atomically: true, encoding: .utf8)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            try FileManager.default.removeItem(atPath: folder + "/gone")
            try "not a folder".write(toFile: folder + "/gone", atomically: true, encoding: .utf8)
            let drift = try CLI.run(["drift", "--repo", folder])
            #expect(drift.status == 2)
            #expect(drift.stdout.contains("staging-gone  unreachable (new)  -  "))
            #expect(!drift.stdout.contains("staging-eu-1  "))
        }
    }

    @Test func policyReportHasTheRealFieldShapes() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            try FileManager.default.removeItem(atPath: folder + "/.policyhub/gitops/staging-eu-1/namespaces/demo/nvsecurityrules/nv.node-pod.demo.yaml")
            let drift = try CLI.run(["drift", "--repo", folder, "--output", "policyreport"])
            #expect(drift.status == 2)
            #expect(drift.stdout.hasPrefix("apiVersion: wgpolicyk8s.io/v1alpha2\nkind: ClusterPolicyReport\n"))
            #expect(drift.stdout.contains("summary:\n  pass: 0\n  fail: 1\n  warn: 0\n  error: 0\n  skip: 0\n"))
            #expect(drift.stdout.contains("  result: fail\n"))
            #expect(drift.stdout.contains("  timestamp:\n    seconds: "))
            #expect(drift.stdout.contains("    nanos: "))
        }
    }

    @Test func kubectlChangesMadeOutOfBandAreFound() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let pki = try TestPKI.make(in: folder + "/pki")
            let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["hub-token"], clientCertificates: false)
            defer { double.stop() }
            let kubeconfig = folder + "/kubeconfig.yaml"
            try KubernetesApplyTests.addMember("staging-k8s", virtual: "k", kubeconfig: "kubeconfig.yaml", in: folder,
                                               double: double, pki: pki)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            #expect(try CLI.run(["drift", "--repo", folder]).status == 0)

            // someone edits a rule, deletes another, and creates one of their own, all with kubectl
            let edited = folder + "/edited.yaml"
            try """
                apiVersion: neuvector.com/v1
                kind: NvSecurityRule
                metadata:
                  name: nv.redis-pod.demo
                  namespace: demo
                  labels: {app.kubernetes.io/managed-by: policyhub}
                spec:
                  target:
                    policymode: Discover
                    selector:
                      name: nv.redis-pod.demo
                      criteria: [{key: service, op: '=', value: redis-pod.demo}, {key: domain, op: '=', value: demo}]
                """.write(toFile: edited, atomically: true, encoding: .utf8)
            let own = folder + "/own.yaml"
            try """
                apiVersion: neuvector.com/v1
                kind: NvSecurityRule
                metadata: {name: nv.tools.demo, namespace: demo}
                spec:
                  target:
                    selector:
                      name: nv.tools.demo
                      criteria: [{key: service, op: '=', value: tools.demo}, {key: domain, op: '=', value: demo}]
                """.write(toFile: own, atomically: true, encoding: .utf8)
            for arguments in [["apply", "--server-side", "--force-conflicts", "--validate=false", "--field-manager", "oncall", "-f", edited],
                              ["delete", "nvsecurityrules", "-n", "payments", "nv.ledger.payments"],
                              ["apply", "--server-side", "--validate=false", "--field-manager", "oncall", "-f", own]] {
                let run = try KubernetesApplyTests.kubectl(arguments, kubeconfig: kubeconfig, home: folder)
                #expect(run.status == 0, "kubectl \(arguments.joined(separator: " ")): \(run.stderr)")
            }
            let drift = try CLI.run(["drift", "--repo", folder, "--cluster", "staging-k8s"])
            #expect(drift.status == 2)
            #expect(drift.stdout.contains("staging-k8s  missing (new)  NvSecurityRule/payments/nv.ledger.payments"))
            #expect(drift.stdout.contains("staging-k8s  modified (new)  NvSecurityRule/demo/nv.redis-pod.demo"))
            #expect(drift.stdout.contains("spec.target.policymode: hub Monitor, member Discover"))
            #expect(drift.stdout.contains("staging-k8s  unmanaged (new)  NvSecurityRule/demo/nv.tools.demo"))
            // a push restores what the hub manages and never deletes the unmanaged object
            try FileManager.default.removeItem(atPath: folder + "/.policyhub/state.sqlite")
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let after = try CLI.run(["drift", "--repo", folder, "--cluster", "staging-k8s"])
            #expect(!after.stdout.contains("missing") && !after.stdout.contains("modified"), "\(after.stdout)")
            #expect(after.stdout.contains("unmanaged"))
            #expect(double.objects(cluster: "k").keys.contains { $0.name == "nv.tools.demo" })
        }
    }
}
