import Foundation
import HubEngine
import HubService
import HubTransport
import Hummingbird
import Logging
import PolicyCore
import PolicyHubCLI
import PolicyHubTesting
import Testing

typealias Reply = HubTransport.HTTPResponse
typealias Call = HubTransport.HTTPRequest

/// `policyhub serve` in-process on 127.0.0.1 (port 0) over the example fleet, with real state files and
/// libcurl as the client.
@Suite struct ServeTests {
    typealias CLI = CommandLineTests

    struct Hub {
        var port: Int
        var folder: String
        var tokens: [String: String]  // role name (and "payments-owner") -> token
        var client: CurlTransport
        var clock: any HubClock

        var scheme = "http"
        var tls = TLSSettings()

        func request(_ method: String, _ path: String, token: String? = nil, body: String? = nil,
                     headers: [HTTPHeader] = []) async -> Reply {
            var all = headers
            if let token { all.append(HTTPHeader("Authorization", "Bearer \(token)")) }
            if body != nil && !all.contains(where: { $0.name == "Content-Type" }) { all.append(HTTPHeader("Content-Type", "application/json")) }
            let request = Call(method: method, url: "\(scheme)://127.0.0.1:\(port)\(path)", headers: all,
                                      body: body.map { Array($0.utf8) })
            switch await client.send(request, tls: tls) {
            case .success(let response): return response
            case .failure(let error): return Reply(status: -1, headers: [], body: Array("\(error)".utf8))
            }
        }

        func json(_ response: Reply) -> Value { (try? JSONReader.parse(response.body)) ?? .null }

        func revisions(_ environment: String) async -> Int {
            let response = await request("GET", "/v1/environments/\(environment)/revisions", token: tokens["viewer"])
            if case .list(let items)? = json(response)["revisions"] { return items.count }
            return -1
        }
    }

