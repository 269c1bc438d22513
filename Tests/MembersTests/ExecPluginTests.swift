import Foundation
import HubTransport
import Members
import PolicyCore
import PolicyHubTesting
import Testing

/// Exec credential plugins (client-go's protocol, cloud-kubeconfig.md) against the Kubernetes API double,
/// with a fake plugin written for the tests: a shell script that prints an ExecCredential, counts its
/// runs, keeps the KUBERNETES_EXEC_INFO it was given, and writes a line with its token to stderr.
@Suite(.serialized) struct ExecPluginTests {
    static let folder = NSTemporaryDirectory() + "policyhub-exec-" + UUID().uuidString
    static let pki = Result { try TestPKI.make(in: folder) }

    static let script = """
        #!/bin/sh
        # FAKE_DIR: where runs are counted; FAKE_MODE: token, rotate, cert or hang
        n=$(cat "$FAKE_DIR/runs" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$FAKE_DIR/runs"
        printf '%s' "$KUBERNETES_EXEC_INFO" > "$FAKE_DIR/info.json"
        token="$FAKE_TOKEN"
        if [ "$FAKE_MODE" = rotate ] && [ "$n" = 1 ]; then token=stale-token; fi
        echo "fake plugin: handing out $token" >&2
        expiry=""
        if [ -f "$FAKE_DIR/expires" ]; then expiry=",\\"expirationTimestamp\\":\\"$(cat "$FAKE_DIR/expires")\\""; fi
        case "$FAKE_MODE" in
        hang) sleep 30 ;;
        fail) echo "fake plugin: no credentials for you" >&2; exit 3 ;;
        cert)
          cert=$(awk '{printf "%s\\\\n", $0}' "$FAKE_CERT"); key=$(awk '{printf "%s\\\\n", $0}' "$FAKE_KEY")
          printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"clientCertificateData":"%s","clientKeyData":"%s"%s}}\\n' "$FAKE_API" "$cert" "$key" "$expiry" ;;
        *) printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"%s"%s}}\\n' "$FAKE_API" "$token" "$expiry" ;;
        esac
        """

    /// A clock the test moves.
    final class Clock: @unchecked Sendable {
        private let lock = NSLock()
        private var time: Double = 1_800_000_000
        var now: Double { lock.withLock { time } }
        func advance(_ seconds: Double) { lock.withLock { time += seconds } }
    }

