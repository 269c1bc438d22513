import Foundation
import PolicyCore
import PolicyHubTesting
import Testing

/// Members that answer like an attacker (or a broken proxy) would: each costs the hub that one cluster,
/// named with a clear message, never the process, the other clusters or the requests' paths.
@Suite(.serialized) struct HostileMemberTests {
    typealias CLI = CommandLineTests

    /// The example repository with two Kubernetes members on one double: `hostile` (showing `fault`) and
    /// `healthy`; the directory members of the example stay.
    static func withFleet(fault: KubernetesAPIDouble.Fault,
                          _ body: (String, KubernetesAPIDouble) throws -> Void) throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let pki = try TestPKI.make(in: folder + "/pki")
            let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["hub-token"], clientCertificates: false)
            defer { double.stop() }
            try KubernetesApplyTests.addMember("hostile", kubeconfig: "hostile.yaml", in: folder, double: double, pki: pki)
            try KubernetesApplyTests.addMember("healthy", kubeconfig: "healthy.yaml", in: folder, double: double, pki: pki)
            double.setFault(fault, cluster: "hostile")
            try body(folder, double)
        }
    }

    /// The largest resident set of any child process waited for so far, in bytes.
    static func largestChildRSS() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

    /// `apply` fails the hostile cluster with `message`, pushes the healthy one, and exits 1 (not a signal).
    static func expectOnlyTheHostileClusterFails(_ fault: KubernetesAPIDouble.Fault, message: String,
                                                 arguments: [String] = []) throws {
        try withFleet(fault: fault) { folder, double in
            let started = Date()
            let apply = try CLI.run(["apply", "--repo", folder, "--cluster-timeout", "20"] + arguments)
            let name = "\(fault)".prefix { $0 != "(" }
            print("hostile \(name): apply took \(Int(Date().timeIntervalSince(started) * 1000)) ms; largest child RSS so far \(largestChildRSS() >> 20) MiB")
            #expect(apply.status == 1, "\(apply.stderr)")
            #expect(apply.stderr.contains("policyhub: cluster hostile:") && apply.stderr.contains(message), "\(apply.stderr)")
            #expect(apply.stderr.contains("healthy: 9 created"), "\(apply.stderr)")
            #expect(apply.stderr.contains("staging-eu-1: "), "\(apply.stderr)")
            #expect(double.objects(cluster: "healthy").count == 9)
            #expect(largestChildRSS() < 2 << 30, "a hostile answer made a child process grow past 2 GiB (it took 3.9-5.8 GB before the bounds)")
            // the failure is recorded by name, and the next run retries only what failed
            let status = try CLI.run(["status", "--repo", folder])
            #expect(status.status == 2)
            #expect(status.stdout.contains("hostile"))
        }
    }

    @Test func aTwoGibibyteContentLengthFailsThatClusterOnly() throws {
        try Self.expectOnlyTheHostileClusterFails(.hugeContentLength, message: "announces a body of 2048 MiB (Content-Length)")
    }

    @Test func anEndlessChunkedBodyFailsThatClusterOnly() throws {
        try Self.expectOnlyTheHostileClusterFails(.endlessBody, message: "the response body is larger than 64 MiB")
    }

    @Test func aGzipBombFailsThatClusterOnly() throws {
        // 512 MiB of zeros, gzip-compressed by the system's zlib (about 0.5 MiB)
        let script = """
            import sys, zlib
            c = zlib.compressobj(1, zlib.DEFLATED, 31)
            block = bytes(1 << 20)
            sys.stdout.buffer.write(b"".join(c.compress(block) for _ in range(512)) + c.flush())
            """
        let bytes = try Self.gzipBomb(script)
        #expect(bytes.count > 1000 && bytes.count < 8 << 20)
        try Self.expectOnlyTheHostileClusterFails(.gzipBody(bytes), message: "once decoded")
    }

    /// The bytes a python3 script prints (binary: not through a text decoding).
    static func gzipBomb(_ script: String) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return [UInt8](data)
    }

    @Test func oversizedHeadersAreNamedAsSuch() throws {
        try Self.expectOnlyTheHostileClusterFails(.hugeHeaders(count: 200), message: "headers")
    }

    @Test func aDrippingMemberMeetsTheClusterDeadline() throws {
        try Self.expectOnlyTheHostileClusterFails(.slowDrip, message: "deadline", arguments: ["--cluster-timeout", "3"])
    }

    @Test func aMillionListedObjectsFailDriftOfThatClusterOnly() throws {
        try Self.withFleet(fault: .listFlood(count: 1_000_000)) { folder, _ in
            #expect(try CLI.run(["apply", "--repo", folder]).status == 1)  // records the revision; hostile fails
            let started = Date()
            let drift = try CLI.run(["drift", "--repo", folder, "--output", "json", "--cluster-timeout", "30"])
            print("a million listed objects: drift took \(Int(Date().timeIntervalSince(started) * 1000)) ms, report \(drift.stdout.utf8.count) bytes; largest child RSS so far \(Self.largestChildRSS() >> 20) MiB")
            #expect(drift.status == 2, "\(drift.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(drift.stdout.utf8)) as? [String: Any])
            let findings = try #require(report["findings"] as? [[String: Any]])
            let hostile = findings.filter { $0["cluster"] as? String == "hostile" && $0["class"] as? String != "pending" }
            #expect(hostile.count == 1)
            #expect(hostile.first?["class"] as? String == "unreachable")
            #expect((hostile.first?["message"] as? String)?.contains("larger than 64 MiB") == true, "\(hostile)")
            #expect(drift.stdout.utf8.count < 1 << 20)
            #expect(Self.largestChildRSS() < 2 << 30)
        }
    }

    @Test func findingsOfOneClusterAreBounded() throws {
        try Self.withFleet(fault: .listFlood(count: 5000)) { folder, _ in
            #expect(try CLI.run(["apply", "--repo", folder]).status == 1)  // 10,000 deletions: more than the bound
            let drift = try CLI.run(["drift", "--repo", folder, "--output", "json", "--cluster", "hostile"])
            #expect(drift.status == 2, "\(drift.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(drift.stdout.utf8)) as? [String: Any])
            let findings = try #require(report["findings"] as? [[String: Any]]).filter { $0["cluster"] as? String == "hostile" }
            // pending (the failed push), then the comparison's first 1,000 (all extra: they sort first) and one
            // line for the rest: 9,000 extra (the objects the refused push applied are held as desired)
            #expect(findings.count == 1 + DriftComparison.maxFindingsPerCluster + 1, "\(findings.prefix(3))")
            #expect(findings.contains { ($0["message"] as? String)?.hasPrefix("9000 more extra findings not listed") == true })
        }
    }

    @Test func deletionsBeyondTheBoundWaitForAPerson() throws {
        try Self.withFleet(fault: .listFlood(count: 75)) { folder, double in  // 75 of each kind
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("cluster hostile: 150 objects labelled as managed by the hub are no longer desired, more than the 100 one push may delete; nothing was deleted"),
                    "\(apply.stderr)")
            #expect(!double.requestLog.contains { $0.hasPrefix("DELETE /clusters/hostile/") })
            let confirmed = try CLI.run(["apply", "--repo", folder, "--max-deletions", "150"])
            // the 9 objects the refused push applied are held as desired: only the deletions are sent
            #expect(confirmed.stderr.contains("hostile: 0 created, 0 updated, 150 deleted"), "\(confirmed.stderr)")
            #expect(double.requestLog.filter { $0.hasPrefix("DELETE /clusters/hostile/") }.count == 150)
        }
    }

    /// A password in a server URL appears nowhere: not in stderr, `status` or the state file.
    @Test func aPasswordInTheServerURLIsRedactedEverywhere() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            try """
                apiVersion: v1
                kind: Config
                current-context: ctx
                clusters: [{name: c, cluster: {server: 'https://admin:hunter2@127.0.0.1:1'}}]
                users: [{name: u, user: {token: t0ken-value}}]
                contexts: [{name: ctx, context: {cluster: c, user: u}}]
                """.write(toFile: folder + "/closed.yaml", atomically: true, encoding: .utf8)
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata: {name: closed}
                spec: {environment: staging, target: {kubernetes: {kubeconfig: closed.yaml}}}
                """.write(toFile: folder + "/clusters/closed.yaml", atomically: true, encoding: .utf8)
            let apply = try CLI.run(["apply", "--repo", folder, "--cluster-timeout", "5"])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("cluster closed:") && apply.stderr.contains("admin:***@127.0.0.1"), "\(apply.stderr)")
            let status = try CLI.run(["status", "--repo", folder, "--output", "json"])
            let state = try Data(contentsOf: URL(fileURLWithPath: folder + "/.policyhub/state.sqlite"))
            for text in [apply.stdout, apply.stderr, status.stdout, status.stderr, String(decoding: state, as: UTF8.self)] {
                #expect(!text.contains("hunter2") && !text.contains("t0ken-value"))
            }
        }
    }

    /// Managed items whose names are paths: the hub must never build a request from them.
    @Test func namesThatArePathsAreReportedNeverRequested() throws {
        try Self.withFleet(fault: .none) { folder, double in
            func planted(_ kind: ObjectKind, name: String, namespace: String?) -> Value {
                var metadata: [Value.MapEntry] = [Value.MapEntry("name", .string(name))]
                if let namespace { metadata.append(Value.MapEntry("namespace", .string(namespace))) }
                metadata.append(Value.MapEntry("labels", .map([Value.MapEntry("app.kubernetes.io/managed-by", .string("policyhub"))])))
                return .map([Value.MapEntry("apiVersion", .string("neuvector.com/v1")), Value.MapEntry("kind", .string(kind.rawValue)),
                             Value.MapEntry("metadata", .map(metadata)),
                             Value.MapEntry("spec", .map([Value.MapEntry("target", .map([]))]))])
            }
            double.put(planted(.clusterSecurityRule, name: "../../../api/v1/namespaces/kube-system/secrets/x", namespace: nil), cluster: "hostile")
            double.put(planted(.securityRule, name: "z", namespace: "../../../../api/v1/namespaces/kube-system/secrets/y#"), cluster: "hostile")
            double.put(planted(.securityRule, name: "a/b", namespace: "demo"), cluster: "hostile")
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 0, "\(apply.stderr)")
            #expect(apply.stderr.contains("hostile: warning: the member listed a NvClusterSecurityRule named '../../../api/v1/namespaces/kube-system/secrets/x', which is not a valid Kubernetes name; it was not acted on"),
                    "\(apply.stderr)")
            #expect(apply.stderr.contains("in namespace '../../../../api/v1/namespaces/kube-system/secrets/y#'"))
            // every request stayed on the NeuVector paths the hub builds, and none named the planted objects
            for line in double.requestLog {
                let path = line.split(separator: " ")[1]
                #expect(path.hasPrefix("/clusters/hostile/apis/neuvector.com/v1") || path.hasPrefix("/clusters/healthy/apis/neuvector.com/v1"),
                        "\(line)")
                #expect(!path.contains("..") && !path.contains("secrets"), "\(line)")
            }
            let drift = try CLI.run(["drift", "--repo", folder, "--cluster", "hostile"])
            #expect(drift.stdout.contains("not a valid Kubernetes name"), "\(drift.stdout)")
        }
    }
}
