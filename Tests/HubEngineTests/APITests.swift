import Foundation
import HubEngine
import HubService
import HubStore
import Hummingbird
import HummingbirdTesting
import Logging
import PolicyCore
import Testing

/// The REST API route by route over the engine on an in-memory store and a manual clock, through
/// Hummingbird's router test client (no socket). The daemon over real state files and sockets is tested
/// on top of this in PolicyHubCLITests/ServeTests.
@Suite struct APITests {
    struct Client {
        let client: any TestClientProtocol
        let tokens: [String: String]

        /// A request as `token` (a role name, or nil for none); the answer's status and JSON.
        func call(_ method: HTTPRequest.Method, _ path: String, as token: String? = "viewer", body: String? = nil,
                  headers extra: HTTPFields = [:]) async throws -> (status: Int, json: Value, headers: HTTPFields) {
            var headers = extra
            if let token, let secret = tokens[token] { headers[.authorization] = "Bearer \(secret)" }
            if body != nil { headers[.contentType] = "application/json" }
            return try await client.execute(uri: path, method: method, headers: headers,
                                            body: body.map { ByteBuffer(string: $0) }) { response in
                (Int(response.status.code), (try? JSONReader.parse(Array(buffer: response.body))) ?? .null, response.headers)
            }
        }
    }

    /// The API over the example fleet, applied once (staging holds r1), with production's `gates`.
    static func withAPI(gates: String = "{}", _ body: @escaping @Sendable (Client, Fleet) async throws -> Void) async throws {
        try await Fleet.with(gates: gates) { fleet in
            _ = try await fleet.apply()
            var tokens: [String: String] = [:]
            for (name, role, namespaces) in [("security-admin", Role.securityAdmin, [String]()), ("payments-owner", .namespaceOwner, ["payments"]),
                                             ("promoter", .promoter, []), ("viewer", .viewer, [])] {
                let made = TokenFile.newToken()
                try TokenFile.append(path: fleet.folder + "/tokens.yaml", name: name, role: role, namespaces: namespaces, sha256: made.sha256)
                tokens[name] = made.token
            }
            var logger = Logger(label: "policyhub-api-test")
            logger.logLevel = .critical
            let operations = EngineOperations(engine: fleet.engine, logger: logger)
            let api = HubAPI(operations: operations, tokens: try TokenSource(path: fleet.folder + "/tokens.yaml", logger: logger),
                             metrics: HubMetrics(), maxBodyBytes: 1 << 20, logger: logger, afterDriftReport: { _, _ in })
            let app = Application(router: api.router(), logger: logger)
            let known = tokens
            try await app.test(.router) { client in try await body(Client(client: client, tokens: known), fleet) }
        }
    }

    static let paymentsRule = """
        {"apiVersion": "neuvector.com/v1", "kind": "NvSecurityRule",
         "metadata": {"name": "nv.audit.payments", "namespace": "payments"},
         "spec": {"target": {"selector": {"name": "nv.audit.payments", "criteria": [
             {"key": "service", "op": "=", "value": "audit.payments"}, {"key": "domain", "op": "=", "value": "payments"}]}},
          "process": [{"action": "deny", "name": "curl", "path": "/usr/bin/curl"}]}}
        """

    @Test func clustersEnvironmentsAndPolicyRead() async throws {
        try await Self.withAPI { api, _ in
            let clusters = try await api.call(.get, "/v1/clusters")
            #expect(clusters.status == 200)
            guard case .list(let rows)? = clusters.json["clusters"] else { Issue.record("no clusters: \(clusters.json)"); return }
            #expect(rows.compactMap { $0["cluster"]?.stringValue } == ["prod-eu-1", "prod-us-1", "staging-eu-1"])
            let staging = try await api.call(.get, "/v1/clusters/staging-eu-1")
            #expect(staging.json["appliedRevision"] == .string("r1") && staging.json["inStep"] == .bool(true))
            #expect(try await api.call(.get, "/v1/clusters/nowhere").status == 404)
            let policy = try await api.call(.get, "/v1/clusters/staging-eu-1/policy")
            #expect(policy.status == 200 && policy.json["revision"] == .string("r1"))
            // production has no revision before its first promotion
            #expect(try await api.call(.get, "/v1/clusters/prod-eu-1/policy").status == 404)
            let environments = try await api.call(.get, "/v1/environments")
            guard case .list(let envs)? = environments.json["environments"] else { Issue.record("\(environments.json)"); return }
            #expect(envs.first?["desiredRevision"]?["id"] == .string("r1") && envs.last?["desiredRevision"] == .null)
            let revisions = try await api.call(.get, "/v1/environments/staging/revisions")
            guard case .list(let list)? = revisions.json["revisions"] else { Issue.record("\(revisions.json)"); return }
            #expect(list.count == 1 && list.first?["author"] == .string("alice"))
            #expect(try await api.call(.get, "/v1/environments/nowhere/revisions").status == 404)
            #expect(try await api.call(.get, "/v1/clusters", as: nil).status == 401)
        }
    }

