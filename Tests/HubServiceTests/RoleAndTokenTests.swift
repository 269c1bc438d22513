import Foundation
import HubEngine
import HubService
import Testing

@Suite struct RoleAndTokenTests {
    static let admin = Principal(name: "a", role: .securityAdmin)
    static let owner = Principal(name: "o", role: .namespaceOwner, namespaces: ["payments"])
    static let promoter = Principal(name: "p", role: .promoter)
    static let viewer = Principal(name: "v", role: .viewer)

    @Test(arguments: [
        (admin, Access.read, true), (admin, .writeDocument(namespace: nil), true), (admin, .writeDocument(namespace: "demo"), true),
        (admin, .promote, true), (admin, .operate, true),
        (owner, .read, true), (owner, .writeDocument(namespace: "payments"), true), (owner, .writeDocument(namespace: "demo"), false),
        (owner, .writeDocument(namespace: nil), false), (owner, .promote, false), (owner, .operate, false),
        (promoter, .read, true), (promoter, .writeDocument(namespace: "payments"), false), (promoter, .writeDocument(namespace: nil), false),
        (promoter, .promote, true), (promoter, .operate, false),
        (viewer, .read, true), (viewer, .writeDocument(namespace: "payments"), false), (viewer, .writeDocument(namespace: nil), false),
        (viewer, .promote, false), (viewer, .operate, false),
    ])
    func roleTable(_ principal: Principal, _ access: Access, _ allowed: Bool) {
        #expect(access.allows(principal) == allowed)
    }

