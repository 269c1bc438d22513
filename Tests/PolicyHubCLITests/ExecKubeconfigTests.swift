import Foundation
import PolicyHubTesting
import Testing

/// A cloud-style kubeconfig whose user is an exec credential plugin, end to end: `validate` refuses a
/// plugin the operator did not allow, at the kubeconfig's own line; `apply --allow-exec` runs it and
/// pushes; real `kubectl` reads the same kubeconfig against the double and sees what was pushed.
@Suite(.serialized) struct ExecKubeconfigTests {
    typealias CLI = CommandLineTests

    @Test func anExecUserRunsOnlyWhenAllowedAndKubectlAcceptsTheSameKubeconfig() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let pki = try TestPKI.make(in: folder + "/pki")
            let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["cloud-token"])
            defer { double.stop() }
            let kube = folder + "/kube"
            try FileManager.default.createDirectory(atPath: kube, withIntermediateDirectories: true)
            let plugin = kube + "/get-token"
            try """
                #!/bin/sh
                n=$(cat "\(kube)/runs" 2>/dev/null || echo 0); echo $((n + 1)) > "\(kube)/runs"
                printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"cloud-token"}}\\n'
                """.write(toFile: plugin, atomically: true, encoding: .utf8)
            chmod(plugin, 0o755)
            try """
                apiVersion: v1
                kind: Config
                current-context: eks-staging
                clusters:
                - name: eks-staging
                  cluster:
                    server: \(double.url(cluster: "eks-staging"))
                    certificate-authority-data: \(Data(pki.caCertificate).base64EncodedString())
                contexts:
                - name: eks-staging
                  context: {cluster: eks-staging, user: eks-user}
                users:
                - name: eks-user
                  user:
                    exec:
                      apiVersion: client.authentication.k8s.io/v1
                      command: ./get-token
                      args: [eks, get-token, --cluster-name, staging]
                      interactiveMode: Never
                      installHint: aws CLI v2 is required
                """.write(toFile: kube + "/config", atomically: true, encoding: .utf8)
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata: {name: eks-staging}
                spec: {environment: staging, target: {kubernetes: {kubeconfig: kube/config}}}
                """.write(toFile: folder + "/clusters/eks-staging.yaml", atomically: true, encoding: .utf8)

            // not allowed: an error at the exec command's line of the kubeconfig, and nothing ran
            let refused = try CLI.run(["validate", "--repo", folder])
            #expect(refused.status == 1)
            let said = refused.stdout + refused.stderr
            #expect(said.contains("kube/config:17:16: error: cluster 'eks-staging': user 'eks-user' runs the exec plugin './get-token'"), "\(said)")
            #expect(said.contains("--allow-exec \(ExecKubeconfigTests.real(plugin))"))
            #expect(try CLI.run(["apply", "--repo", folder]).status == 1)
            #expect(!FileManager.default.fileExists(atPath: kube + "/runs"), "a plugin that was not allowed ran")

            // allowed: validated, run once for the whole push, and pushed
            #expect(try CLI.run(["validate", "--repo", folder, "--allow-exec", plugin]).status == 0)
            let apply = try CLI.run(["apply", "--repo", folder, "--allow-exec", plugin, "--cluster", "eks-staging"])
            #expect(apply.status == 0, "\(apply.stderr)")
            #expect(apply.stderr.contains("eks-staging: 9 created"), "\(apply.stderr)")
            #expect(try String(contentsOfFile: kube + "/runs", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == "1")

            // kubectl runs the same plugin from the same kubeconfig and sees the pushed objects
            let listed = try KubernetesApplyTests.kubectl(["get", "nvclustersecurityrules", "-o", "json"], kubeconfig: kube + "/config",
                                                          home: folder + "/home")
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(try KubernetesApplyTests.names(listed.stdout).contains("forbidden-processes"), "\(listed.stdout.prefix(300))")
        }
    }

    /// A field the hub does not read is a warning at its line; validation still passes.
    @Test func unknownKubeconfigFieldsAreNamedAtTheirLine() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            try """
                apiVersion: v1
                kind: Config
                current-context: k
                clusters:
                - name: k
                  cluster: {server: 'https://127.0.0.1:6443', certificate-authority-data: '', colour: blue}
                contexts:
                - {name: k, context: {cluster: k, user: u}}
                users:
                - name: u
                  user:
                    token: t
                    tokn-file: /tmp/x
                """.write(toFile: folder + "/kube.yaml", atomically: true, encoding: .utf8)
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata: {name: k}
                spec: {environment: staging, target: {kubernetes: {kubeconfig: kube.yaml}}}
                """.write(toFile: folder + "/clusters/k.yaml", atomically: true, encoding: .utf8)
            let run = try CLI.run(["validate", "--repo", folder])
            let said = run.stdout + run.stderr
            #expect(run.status == 0, "\(said)")
            #expect(said.contains("kube.yaml:6:79: warning: cluster 'k' has the field 'colour', which the hub does not read; it is ignored"), "\(said)")
            #expect(said.contains("kube.yaml:13:5: warning: user 'u' has the field 'tokn-file'"), "\(said)")
        }
    }

    static func real(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