    /// Lines the plugins wrote to stderr, as the hub logs them.
    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ line: String) { lock.withLock { lines.append(line) } }
        var all: [String] { lock.withLock { lines } }
    }

    final class Fixture: @unchecked Sendable {
        let double = KubernetesAPIDouble(tokens: ["exec-token"])
        let transport: CurlTransport
        let pki: TestPKI
        let dir: String
        let plugin: String
        let clock = Clock()
        let log = Log()
        let cache = ExecCredentialCache()

        init() throws {
            pki = try ExecPluginTests.pki.get()
            try double.start(tls: KubernetesAPIDouble.TLS(certificateChain: pki.serverCertificate, privateKey: pki.serverKey,
                                                          clientCA: pki.caCertificate))
            var settings = TransportSettings()
            settings.maxAttempts = 1
            transport = CurlTransport(settings: settings)
            dir = ExecPluginTests.folder + "/" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            plugin = dir + "/fake-plugin"
            try ExecPluginTests.script.write(toFile: plugin, atomically: true, encoding: .utf8)
            chmod(plugin, 0o755)
            try pki.clientCertificate.write(to: dir + "/client.crt")
            try pki.clientKey.write(to: dir + "/client.key")
        }

        /// How many times the plugin ran.
        var runs: Int { Int((try? String(contentsOfFile: dir + "/runs", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "0") ?? 0 }

        /// A kubeconfig whose user runs the fake plugin; `exec` is extra YAML inside the exec mapping.
        func kubeconfig(mode: String, api: String = "client.authentication.k8s.io/v1beta1", command: String? = nil,
                        exec extra: String = "") throws -> String {
            try KubeconfigOptionsTests.kubeconfig(double, pki: pki, cluster: """
                extensions:
                - name: client.authentication.k8s.io/exec
                  extension: {audience: policyhub-tests}
                """, user: """
                exec:
                  apiVersion: \(api)
                  command: \(command ?? plugin)
                  args: [get-token, --cluster, c1]
                  env:
                  - {name: FAKE_DIR, value: '\(dir)'}
                  - {name: FAKE_MODE, value: \(mode)}
                  - {name: FAKE_TOKEN, value: exec-token}
                  - {name: FAKE_API, value: \(api)}
                  - {name: FAKE_CERT, value: '\(dir)/client.crt'}
                  - {name: FAKE_KEY, value: '\(dir)/client.key'}
                \(extra.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
                """, userName: "cloud-user", in: dir)
        }

        func settings(allowed: [String]? = nil, interactive: Bool = false, timeout: Double = 20) -> ExecSettings {
            let clock = self.clock, log = self.log
            return ExecSettings(allowed: allowed ?? [plugin], interactive: interactive, timeout: timeout,
                                now: { clock.now }, log: { log.append($0) })
        }

        func member(_ kubeconfig: String, settings: ExecSettings? = nil) throws -> KubernetesMember {
            KubernetesMember(cluster: "c1", endpoint: try Kubeconfig.endpoint(path: kubeconfig, context: nil), transport: transport,
                             exec: settings ?? self.settings(), credentials: cache)
        }

        deinit {
            transport.shutdown()
            double.stop()
        }
    }

    static let object = RenderedObject(
        identity: ObjectIdentity(kind: .clusterSecurityRule, namespace: "", name: "exec-rule"), source: "x", hash: "sha256:x",
        value: .map([Value.MapEntry("apiVersion", .string("neuvector.com/v1")), Value.MapEntry("kind", .string("NvClusterSecurityRule")),
                     Value.MapEntry("metadata", .map([
                         Value.MapEntry("labels", .map([Value.MapEntry(HubAnnotation.managedByKey, .string(HubAnnotation.managedByValue))])),
                         Value.MapEntry("name", .string("exec-rule"))])),
                     Value.MapEntry("spec", .map([Value.MapEntry("target", .map([Value.MapEntry("policymode", .string("Protect"))]))]))]))

    @Test(arguments: ["client.authentication.k8s.io/v1beta1", "client.authentication.k8s.io/v1"])
    func aTokenIsCachedAndItsStderrLoggedWithoutIt(api: String) async throws {
        let f = try Fixture()
        let member = try f.member(try f.kubeconfig(mode: "token", api: api, exec: api.hasSuffix("/v1") ? "interactiveMode: Never" : ""))
        let outcome = try await member.push([Self.object])
        #expect(outcome.created.count == 1)
        #expect(try await member.managedObjects().count == 1)
        #expect(f.runs == 1, "the credential was not cached")
        #expect(f.log.all.contains("cluster c1: exec plugin '\(f.plugin)': fake plugin: handing out [redacted]"), "\(f.log.all)")
        #expect(!f.log.all.joined().contains("exec-token"))
    }

    @Test func aV1PluginMustSayHowInteractiveItIs() throws {
        let f = try Fixture()
        #expect(throws: KubeconfigError.self) {
            _ = try Kubeconfig.endpoint(path: try f.kubeconfig(mode: "token", api: "client.authentication.k8s.io/v1"), context: nil)
        }
        do {
            _ = try Kubeconfig.endpoint(path: try f.kubeconfig(mode: "token", api: "client.authentication.k8s.io/v1alpha1"), context: nil)
            Issue.record("v1alpha1 was accepted")
        } catch {
            #expect("\(error)".contains("v1alpha1 is gone"))
        }
    }

    @Test func theCredentialIsRunAgainAfterItsExpiry() async throws {
        let f = try Fixture()
        // the plugin says its token expires 200 s after the injected clock's start
        func expires(at seconds: Double) throws {
            try ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: seconds))
                .write(toFile: f.dir + "/expires", atomically: true, encoding: .utf8)
        }
        try expires(at: 1_800_000_200)
        let member = try f.member(try f.kubeconfig(mode: "token"))
        _ = try await member.managedObjects()
        f.clock.advance(199)
        _ = try await member.managedObjects()
        #expect(f.runs == 1)
        try expires(at: 1_800_003_600)
        f.clock.advance(1)
        _ = try await member.managedObjects()
        #expect(f.runs == 2, "an expired credential was used again")
        _ = try await member.managedObjects()
        #expect(f.runs == 2)
    }

    @Test func a401RunsThePluginExactlyOnceMore() async throws {
        let f = try Fixture()
        let member = try f.member(try f.kubeconfig(mode: "rotate"))
        // the first token is refused: the plugin runs again, the request is retried once and succeeds
        #expect(try await member.managedObjects().isEmpty)
        #expect(f.runs == 2)
        _ = try await member.managedObjects()
        #expect(f.runs == 2)
    }

    @Test func aCertificateAnswerIsUsedForTLS() async throws {
        let f = try Fixture()
        let member = try f.member(try f.kubeconfig(mode: "cert"))
        let outcome = try await member.push([Self.object])
        #expect(outcome.created.count == 1 && f.runs == 1)
    }

    @Test func refusalsNameThePluginAndRunNothing() async throws {
        let f = try Fixture()
        // not on the operator's allow-list
        let notAllowed = try f.member(try f.kubeconfig(mode: "token"), settings: f.settings(allowed: ["/bin/true"]))
        await #expect(throws: MemberError.self) { _ = try await notAllowed.managedObjects() }
        do {
            _ = try await notAllowed.managedObjects()
        } catch {
            #expect(error.message.contains("which the operator has not allowed") && error.message.contains("--allow-exec \(f.plugin)"))
        }
        // Always without a terminal (the daemon, or a CLI in CI)
        let always = try f.member(try f.kubeconfig(mode: "token", exec: "interactiveMode: Always"))
        do {
            _ = try await always.managedObjects()
            Issue.record("an Always plugin ran without a terminal")
        } catch {
            #expect(error.message.contains("needs a terminal (interactiveMode: Always)"))
        }
        // a command that is not installed: its install hint
        let missing = try f.member(try f.kubeconfig(mode: "token", command: "policyhub-no-such-plugin",
                                                    exec: "installHint: 'install it with: brew install no-such-plugin'"))
        do {
            _ = try await missing.managedObjects()
            Issue.record("a missing plugin ran")
        } catch {
            #expect(error.message.contains("'policyhub-no-such-plugin' of user 'cloud-user' was not found: install it with: brew install no-such-plugin"))
        }
        #expect(f.runs == 0)
        // a plugin that fails: its exit status and last stderr line
        let failing = try f.member(try f.kubeconfig(mode: "fail"))
        do {
            _ = try await failing.managedObjects()
            Issue.record("a failing plugin gave credentials")
        } catch {
            #expect(error.message.contains("failed (exit 3): fake plugin: no credentials for you"), "\(error.message)")
        }
    }

    @Test func aHangingPluginIsKilledAfterItsTimeout() async throws {
        let f = try Fixture()
        let member = try f.member(try f.kubeconfig(mode: "hang"), settings: f.settings(timeout: 1))
        let started = Date()
        do {
            _ = try await member.managedObjects()
            Issue.record("a hanging plugin answered")
        } catch {
            #expect(error.message.contains("did not answer within 1 s and was killed"))
        }
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func clusterInfoIsGivenOnlyWhenAskedFor() async throws {
        let f = try Fixture()
        _ = try await f.member(try f.kubeconfig(mode: "token")).managedObjects()
        var info = try JSONReader.parse(Array(try Data(contentsOf: URL(fileURLWithPath: f.dir + "/info.json"))))
        #expect(info["kind"]?.stringValue == "ExecCredential" && info["spec"]?["interactive"] == .bool(false))
        #expect(info["spec"]?["cluster"] == nil)
        let cache = ExecCredentialCache()
        let asking = KubernetesMember(cluster: "c1", endpoint: try Kubeconfig.endpoint(
            path: try f.kubeconfig(mode: "token", exec: "provideClusterInfo: true"), context: nil), transport: f.transport,
                                      exec: f.settings(), credentials: cache)
        _ = try await asking.managedObjects()
        info = try JSONReader.parse(Array(try Data(contentsOf: URL(fileURLWithPath: f.dir + "/info.json"))))
        #expect(info["spec"]?["cluster"]?["server"]?.stringValue == f.double.url(cluster: "c1"))
        #expect(info["spec"]?["cluster"]?["config"]?["audience"]?.stringValue == "policyhub-tests")
        #expect(info["spec"]?["cluster"]?["certificate-authority-data"]?.stringValue?.isEmpty == false)
    }
}

extension Array where Element == UInt8 {
    func write(to path: String) throws { try Data(self).write(to: URL(fileURLWithPath: path)) }
}