    /// Starts a hub on a copy of the example (applied once), runs `body`, stops the hub.
    static func withHub(configure: (inout HubConfig) -> Void = { _ in }, clock: any HubClock = SystemClock(),
                        gates: String = "{}", _ body: (Hub) async throws -> Void) async throws {
        let folder = NSTemporaryDirectory() + "policyhub-serve-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try PromoteTests.example(gates: gates, in: folder)
        #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
        var tokens: [String: String] = [:]
        for (name, role, namespaces) in [("security-admin", Role.securityAdmin, [String]()), ("payments-owner", .namespaceOwner, ["payments"]),
                                         ("promoter", .promoter, []), ("viewer", .viewer, [])] {
            let made = TokenFile.newToken()
            try TokenFile.append(path: folder + "/tokens.yaml", name: name, role: role, namespaces: namespaces, sha256: made.sha256)
            tokens[name] = made.token
        }
        var config = HubConfig(statePath: folder + "/.policyhub/state.sqlite", repository: folder, tokensPath: folder + "/tokens.yaml")
        config.port = 0
        configure(&config)
        var logger = Logger(label: "policyhub-test")
        logger.logLevel = .warning
        let server = HubServer(config: config, operations: try HubDaemon.operations(repository: folder, statePath: config.statePath),
                               clock: clock, logger: logger)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let task = Task { try await server.run(signals: [], onRunning: { continuation.yield($0) }) }
        defer { task.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        var settings = TransportSettings()
        settings.maxAttempts = 1
        let client = CurlTransport(settings: settings)
        defer { client.shutdown() }
        try await body(Hub(port: port, folder: folder, tokens: tokens, client: client, clock: clock))
        task.cancel()
        _ = await task.result
    }

    static let paymentsRule = """
        apiVersion: neuvector.com/v1
        kind: NvSecurityRule
        metadata:
          name: nv.audit.payments
          namespace: payments
        spec:
          target:
            selector:
              name: nv.audit.payments
              criteria:
              - {key: service, op: "=", value: audit.payments}
              - {key: domain, op: "=", value: payments}
          process:
          - {action: deny, name: curl, path: /usr/bin/curl}
        """

    static func globalRule(_ name: String) -> String {
        """
        apiVersion: neuvector.com/v1
        kind: NvClusterSecurityRule
        metadata:
          name: \(name)
        spec:
          target:
            selector:
              name: containers
              criteria:
              - {key: container, op: "=", value: "*"}
          process:
          - {action: deny, name: wget, path: /usr/bin/wget}
        """
    }

    enum Class: String, CaseIterable { case read, writeGlobal, writeOwnNamespace, writeOtherNamespace, promote, operate }

    /// One request per endpoint class; the allowed answer is whatever the operation says (never 401/403).
    static func send(_ endpoint: Class, hub: Hub, token: String?) async -> Reply {
        switch endpoint {
        case .read: return await hub.request("GET", "/v1/clusters", token: token)
        case .writeGlobal:
            // not a valid rule (422) so that an allowed write records nothing either
            return await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/probe", token: token, body: "kind: NvClusterSecurityRule\n")
        case .writeOwnNamespace:
            return await hub.request("PUT", "/v1/namespaces/payments/documents/NvSecurityRule/probe", token: token, body: "kind: x\n")
        case .writeOtherNamespace:
            return await hub.request("PUT", "/v1/namespaces/demo/documents/NvSecurityRule/probe", token: token, body: "kind: x\n")
        case .promote:
            return await hub.request("POST", "/v1/promotions", token: token, body: #"{"to":"production","namespaces":["demo"],"dryRun":true}"#)
        case .operate: return await hub.request("POST", "/v1/drift/reports", token: token)
        }
    }

    static let allowed: [String: Set<Class>] = [
        "security-admin": Set(Class.allCases),
        "payments-owner": [.read, .writeOwnNamespace],
        "promoter": [.read, .promote],
        "viewer": [.read],
    ]

    @Test func everyRoleAgainstEveryEndpointClass() async throws {
        try await Self.withHub { hub in
            let before = await hub.revisions("staging")
            for endpoint in Class.allCases {
                let missing = await Self.send(endpoint, hub: hub, token: nil)
                #expect(missing.status == 401, "\(endpoint) without a token: \(missing.status)")
                #expect(hub.json(missing)["error"]?["reason"] == .string("Unauthorized"))
                let bad = await Self.send(endpoint, hub: hub, token: "phub_not-a-token")
                #expect(bad.status == 401, "\(endpoint) with a bad token: \(bad.status)")
                for (role, classes) in Self.allowed {
                    let response = await Self.send(endpoint, hub: hub, token: hub.tokens[role])
                    if classes.contains(endpoint) {
                        #expect(![401, 403].contains(response.status) && response.status > 0,
                                "\(role) \(endpoint): \(response.status) \(response.bodyText)")
                    } else {
                        #expect(response.status == 403, "\(role) \(endpoint): \(response.status) \(response.bodyText)")
                        #expect(hub.json(response)["error"]?["reason"] == .string("Forbidden"))
                    }
                }
            }
            #expect(await hub.revisions("staging") == before)
            // open endpoints
            #expect(await hub.request("GET", "/healthz").status == 200)
            #expect(await hub.request("GET", "/readyz").status == 200)
            let metrics = await hub.request("GET", "/metrics")
            #expect(metrics.bodyText.contains("policyhub_http_requests_total{route=\"/v1/clusters\",method=\"GET\",status=\"401\"} 2"))
            #expect(await hub.request("GET", "/v1/nothing", token: hub.tokens["viewer"]).status == 404)
        }
    }

    @Test func tlsWithVerificationOn() async throws {
        let pkiFolder = NSTemporaryDirectory() + "policyhub-pki-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: pkiFolder) }
        let pki = try TestPKI.make(in: pkiFolder)
        try await Self.withHub(configure: {
            $0.tlsCertificate = pkiFolder + "/server.crt"
            $0.tlsKey = pkiFolder + "/server.key"
        }) { plain in
            var hub = plain
            hub.scheme = "https"
            hub.tls.caPEM = pki.caCertificate
            let answer = await hub.request("GET", "/v1/clusters", token: hub.tokens["viewer"])
            #expect(answer.status == 200, "\(answer.bodyText)")
            // a client that does not trust the hub's CA is refused by its own verification
            hub.tls = TLSSettings()
            hub.tls.caPEM = pki.strangerCertificate
            #expect(await hub.request("GET", "/healthz").status == -1)
            // and plain HTTP is not answered on the TLS port
            hub.scheme = "http"
            #expect(await hub.request("GET", "/healthz").status != 200)
        }
    }

    @Test func aNamespaceOwnerStaysInItsNamespace() async throws {
        try await Self.withHub { hub in
            let owner = hub.tokens["payments-owner"]
            let before = await hub.revisions("staging")
            let global = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/owner-rule", token: owner, body: Self.globalRule("owner-rule"))
            #expect(global.status == 403)
            let other = await hub.request("PUT", "/v1/namespaces/demo/documents/NvSecurityRule/nv.audit.payments", token: owner,
                                          body: Self.paymentsRule.replacingOccurrences(of: "namespace: payments", with: "namespace: demo"))
            #expect(other.status == 403)
            // the path says payments, the document says demo
            let smuggled = await hub.request("PUT", "/v1/namespaces/payments/documents/NvSecurityRule/nv.audit.payments", token: owner,
                                             body: Self.paymentsRule.replacingOccurrences(of: "namespace: payments", with: "namespace: demo"))
            #expect(smuggled.status == 422, "\(smuggled.bodyText)")
            #expect(smuggled.bodyText.contains("metadata.namespace"))
            let removeGlobal = await hub.request("DELETE", "/v1/documents/NvClusterSecurityRule/baseline-defaults", token: owner)
            #expect(removeGlobal.status == 403)
            #expect(await hub.revisions("staging") == before)

            // its own namespace: recorded with the token's name, and the file is in the repository
            let own = await hub.request("PUT", "/v1/namespaces/payments/documents/NvSecurityRule/nv.audit.payments", token: owner,
                                        body: Self.paymentsRule, headers: [HTTPHeader("Content-Type", "application/yaml")])
            #expect(own.status == 200, "\(own.bodyText)")
            #expect(hub.json(own)["revision"]?["author"] == .string("payments-owner"))
            #expect(await hub.revisions("staging") == before + 1)
            #expect(FileManager.default.fileExists(atPath: hub.folder + "/policies/namespaces/payments/nv.audit.payments.yaml"))
            let validate = try CLI.run(["validate", "--repo", hub.folder])
            #expect(validate.status == 0, "\(validate.stderr)")
            let read = await hub.request("GET", "/v1/namespaces/payments/documents/NvSecurityRule/nv.audit.payments", token: hub.tokens["viewer"])
            #expect(read.bodyText.contains(#""name":"curl""#), "\(read.bodyText)")
            let audit = await hub.request("GET", "/v1/audit", token: hub.tokens["viewer"])
            #expect(audit.bodyText.contains("api: add NvSecurityRule/payments/nv.audit.payments"))
        }
    }

    @Test func malformedOversizedAndUnknownBodies() async throws {
        try await Self.withHub(configure: { $0.maxBodyBytes = 4096 }) { hub in
            let admin = hub.tokens["security-admin"]
            let before = await hub.revisions("staging")
            let notJSON = await hub.request("POST", "/v1/promotions", token: admin, body: #"{"to": "production","#)
            #expect(notJSON.status == 400)
            #expect(hub.json(notJSON)["error"]?["message"]?.stringValue?.contains("not JSON") == true)
            let unknown = await hub.request("POST", "/v1/promotions", token: admin, body: #"{"to":"production","all":true,"yolo":1}"#)
            #expect(unknown.status == 422)
            #expect(unknown.bodyText.contains("unknown field yolo"))
            let wrongType = await hub.request("POST", "/v1/rollbacks", token: admin, body: #"{"environment":"staging"}"#)
            #expect(wrongType.status == 422)
            let big = String(repeating: "# padding\n", count: 1000) + Self.globalRule("big")
            let oversized = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/big", token: admin, body: big)
            #expect(oversized.status == 413)
            // YAML that does not parse: the error points at the line of the submitted body
            let broken = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/broken", token: admin,
                                           body: "apiVersion: neuvector.com/v1\nkind: NvClusterSecurityRule\nmetadata:\n  name: [broken\n")
            #expect(broken.status == 422, "\(broken.bodyText)")
            #expect(broken.bodyText.contains("body:5:1: error:"), "\(broken.bodyText)")
            // a valid document with an invalid rule: the diagnostic names the body's line and column
            let badRule = Self.globalRule("bad-rule").replacingOccurrences(of: "action: deny", with: "action: maybe")
            let invalid = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/bad-rule", token: admin, body: badRule)
            #expect(invalid.status == 422, "\(invalid.bodyText)")
            #expect(invalid.bodyText.contains("body:12:14: error: process action"), "\(invalid.bodyText)")
            let misnamed = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/other", token: admin, body: Self.globalRule("bad-rule"))
            #expect(misnamed.status == 422)
            #expect(await hub.request("PUT", "/v1/documents/NvNothing/x", token: admin, body: "a: b\n").status == 404)
            #expect(await hub.revisions("staging") == before)
        }
    }

    @Test func conflictingWritesGet409WithTheCurrentRevision() async throws {
        try await Self.withHub { hub in
            let admin = hub.tokens["security-admin"]
            let base = try #require(hub.json(await hub.request("GET", "/v1/documents", token: admin))["revision"]?.stringValue)
            let first = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/edited", token: admin, body: Self.globalRule("edited"),
                                          headers: [HTTPHeader("If-Match", base)])
            #expect(first.status == 200, "\(first.bodyText)")
            let landed = try #require(hub.json(first)["revision"]?["id"]?.stringValue)
            let second = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/edited", token: admin,
                                           body: Self.globalRule("edited").replacingOccurrences(of: "wget", with: "curl"),
                                           headers: [HTTPHeader("If-Match", base)])
            #expect(second.status == 409, "\(second.bodyText)")
            #expect(hub.json(second)["error"]?["currentRevision"] == .string(landed))

            // two promotions of production from the same base: one lands, the other is a conflict
            let promotion = #"{"to":"production","namespaces":["demo"],"force":true,"baseRevision":null}"#
            let a = await hub.request("POST", "/v1/promotions", token: hub.tokens["promoter"], body: promotion)
            #expect(a.status == 201, "\(a.bodyText)")
            let b = await hub.request("POST", "/v1/promotions", token: hub.tokens["promoter"],
                                      body: promotion.replacingOccurrences(of: "null", with: "0"))
            #expect(b.status == 409, "\(b.bodyText)")
            #expect(await hub.revisions("production") == 1)
        }
    }

    @Test func promotionGatesAndRollbackThroughTheAPI() async throws {
        try await Self.withHub(gates: "{requireNoDrift: true}") { hub in
            let promoter = hub.tokens["promoter"]
            let refused = await hub.request("POST", "/v1/promotions", token: promoter, body: #"{"to":"production","all":true}"#)
            #expect(refused.status == 412, "\(refused.bodyText)")
            #expect(refused.bodyText.contains("requireNoDrift"))
            let dry = await hub.request("POST", "/v1/promotions", token: promoter, body: #"{"to":"production","all":true,"dryRun":true}"#)
            #expect(dry.status == 200)
            #expect(hub.json(dry)["output"]?.stringValue?.contains("prod-eu-1 (production):") == true)
            #expect(await hub.request("POST", "/v1/drift/reports", token: hub.tokens["security-admin"]).status == 201)
            let promoted = await hub.request("POST", "/v1/promotions", token: promoter, body: #"{"to":"production","all":true}"#)
            #expect(promoted.status == 201, "\(promoted.bodyText)")
            let nothing = await hub.request("POST", "/v1/promotions", token: promoter, body: #"{"to":"production","namespaces":["nope"]}"#)
            #expect(nothing.status == 422)
            let policy = await hub.request("GET", "/v1/clusters/prod-eu-1/policy", token: hub.tokens["viewer"])
            #expect(policy.status == 200)
            #expect(policy.bodyText.contains("nv.nginx-pod.demo"))
            let rollback = await hub.request("POST", "/v1/rollbacks", token: promoter, body: #"{"environment":"staging","to":"r999","reason":"test"}"#)
            #expect(rollback.status == 404)
        }
    }

    @Test func aScheduledDriftReportFiresOnTheInjectedClock() async throws {
        // 2026-11-27T10:17:00Z; the next firing of "0 */6 * * *" is 12:00
        let clock = ManualClock(now: 1_795_774_620)
        try await Self.withHub(configure: { $0.driftSchedule = try? CronExpression("0 */6 * * *") }, clock: clock) { hub in
            // no report was ever stored, so the 06:00 run counts as missed and runs at start
            try await Self.waitFor { await Self.reportCount(hub) == 1 }
            try await Self.waitFor { clock.sleeperCount == 1 }
            clock.advance(to: 1_795_780_799)  // 11:59:59: nothing yet
            try await Task.sleep(nanoseconds: 300_000_000)
            #expect(await Self.reportCount(hub) == 1)
            clock.advance(to: 1_795_780_800)  // 12:00
            try await Self.waitFor { await Self.reportCount(hub) == 2 }
            let metrics = await hub.request("GET", "/metrics")
            #expect(metrics.bodyText.contains("policyhub_drift_reports_total{trigger=\"schedule\"} 2"))
        }
    }

    static func reportCount(_ hub: Hub) async -> Int {
        let response = await hub.request("GET", "/v1/drift/reports", token: hub.tokens["viewer"])
        if case .list(let reports)? = hub.json(response)["reports"] { return reports.count }
        return -1
    }

    static func waitFor(_ condition: () async -> Bool) async throws {
        for _ in 0..<200 {
            if await condition() { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        Issue.record("timed out waiting")
    }

    @Test func theWebhookReceivesNewFindings() async throws {
        let received = Received()
        let router = Router()
        router.post("hook") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 1 << 20)
            // the first delivery is refused once: the transport retries it
            return await received.add(Array(body.readableBytesView), authorization: request.headers[.authorization]) == 1
                ? .serviceUnavailable : .ok
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let receiver = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                   onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) })
        let receiverTask = Task { try await receiver.run() }
        defer { receiverTask.cancel() }
        var iterator = ports.makeAsyncIterator()
        let receiverPort = try #require(await iterator.next())
        setenv("POLICYHUB_TEST_WEBHOOK_TOKEN", "hook-secret", 1)
        try await Self.withHub(configure: {
            $0.webhookURL = "http://127.0.0.1:\(receiverPort)/hook"
            $0.webhookTokenVariable = "POLICYHUB_TEST_WEBHOOK_TOKEN"
        }) { hub in
            let admin = hub.tokens["security-admin"]
            #expect(await hub.request("POST", "/v1/drift/reports", token: admin).status == 201)
            #expect(await received.count == 0)  // no findings, nothing sent
            // someone deletes a pushed file of staging-eu-1: a new "missing" finding
            let gitops = hub.folder + "/.policyhub/gitops/staging-eu-1"
            let files = FileManager.default.enumerator(atPath: gitops)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".yaml") } ?? []
            let victim = try #require(files.sorted().first)
            try FileManager.default.removeItem(atPath: gitops + "/" + victim)
            #expect(await hub.request("POST", "/v1/drift/reports", token: admin).status == 201)
            try await Self.waitFor { await received.count == 2 }
            #expect(await received.bodies[0] == received.bodies[1])  // the 503, then the retry of the same summary
            let summary = try JSONReader.parse(try #require(await received.bodies.first))
            #expect(summary["event"] == .string("drift-report"))
            #expect(summary["newFindings"] == .int(1))
            if case .list(let findings)? = summary["findings"] { #expect(findings.first?["class"] == .string("missing")) } else { Issue.record("no findings") }
            #expect(await received.authorizations == ["Bearer hook-secret", "Bearer hook-secret"])
            try await Self.waitFor { await hub.request("GET", "/metrics").bodyText.contains("policyhub_webhook_deliveries_total{result=\"ok\"} 1") }
            // the same finding again is not new: no further delivery
            #expect(await hub.request("POST", "/v1/drift/reports", token: admin).status == 201)
            try await Task.sleep(nanoseconds: 300_000_000)
            #expect(await received.count == 2)
        }
    }

    actor Received {
        var bodies: [[UInt8]] = []
        var authorizations: [String] = []
        var count: Int { bodies.count }
        /// Records a delivery attempt; returns how many there were so far.
        func add(_ body: [UInt8], authorization: String?) -> Int {
            bodies.append(body)
            authorizations.append(authorization ?? "")
            return bodies.count
        }
    }

    /// A `policyhub serve` process, its standard error as it comes.
    final class ServeProcess: @unchecked Sendable {
        let process = Process()
        private let lock = NSLock()
        private var text = ""
        private var ended = false  // the pipe reached its end: every line the process wrote is in `text`

        /// `environment`: variables added to this process's own.
        init(config: String, environment: [String: String] = [:]) throws {
            process.executableURL = URL(fileURLWithPath: CLI.binary)
            process.arguments = ["serve", "--config", config]
            if !environment.isEmpty {
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, added in added }
            }
            let pipe = Pipe()
            process.standardError = pipe
            process.standardOutput = FileHandle.nullDevice
            pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
                let data = handle.availableData
                guard let self else { return }
                if data.isEmpty {
                    handle.readabilityHandler = nil
                    self.lock.withLock { self.ended = true }
                    return
                }
                self.lock.withLock { self.text += String(decoding: data, as: UTF8.self) }
            }
            try process.run()
        }

        var log: String { lock.withLock { text } }

        /// The port from "policyhub serving http://127.0.0.1:PORT".
        func port() async throws -> Int {
            for _ in 0..<200 {
                if let range = log.range(of: "serving http://127.0.0.1:") {
                    let digits = log[range.upperBound...].prefix { $0.isNumber }
                    if let port = Int(digits) { return port }
                }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            throw CancellationError()
        }

        /// SIGTERM; the exit status once the process has ended and its last log lines have been read. A daemon
        /// still running a minute after SIGTERM is a failure (and is killed, so that the suite goes on).
        func terminate() -> Int32 {
            process.terminate()
            let deadline = Date().addingTimeInterval(60)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning {
                Issue.record("policyhub serve (pid \(process.processIdentifier)) did not stop within 60 s of SIGTERM; killed. Its log:\n\(log)")
                kill(process.processIdentifier, SIGKILL)
            }
            process.waitUntilExit()
            for _ in 0..<200 where !lock.withLock({ ended }) { usleep(10_000) }
            return process.terminationStatus
        }
    }

    @Test func sigtermFinishesTheRunningPushAndARestartResumes() async throws {
        try await Repo.withTemporaryFolderAsync { folder in
            try PromoteTests.example(gates: "{}", in: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            // production gets a revision that no cluster holds yet: the daemon's first reconcile pushes it
            #expect(try CLI.run(["promote", "--repo", folder, "--to", "production", "--all"]).status == 0)
            #expect(try CLI.run(["status", "--repo", folder]).status == 2)
            let made = TokenFile.newToken()
            try TokenFile.append(path: folder + "/tokens.yaml", name: "viewer", role: .viewer, namespaces: [], sha256: made.sha256)
            try """
                listen: 127.0.0.1:0
                tokens: tokens.yaml
                schedules: {reconcileInterval: 1h}
                """.write(toFile: folder + "/hub.yaml", atomically: true, encoding: .utf8)
            let first = try ServeProcess(config: folder + "/hub.yaml")
            _ = try await first.port()
            // SIGTERM right away: the reconcile started with the server; it finishes and is recorded
            #expect(first.terminate() == 0, "\(first.log)")
            #expect(first.log.contains("policyhub stopped"))
            #expect(!first.log.contains(made.token))
            let status = try CLI.run(["status", "--repo", folder])
            #expect(status.status == 0, "\(status.stdout)\(first.log)")

            // a restart serves again from the same state file
            let second = try ServeProcess(config: folder + "/hub.yaml")
            let port = try await second.port()
            var settings = TransportSettings()
            settings.maxAttempts = 1
            let client = CurlTransport(settings: settings)
            defer { client.shutdown() }
            let answer = await client.send(Call(method: "GET", url: "http://127.0.0.1:\(port)/v1/clusters",
                                                headers: [HTTPHeader("Authorization", "Bearer \(made.token)")]), tls: TLSSettings())
            let body = (try? answer.get().bodyText) ?? ""
            #expect(body.contains(#""cluster":"prod-eu-1","environment":"production","desiredRevision":"r2","appliedRevision":"r2""#), "\(body)")
            #expect(second.terminate() == 0)
            #expect(!second.log.contains(made.token))
        }
    }

    @Test func sigtermDuringAPushLetsItFinishAndRecordIt() async throws {
        try await Repo.withTemporaryFolderAsync { folder in
            try PromoteTests.example(gates: "{}", in: folder)
            let pki = try TestPKI.make(in: folder + "/pki")
            let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["hub-token"])
            defer { double.stop() }
            try KubernetesApplyTests.addMember("slow-k8s", kubeconfig: "slow.kubeconfig", in: folder, double: double, pki: pki)
            let applied = try CLI.run(["apply", "--repo", folder])
            #expect(applied.status == 0, "\(applied.stderr)")
            let admin = TokenFile.newToken()
            try TokenFile.append(path: folder + "/tokens.yaml", name: "admin", role: .securityAdmin, namespaces: [], sha256: admin.sha256)
            try "listen: 127.0.0.1:0\ntokens: tokens.yaml\n".write(toFile: folder + "/hub.yaml", atomically: true, encoding: .utf8)
            let hub = try ServeProcess(config: folder + "/hub.yaml")
            let port = try await hub.port()
            var settings = TransportSettings()
            settings.maxAttempts = 1
            let client = CurlTransport(settings: settings)
            defer { client.shutdown() }
            let auth = [HTTPHeader("Authorization", "Bearer \(admin.token)")]
            // a new revision through the API, then a push that the slow member holds up for about two seconds
            let put = await client.send(Call(method: "PUT", url: "http://127.0.0.1:\(port)/v1/documents/NvClusterSecurityRule/no-wget",
                                             headers: auth, body: Array(Self.globalRule("no-wget").utf8)), tls: TLSSettings())
            #expect((try? put.get().status) == 200, "\((try? put.get().bodyText) ?? "")")
            double.setFault(.status(code: 503, retryAfter: 1, count: 2), cluster: "slow-k8s")
            let before = double.requestCount(cluster: "slow-k8s")
            let reconcile = Task {
                await client.send(Call(method: "POST", url: "http://127.0.0.1:\(port)/v1/reconcile", headers: auth), tls: TLSSettings())
            }
            try await Self.waitFor { double.requestCount(cluster: "slow-k8s") > before }
            kill(hub.process.processIdentifier, SIGTERM)  // while the push waits on Retry-After
            let answer = await reconcile.value
            hub.process.waitUntilExit()
            #expect(hub.process.terminationStatus == 0, "\(hub.log)")
            // the request in flight was answered: the push finished
            let body = (try? answer.get().bodyText) ?? "\(answer)"
            #expect(body.contains(#""pushed":2,"failed":0"#), "\(body)")
            #expect(hub.log.contains("policyhub stopped"))
            #expect(!hub.log.contains(admin.token))
            let status = try CLI.run(["status", "--repo", folder])
            #expect(status.status == 0, "\(status.stdout)")
            #expect(status.stdout.contains("slow-k8s  staging  desired r2  applied r2"), "\(status.stdout)")
        }
    }
}