    @Test func tokensAreStoredAsHashesAndRecognised() throws {
        let directory = NSTemporaryDirectory() + "tokens-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/tokens.yaml"
        let first = TokenFile.newToken()
        let second = TokenFile.newToken()
        try TokenFile.append(path: path, name: "sec", role: .securityAdmin, namespaces: [], sha256: first.sha256)
        try TokenFile.append(path: path, name: "pay", role: .namespaceOwner, namespaces: ["payments"], sha256: second.sha256)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains(first.token) && !text.contains(second.token))
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let tokens = try TokenFile.load(path: path)
        #expect(tokens.principal(token: first.token)?.name == "sec")
        #expect(tokens.principal(token: second.token) == Principal(name: "pay", role: .namespaceOwner, namespaces: ["payments"]))
        #expect(tokens.principal(token: first.token + "x") == nil)
        #expect(tokens.principal(token: "") == nil)
        #expect(throws: ConfigError.self) { try TokenFile.append(path: path, name: "sec", role: .viewer, namespaces: [], sha256: first.sha256) }
    }

    @Test(arguments: [
        ("tokens:\n- name: x\n  role: admin\n  sha256: 00\n", 3, "role must be one of"),
        ("tokens:\n- name: x\n  role: viewer\n  sha256: abc\n", 4, "sha256 must be 64"),
        ("tokens:\n- name: x\n  role: namespace-owner\n  sha256: \(String(repeating: "a", count: 64))\n", 2, "needs namespaces"),
        ("users: []\n", 1, "expected a mapping with 'tokens:'"),
    ])
    func badTokenFilesNameTheLine(_ text: String, _ line: Int, _ message: String) throws {
        let path = NSTemporaryDirectory() + "tokens-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try TokenFile.load(path: path)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.line == line)
            #expect(error.description.contains(message))
            #expect(error.description.hasPrefix("\(path):\(line):"))
        }
    }

    @Test func configErrorsNameTheLine() throws {
        let path = NSTemporaryDirectory() + "hub-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "tokens: t.yaml\nschedules:\n  driftReport: \"0 25 * * *\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try HubConfig.load(path: path) }
        do { _ = try HubConfig.load(path: path) } catch { #expect(error.description.hasPrefix("\(path):3:16: error: driftReport: hour")) }
        try "tokens: t.yaml\nlisten: nowhere\n".write(toFile: path, atomically: true, encoding: .utf8)
        do { _ = try HubConfig.load(path: path) } catch { #expect(error.line == 2) }
        // requests in flight over the members: a located error out of range, the number kept in range
        try "tokens: t.yaml\nmemberConnections: 0\n".write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try HubConfig.load(path: path)
            Issue.record("memberConnections: 0 accepted")
        } catch { #expect(error.description.hasPrefix("\(path):2:20: error: memberConnections must be 1 to 100000"), "\(error)") }
        try "tokens: t.yaml\nmemberConnections: 500\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try HubConfig.load(path: path).memberConnections == 500)
        try "tokens: t.yaml\nlisten: 0.0.0.0:9443\nschedules: {reconcileInterval: 5m}\nstate: s.sqlite\n".write(toFile: path, atomically: true, encoding: .utf8)
        let config = try HubConfig.load(path: path)
        #expect(config.port == 9443 && config.host == "0.0.0.0" && config.reconcileInterval == 300)
        #expect(config.statePath == (path as NSString).deletingLastPathComponent + "/s.sqlite")
        #expect(config.allowExec.isEmpty && config.maxConnections == 1024)
        // a PostgreSQL state stays the URL written (never resolved as a path)
        try "tokens: t.yaml\nstate: postgres://hub@db.internal:5432/policyhub?sslmode=verify-full\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try HubConfig.load(path: path).statePath == "postgres://hub@db.internal:5432/policyhub?sslmode=verify-full")
        // the operator's allow-list of exec credential plugins, and the connection bound
        try "tokens: t.yaml\nallowExec: [/usr/local/bin/aws, gke-gcloud-auth-plugin]\nmaxConnections: 64\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let allowing = try HubConfig.load(path: path)
        #expect(allowing.allowExec == ["/usr/local/bin/aws", "gke-gcloud-auth-plugin"] && allowing.maxConnections == 64)
        try "tokens: t.yaml\nallowExec: aws\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try HubConfig.load(path: path) }
        do { _ = try HubConfig.load(path: path) } catch { #expect(error.description.hasPrefix("\(path):2:12: error: allowExec must be a list")) }
        // a branch to follow: its checkout is the repository; only real transports, never ext::
        try "tokens: t.yaml\nrepository: {url: ../policy.git, branch: release, pollInterval: 30s, webhookSecretFromEnv: GIT_SECRET}\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let following = try HubConfig.load(path: path)
        let folder = (path as NSString).deletingLastPathComponent
        #expect(following.followed == FollowedBranch(url: folder + "/../policy.git", branch: "release", checkout: folder + "/.policyhub/checkout"))
        #expect(following.repository == folder + "/.policyhub/checkout" && following.pollInterval == 30)
        #expect(following.gitWebhookSecretVariable == "GIT_SECRET")
        for (body, message) in [("{url: 'ext::sh -c touch% /tmp/x'}", "is not an absolute path, file://"),
                                ("{url: /srv/policy.git, branch: '-x'}", "is not a branch name"),
                                ("{branch: main}", "repository.url: the remote to follow is required"),
                                ("{url: /srv/policy.git, secret: x}", "unknown key 'repository.secret'")] {
            try "tokens: t.yaml\nrepository: \(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
            #expect(throws: ConfigError.self) { try HubConfig.load(path: path) }
            do { _ = try HubConfig.load(path: path) } catch { #expect(error.description.contains(message), "\(error.description)") }
        }
        // the keys trusted to sign policy commits, relative to hub.yaml's folder
        try "tokens: t.yaml\ntrustedKeys: [keys/team.asc, /etc/policyhub/allowed_signers]\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try HubConfig.load(path: path).trustedKeys == [(path as NSString).deletingLastPathComponent + "/keys/team.asc",
                                                               "/etc/policyhub/allowed_signers"])
        try "tokens: t.yaml\ntrustedKeys: team.asc\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try HubConfig.load(path: path) }
        do { _ = try HubConfig.load(path: path) } catch { #expect(error.description.hasPrefix("\(path):2:14: error: trustedKeys must be a list")) }
        try "tokens: t.yaml\nmaxConnections: 0\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try HubConfig.load(path: path) }
        do { _ = try HubConfig.load(path: path) } catch { #expect(error.line == 2) }
    }

    @Test func metricsAreInThePrometheusTextFormat() {
        let metrics = HubMetrics()
        metrics.increment("policyhub_pushes_total", labels: [("result", "ok")], by: 3)
        metrics.observeRequest(route: "/v1/clusters", method: "GET", status: 200, seconds: 0.003)
        let text = metrics.exposition()
        #expect(text.contains("# TYPE policyhub_pushes_total counter\npolicyhub_pushes_total{result=\"ok\"} 3\n"))
        #expect(text.contains("policyhub_http_request_duration_seconds_bucket{route=\"/v1/clusters\",le=\"0.0025\"} 0\n"))
        #expect(text.contains("policyhub_http_request_duration_seconds_bucket{route=\"/v1/clusters\",le=\"0.005\"} 1\n"))
        #expect(text.contains("policyhub_http_request_duration_seconds_count{route=\"/v1/clusters\"} 1\n"))
    }
}
