import Foundation
import PolicyCore
import PolicyHubTesting
import Testing

/// `policyhub apply` to a Kubernetes member (the API double over TLS), checked with real `kubectl`.
@Suite(.serialized) struct KubernetesApplyTests {
    typealias CLI = CommandLineTests

    /// A staging member `name` on `double`: a kubeconfig at `kubeconfig` (relative to `folder`) for virtual
    /// cluster `virtual` (the member's name when nil) with a bearer token, and the cluster file naming it.
    static func addMember(_ name: String, virtual: String? = nil, kubeconfig: String, in folder: String,
                          double: KubernetesAPIDouble, pki: TestPKI, token: String = "hub-token") throws {
        try double.kubeconfig(cluster: virtual ?? name, caPEM: pki.caCertificate, token: token)
            .write(toFile: folder + "/" + kubeconfig, atomically: true, encoding: .utf8)
        try """
            apiVersion: policyhub.dev/v1alpha1
            kind: MemberCluster
            metadata: {name: \(name)}
            spec: {environment: staging, target: {kubernetes: {kubeconfig: \(kubeconfig)}}}
            """.write(toFile: folder + "/clusters/\(name).yaml", atomically: true, encoding: .utf8)
    }

    static func kubectl(_ arguments: [String], kubeconfig: String, home: String) throws -> CommandLineTests.Run {
        try CommandLineTests.runProcess("/usr/bin/env", ["kubectl", "--kubeconfig", kubeconfig] + arguments, environment: [
            "HOME": home, "KUBECACHEDIR": home + "/kube-cache", "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin",
        ])
    }

    static func names(_ json: String) throws -> [String] {
        let list = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let items = try #require(list["items"] as? [[String: Any]])
        return items.compactMap { ($0["metadata"] as? [String: Any])?["name"] as? String }.sorted()
    }