    @Test func documentWritesByRoleWithETags() async throws {
        try await Self.withAPI { api, fleet in
            let path = "/v1/namespaces/payments/documents/NvSecurityRule/nv.audit.payments"
            let written = try await api.call(.put, path, as: "payments-owner", body: Self.paymentsRule,
                                             headers: [.ifMatch: "\"absent\""])
            #expect(written.status == 200, "\(written.json)")
            #expect(written.json["unchanged"] == .bool(false) && written.json["revision"]?["id"] == .string("r2"))
            let etag = try #require(written.headers[.eTag])
            #expect(FileManager.default.fileExists(atPath: fleet.folder + "/policies/namespaces/payments/nv.audit.payments.yaml"))
            let same = try await api.call(.put, path, as: "payments-owner", body: Self.paymentsRule)
            #expect(same.status == 200 && same.json["unchanged"] == .bool(true) && same.json["revision"]?["id"] == .string("r2"))
            let read = try await api.call(.get, path)
            #expect(read.status == 200 && read.headers[.eTag] == etag)
            // the owner of payments may not write a global document, nor another namespace's
            let global = try await api.call(.put, "/v1/documents/NvClusterSecurityRule/x", as: "payments-owner", body: "{}")
            #expect(global.status == 403)
            let other = try await api.call(.delete, "/v1/namespaces/demo/documents/NvSecurityRule/nv.nginx-pod.demo", as: "payments-owner")
            #expect(other.status == 403)
            // a stale ETag is a conflict; an invalid body is 422 at its line, and records nothing
            let stale = try await api.call(.delete, path, as: "payments-owner", headers: [.ifMatch: "\"absent\""])
            #expect(stale.status == 409)
            let invalid = try await api.call(.put, path, as: "payments-owner",
                                             body: Self.paymentsRule.replacingOccurrences(of: "\"deny\"", with: "\"maybe\""))
            #expect(invalid.status == 422)
            guard case .list(let lines)? = invalid.json["error"]?["diagnostics"] else { Issue.record("\(invalid.json)"); return }
            #expect(lines.contains { $0.stringValue?.hasPrefix("body:") == true })
            #expect(try fleet.store.revisions(environment: "staging").count == 2)
            // an ambiguous pair is refused by the API as by validate, located in the body
            let ambiguous = Self.paymentsRule.replacingOccurrences(of: #""process": [{"action": "deny", "name": "curl", "path": "/usr/bin/curl"}]"#,
                                                                   with: #""ingress": [{"name": "a", "action": "allow", "ports": "tcp/80", "applications": ["any"], "selector": {"name": "external"}}, {"name": "b", "action": "deny", "ports": "tcp/80", "applications": ["any"], "selector": {"name": "external"}}]"#)
            #expect(ambiguous != Self.paymentsRule)
            let refused = try await api.call(.put, path, as: "payments-owner", body: ambiguous)
            #expect(refused.status == 422, "\(refused.json)")
            guard case .list(let found)? = refused.json["error"]?["diagnostics"] else { Issue.record("\(refused.json)"); return }
            #expect(found.contains { $0.stringValue?.hasPrefix("body:") == true && $0.stringValue?.contains("ambiguous") == true }, "\(found)")
            let removed = try await api.call(.delete, path, as: "payments-owner", headers: [.ifMatch: etag])
            #expect(removed.status == 200 && removed.json["hash"] == .null)
        }
    }

    @Test func promotionGatesAreAnsweredAsValues() async throws {
        try await Self.withAPI(gates: "{minimumSoak: 1h}") { api, fleet in
            let refused = try await api.call(.post, "/v1/promotions", as: "promoter", body: #"{"to": "production", "namespaces": ["demo"]}"#)
            #expect(refused.status == 412)
            #expect(refused.json["error"]?["gates"] == .list([.string("minimumSoak: NvSecurityRule/demo/nv.nginx-pod.demo, NvSecurityRule/demo/nv.node-pod.demo, NvSecurityRule/demo/nv.redis-pod.demo have soaked 0 s of 3600 s on staging (3600 s to go)")]))
            let dry = try await api.call(.post, "/v1/promotions", as: "promoter", body: #"{"to": "production", "namespaces": ["demo"], "dryRun": true}"#)
            #expect(dry.status == 200 && dry.json["dryRun"] == .bool(true))
            #expect(dry.json["output"]?.stringValue?.contains("prod-eu-1 (production):\n  + NvSecurityRule/demo/nv.nginx-pod.demo") == true)
            guard case .list(let added)? = dry.json["changes"]?["added"] else { Issue.record("\(dry.json)"); return }
            #expect(added.contains(.string("NvSecurityRule/demo/nv.nginx-pod.demo")))
            fleet.clock.advance(to: fleet.clock.now() + 3600)
            let promoted = try await api.call(.post, "/v1/promotions", as: "promoter", body: #"{"to": "production", "namespaces": ["demo"]}"#)
            #expect(promoted.status == 201, "\(promoted.json)")
            #expect(promoted.json["revision"]?["environment"] == .string("production"))
            let stale = try await api.call(.post, "/v1/promotions", as: "promoter",
                                           body: #"{"to": "production", "all": true, "baseRevision": "r1"}"#)
            #expect(stale.status == 409 && stale.json["error"]?["currentRevision"] == .string("r2"))
            #expect(try await api.call(.post, "/v1/promotions", as: "viewer", body: #"{"to": "production", "all": true}"#).status == 403)
            let unknown = try await api.call(.post, "/v1/promotions", as: "promoter", body: #"{"to": "nowhere", "all": true}"#)
            #expect(unknown.status == 404 && unknown.json["error"]?["message"]?.stringValue?.contains("unknown environment 'nowhere'") == true)
            let rollback = try await api.call(.post, "/v1/rollbacks", as: "promoter", body: #"{"environment": "staging", "to": "r1", "reason": "test"}"#)
            #expect(rollback.status == 201 && rollback.json["revision"]?["cause"] == .string("rollback to r1 (reason: test)"))
            let foreign = try await api.call(.post, "/v1/rollbacks", as: "promoter", body: #"{"environment": "production", "to": 1, "reason": "test"}"#)
            #expect(foreign.status == 422)
        }
    }

    @Test func driftReconcileAuditAndHealth() async throws {
        try await Self.withAPI { api, fleet in
            #expect(try await api.call(.get, "/v1/drift/reports/latest").status == 404)
            let run = try await api.call(.post, "/v1/drift/reports", as: "security-admin")
            #expect(run.status == 201 && run.json["findings"] == .list([]))
            // a hand-made change on the member is drift
            let held = fleet.folder + "/.policyhub/gitops/staging-eu-1"
            let files = FileManager.default.enumerator(atPath: held)?.allObjects.compactMap { $0 as? String }.filter { $0.hasSuffix(".yaml") } ?? []
            let first = try #require(files.sorted().first)
            try FileManager.default.removeItem(atPath: held + "/" + first)
            let second = try await api.call(.post, "/v1/drift/reports", as: "security-admin")
            guard case .list(let findings)? = second.json["findings"] else { Issue.record("\(second.json)"); return }
            #expect(findings.contains { $0["class"] == .string("missing") && $0["new"] == .bool(true) })
            let latest = try await api.call(.get, "/v1/drift/reports/latest")
            #expect(latest.status == 200 && latest.json["id"] == .int(2))
            let reconcile = try await api.call(.post, "/v1/reconcile", as: "security-admin")
            #expect(reconcile.status == 200 && reconcile.json["failed"] == .int(0))
            let audit = try await api.call(.get, "/v1/audit", as: "security-admin")
            guard case .list(let entries)? = audit.json["entries"] else { Issue.record("\(audit.json)"); return }
            #expect(entries.contains { $0["actor"] == .string("alice") && $0["action"] == .string("revision") })
            #expect(try await api.call(.get, "/readyz", as: nil).json["status"] == .string("ready"))
            #expect(try await api.call(.get, "/healthz", as: nil).status == 200)
        }
    }

    @Test func badRequestValuesAre4xxInWords() async throws {
        try await Self.withAPI { api, _ in
            for (body, status) in [("not json", 400), (#"{"to": 3}"#, 422), (#"{"to": "production", "all": "yes"}"#, 422),
                                   (#"{"to": "production", "documents": ["demo/x"]}"#, 422), (#"{"to": "production"}"#, 422),
                                   (#"{"to": "production", "to": "staging", "all": true}"#, 400)] {
                let answer = try await api.call(.post, "/v1/promotions", as: "promoter", body: body)
                #expect(answer.status == status, "\(body): \(answer.json)")
                let message = answer.json["error"]?["message"]?.stringValue ?? ""
                #expect(!message.isEmpty && !message.contains("Error(") && !message.contains("OperationError"), "\(message)")
            }
            let dots = try await api.call(.put, "/v1/namespaces/..%2F../documents/NvSecurityRule/x", as: "security-admin", body: "{}")
            #expect(dots.status == 400, "\(dots.json)")
            #expect(try await api.call(.get, "/v1/clusters/..%2F..").status == 404)
            #expect(try await api.call(.put, "/v1/clusters").status == 405)
        }
    }
}
