import Foundation
import HubEngine
import PolicyCore
import PolicyHubCLI
import Testing

/// Problems in clusters/ are reported with their file, line and column like policy problems.
@Suite struct ClusterFileTests {
    static func validate(extra files: [String: String]) throws -> [String] {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            for (name, text) in files {
                let path = folder + "/" + name
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                        withIntermediateDirectories: true)
                try text.replacingOccurrences(of: "$ROOT", with: folder).write(toFile: path, atomically: true, encoding: .utf8)
            }
            return Workspace.open(root: folder).diagnostics.filter(\.isError).map(\.description)
        }
    }

    static func cluster(_ name: String, environment: String = "staging", target: String) -> String {
        """
        apiVersion: policyhub.dev/v1alpha1
        kind: MemberCluster
        metadata:
          name: \(name)
        spec:
          environment: \(environment)
          target:
        \(target)
        """
    }

    @Test func missingKubeconfigFile() throws {
        let errors = try Self.validate(extra: ["clusters/k1.yaml": Self.cluster("k1", target: "    kubernetes: {kubeconfig: kube/missing.yaml}")])
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("clusters/k1.yaml:8:5: error: kubeconfig 'kube/missing.yaml' of cluster 'k1' cannot be read") == true)
    }

    @Test func unknownContextAndMissingCurrentContext() throws {
        let kubeconfig = """
            apiVersion: v1
            kind: Config
            clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]
            users: [{name: u, user: {token: secret}}]
            contexts: [{name: ctx-a, context: {cluster: c, user: u}}]
            """
        let errors = try Self.validate(extra: [
            "kube/config.yaml": kubeconfig,
            "clusters/k1.yaml": Self.cluster("k1", target: "    kubernetes: {kubeconfig: kube/config.yaml, context: ctx-b}"),
            "clusters/k2.yaml": Self.cluster("k2", target: "    kubernetes: {kubeconfig: kube/config.yaml}"),
            "clusters/k3.yaml": Self.cluster("k3", target: "    kubernetes: {kubeconfig: $ROOT/kube/config.yaml, context: ctx-a}"),
        ])
        #expect(errors == [
            "clusters/k1.yaml:8:5: error: context 'ctx-b' is not in kubeconfig 'kube/config.yaml' (contexts: ctx-a)",
            "clusters/k2.yaml:8:5: error: kubeconfig 'kube/config.yaml' of cluster 'k2' has no current-context; set target.kubernetes.context",
        ])
        // the secret in the kubeconfig never appears in a message
        #expect(!errors.joined().contains("secret"))
    }

    /// What the push would refuse is a validation error: plain http with credentials, a scheme that is not
    /// http(s) (upper-case HTTPS is https); a password in the server URL is never printed.
    @Test func serversThatThePushWouldRefuse() throws {
        func kubeconfig(_ server: String, user: String = "{token: secret-token}") -> String {
            """
            apiVersion: v1
            kind: Config
            current-context: ctx
            clusters: [{name: c, cluster: {server: '\(server)'}}]
            users: [{name: u, user: \(user)}]
            contexts: [{name: ctx, context: {cluster: c, user: u}}]
            """
        }
        let errors = try Self.validate(extra: [
            "kube/http.yaml": kubeconfig("http://127.0.0.1:6443"),
            "kube/upper.yaml": kubeconfig("HTTPS://127.0.0.1:6443"),
            "kube/ftp.yaml": kubeconfig("ftp://127.0.0.1"),
            "kube/password.yaml": kubeconfig("ftp://admin:hunter2@127.0.0.1"),
            "kube/anonymous.yaml": kubeconfig("http://127.0.0.1:6443", user: "{}"),
            "clusters/k1.yaml": Self.cluster("k1", target: "    kubernetes: {kubeconfig: kube/http.yaml}"),
            "clusters/k2.yaml": Self.cluster("k2", target: "    kubernetes: {kubeconfig: kube/upper.yaml}"),
            "clusters/k3.yaml": Self.cluster("k3", target: "    kubernetes: {kubeconfig: kube/ftp.yaml}"),
            "clusters/k4.yaml": Self.cluster("k4", target: "    kubernetes: {kubeconfig: kube/password.yaml}"),
            "clusters/k5.yaml": Self.cluster("k5", target: "    kubernetes: {kubeconfig: kube/anonymous.yaml}"),
        ])
        #expect(errors.count == 3, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("clusters/k1.yaml:8:5: error: cluster 'k1': server http://127.0.0.1:6443 is plain http://; the hub refuses to send credentials without TLS") },
                "\(errors)")
        #expect(errors.contains { $0.hasPrefix("clusters/k3.yaml:8:5: error: cluster 'k3': server ftp://127.0.0.1 is not an http(s) URL") })
        #expect(errors.contains { $0.hasPrefix("clusters/k4.yaml:8:5: error: cluster 'k4': server ftp://admin:***@127.0.0.1 is not an http(s) URL") })
        #expect(!errors.joined().contains("hunter2") && !errors.joined().contains("secret-token"))
    }

    @Test func twoTargetsOrNone() throws {
        let errors = try Self.validate(extra: [
            "clusters/two.yaml": Self.cluster("two", target: "    directory: {path: a}\n    kubernetes: {kubeconfig: b}"),
            "clusters/none.yaml": Self.cluster("none", target: "    {}"),
        ])
        #expect(errors == [
            "clusters/none.yaml:8:5: error: target must have exactly one of 'kubernetes' or 'directory' (found 0)",
            "clusters/two.yaml:8:5: error: target must have exactly one of 'kubernetes' or 'directory' (found 2)",
        ])
    }

    @Test func unknownEnvironmentAndCredentialsInTheClusterFile() throws {
        let errors = try Self.validate(extra: [
            "clusters/x.yaml": Self.cluster("x", environment: "qa", target: "    directory: {path: a}"),
            "clusters/y.yaml": Self.cluster("y", target: "    kubernetes: {kubeconfig: k, token: abc}"),
        ])
        #expect(errors.contains("clusters/x.yaml:6:16: error: unknown environment 'qa' (known: staging, production)"))
        #expect(errors.contains { $0.hasPrefix("clusters/y.yaml:8:33: error: unknown field 'token' in target.kubernetes; credentials belong in the kubeconfig file") })
    }
}