    @Test func applyThenKubectlSeesExactlyThePushedObjects() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let pki = try TestPKI.make(in: folder + "/pki")
            let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["hub-token"])
            defer { double.stop() }
            try FileManager.default.createDirectory(atPath: folder + "/kube", withIntermediateDirectories: true)
            try """
                apiVersion: v1
                kind: Config
                current-context: staging-k8s
                clusters:
                - name: staging-k8s
                  cluster:
                    server: \(double.url(cluster: "staging-k8s"))
                    certificate-authority-data: \(Data(pki.caCertificate).base64EncodedString())
                users:
                - name: hub
                  user: {token: hub-token}
                contexts:
                - name: staging-k8s
                  context: {cluster: staging-k8s, user: hub}
                """.write(toFile: folder + "/kube/config", atomically: true, encoding: .utf8)
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata: {name: staging-k8s, labels: {region: eu}}
                spec:
                  environment: staging
                  target: {kubernetes: {kubeconfig: kube/config}}
                """.write(toFile: folder + "/clusters/staging-k8s.yaml", atomically: true, encoding: .utf8)

            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 0, "\(apply.stderr)")
            #expect(apply.stderr.contains("staging-k8s: 9 created, 0 updated, 0 deleted"), "\(apply.stderr)")

            let rules = try Self.kubectl(["get", "nvsecurityrules", "-A", "-o", "json"], kubeconfig: folder + "/kube/config", home: folder)
            #expect(rules.status == 0, "\(rules.stderr)")
            #expect(try Self.names(rules.stdout) == ["nv.api.payments", "nv.ledger.payments", "nv.nginx-pod.demo",
                                                    "nv.node-pod.demo", "nv.redis-pod.demo"])
            let global = try Self.kubectl(["get", "nvclustersecurityrules", "-o", "json"], kubeconfig: folder + "/kube/config", home: folder)
            #expect(try Self.names(global.stdout) == ["baseline-defaults", "deny-ssh-to-external", "forbidden-processes"])
            // the three admission documents arrive as the one object NeuVector honours
            let admission = try Self.kubectl(["get", "nvadmissioncontrolsecurityrules", "-o", "json"], kubeconfig: folder + "/kube/config", home: folder)
            #expect(admission.status == 0, "\(admission.stderr)")
            #expect(try Self.names(admission.stdout) == ["local"])

            // nothing changed: the next apply sends the member no request at all
            let before = double.requestCount(cluster: "staging-k8s")
            let again = try CLI.run(["apply", "--repo", folder])
            #expect(again.status == 0)
            #expect(again.stderr.contains("0 pushed"))
            #expect(double.requestCount(cluster: "staging-k8s") == before)

            // a document removed from policies/ is deleted from the cluster, and kubectl sees it gone
            // (one request: the objects whose content did not change are not rewritten, SEMANTICS §5)
            try FileManager.default.removeItem(atPath: folder + "/policies/namespaces/payments/ledger.yaml")
            let writesBefore = double.requestLog.filter { !$0.hasPrefix("GET ") }.count
            let requestsBefore = double.requestCount(cluster: "staging-k8s")
            let third = try CLI.run(["apply", "--repo", folder])
            #expect(third.stderr.contains("staging-k8s: 0 created, 0 updated, 1 deleted"), "\(third.stderr)")
            #expect(double.requestLog.filter { !$0.hasPrefix("GET ") }.count == writesBefore + 1)
            // and nothing else: the store knows which kinds the cluster serves and holds, and a deletion has
            // nothing to read back
            #expect(double.requestCount(cluster: "staging-k8s") == requestsBefore + 1)
            let after = try Self.kubectl(["get", "nvsecurityrules", "-n", "payments", "-o", "json"],
                                         kubeconfig: folder + "/kube/config", home: folder)
            #expect(try Self.names(after.stdout) == ["nv.api.payments"])

            // with no admission document left, `local` is no longer desired and is deleted like a rule
            for file in ["policies/global/admission.yaml", "policies/global/admission-baseline.yaml",
                         "policies/namespaces/payments/admission.yaml"] {
                try FileManager.default.removeItem(atPath: folder + "/" + file)
            }
            let fourth = try CLI.run(["apply", "--repo", folder])
            #expect(fourth.stderr.contains("staging-k8s: 0 created, 0 updated, 1 deleted"), "\(fourth.stderr)")
            let none = try Self.kubectl(["get", "nvadmissioncontrolsecurityrules", "-o", "json"], kubeconfig: folder + "/kube/config", home: folder)
            #expect(try Self.names(none.stdout) == [])
        }
    }

    @Test func aMemberWithoutTheCRDsFailsByNameAndTheOthersConverge() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let pki = try TestPKI.make(in: folder + "/pki")
            let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["hub-token"], clientCertificates: false)
            defer { double.stop() }
            double.setFault(.crdMissing, cluster: "no-nv")
            try Self.addMember("no-nv", kubeconfig: "kubeconfig.yaml", in: folder, double: double, pki: pki)
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("policyhub: cluster no-nv: the NeuVector CRDs are not served"))
            #expect(apply.stderr.contains("1 pushed"))
            #expect(!apply.stderr.contains("hub-token"))
        }
    }

    @Test func aMemberWithoutTheAdmissionCRDIsToldWhichOne() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let pki = try TestPKI.make(in: folder + "/pki")
            let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["hub-token"], clientCertificates: false)
            defer { double.stop() }
            double.setServedKinds(Set(ObjectKind.allCases).subtracting([.admissionControl]), cluster: "old-nv")
            try Self.addMember("old-nv", kubeconfig: "kubeconfig.yaml", in: folder, double: double, pki: pki)
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("policyhub: cluster old-nv: the server does not serve the CRD nvadmissioncontrolsecurityrules.neuvector.com (NvAdmissionControlSecurityRule), which this cluster's policy uses"),
                    "\(apply.stderr)")
        }
    }

    /// The environment of a CLI run with this settle time.
    static func settling(_ seconds: Double) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["POLICYHUB_SETTLE"] = String(seconds)
        return environment
    }

    @Test func neuVectorRejectingAnObjectAfterAdmissionKeepsTheClusterOutOfStep() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let pki = try TestPKI.make(in: folder + "/pki")
            let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["hub-token"], clientCertificates: false)
            defer { double.stop() }
            // NeuVector's importer rejects the redis rule once it has admitted it
            double.setNeuVector(KubernetesAPIDouble.NeuVectorMode(admissionLatency: 0.05, judgeDelay: 0.1, reject: { object, _ in
                object["metadata"]?["name"]?.stringValue == "nv.redis-pod.demo" ? "CRD Rule format error: injected" : nil
            }), cluster: "nv")
            try Self.addMember("nv", kubeconfig: "kubeconfig.yaml", in: folder, double: double, pki: pki)
            let plan = try CLI.runProcess(CLI.binary, ["plan", "--repo", folder, "--live", "--cluster", "nv"], environment: Self.settling(1))
            #expect(plan.status == 2, "\(plan.stderr)")
            #expect(!double.requestLog.contains { $0.contains("dryRun") || !$0.hasPrefix("GET ") }, "plan --live wrote or dry-ran")
            let apply = try CLI.runProcess(CLI.binary, ["apply", "--repo", folder], environment: Self.settling(2))
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("cluster nv: NvSecurityRule/demo/nv.redis-pod.demo: rejected by NeuVector after admission"), "\(apply.stderr)")
            let status = try CLI.run(["status", "--repo", folder])
            #expect(status.status == 2)
            #expect(status.stdout.contains("nv  staging") && status.stdout.contains("OUT OF STEP"), "\(status.stdout)")
            // NeuVector accepts it again: the next plain apply converges
            double.setNeuVector(KubernetesAPIDouble.NeuVectorMode(admissionLatency: 0.05, judgeDelay: 0.1), cluster: "nv")
            let again = try CLI.runProcess(CLI.binary, ["apply", "--repo", folder], environment: Self.settling(1))
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stderr.contains("nv: 1 created, 0 updated, 0 deleted"), "\(again.stderr)")
            #expect(try CLI.run(["status", "--repo", folder]).status == 0)
        }
    }

    /// A cluster that has sent everything and only waits for NeuVector to settle gives its slot to the next: with
    /// `--concurrency 1` the second cluster is written while the first one waits, before the first is read back.
    @Test func aClusterWaitingForNeuVectorToSettleGivesItsSlotToTheNext() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let pki = try TestPKI.make(in: folder + "/pki")
            let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["hub-token"], clientCertificates: false)
            defer { double.stop() }
            for name in ["nv-a", "nv-b"] {
                double.setNeuVector(KubernetesAPIDouble.NeuVectorMode(admissionLatency: 0.05, judgeDelay: 0.1), cluster: name)
                try Self.addMember(name, kubeconfig: "\(name).yaml", in: folder, double: double, pki: pki)
            }
            let apply = try CLI.runProcess(CLI.binary, ["apply", "--repo", folder, "--concurrency", "1"], environment: Self.settling(3))
            #expect(apply.status == 0, "\(apply.stderr)")
            let log = double.requestLog
            func first(_ cluster: String, _ method: String, after start: Int = 0) -> Int? {
                log.indices.first { $0 >= start && log[$0].hasPrefix("\(method) /clusters/\(cluster)/") }
            }
            // whichever cluster started first: its last write, its read-back after the settle time, the other's first write
            let firstWrites = try #require(first("nv-a", "PATCH")) < (try #require(first("nv-b", "PATCH"))) ? ("nv-a", "nv-b") : ("nv-b", "nv-a")
            let (earlier, later) = firstWrites
            let lastWrite = try #require(log.indices.last { log[$0].hasPrefix("PATCH /clusters/\(earlier)/") })
            let readBack = try #require(first(earlier, "GET", after: lastWrite))
            let laterWrite = try #require(first(later, "PATCH"))
            #expect(laterWrite < readBack, "\(later) waited for \(earlier)'s settle time: \(log.filter { !$0.contains("/apis/neuvector.com/v1?") })")
            #expect(double.objects(cluster: "nv-a").count == double.objects(cluster: "nv-b").count)
            #expect(try CLI.run(["status", "--repo", folder]).status == 0)
        }
    }

    @Test func aPushKilledWhileNeuVectorSettlesConvergesOnTheRerun() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let pki = try TestPKI.make(in: folder + "/pki")
            let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["hub-token"], clientCertificates: false)
            defer { double.stop() }
            double.setNeuVector(KubernetesAPIDouble.NeuVectorMode(admissionLatency: 0.05, judgeDelay: 0.1), cluster: "nv")
            try Self.addMember("nv", kubeconfig: "kubeconfig.yaml", in: folder, double: double, pki: pki)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLI.binary)
            process.arguments = ["apply", "--repo", folder]
            process.environment = Self.settling(30)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // killed once every object is applied, inside the settle window
            let deadline = Date().addingTimeInterval(20)
            while double.objects(cluster: "nv").count < 9 && Date() < deadline { usleep(20_000) }
            #expect(double.objects(cluster: "nv").count >= 9)
            usleep(300_000)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(try CLI.run(["status", "--repo", folder]).status == 2)  // never confirmed: not in step
            let rerun = try CLI.runProcess(CLI.binary, ["apply", "--repo", folder], environment: Self.settling(0.5))
            #expect(rerun.status == 0, "\(rerun.stderr)")
            #expect(rerun.stderr.contains("nv: 0 created, 0 updated, 0 deleted"), "\(rerun.stderr)")  // compared, found in place
            #expect(try CLI.run(["status", "--repo", folder]).status == 0)
        }
    }
}
