import Foundation
import HubTransport
import PolicyCore
import Testing

/// The review's findings against the daemon, each reproduced as it was found.
@Suite struct ServeSecurityTests {
    typealias CLI = CommandLineTests

    /// The escape of the review: a payments document whose target reaches every namespace.
    static func escape(target: String) -> String {
        """
        apiVersion: neuvector.com/v1
        kind: NvSecurityRule
        metadata:
          name: esc
          namespace: payments
        spec:
          target:
            selector: \(target)
          egress:
          - {name: out, action: allow, selector: {name: external}, applications: [any], ports: any}
        """
    }

    @Test(arguments: ["{name: containers, criteria: [], name_referral: true}", "{name: nodes, name_referral: true}",
                      "{name: everyone, criteria: [{key: domain, op: '=', value: payments}, {key: domain, op: '=', value: demo}]}"])
    func aNamespaceOwnerCannotSelectAnotherNamespace(_ target: String) async throws {
        try await ServeTests.withHub { hub in
            let before = await hub.revisions("staging")
            let put = await hub.request("PUT", "/v1/namespaces/payments/documents/NvSecurityRule/esc", token: hub.tokens["payments-owner"],
                                        body: Self.escape(target: target))
            #expect(put.status == 422, "\(put.bodyText)")
            #expect(put.bodyText.contains("body:8:"), "\(put.bodyText)")
            #expect(put.bodyText.contains("NvSecurityRule in namespace 'payments'"), "\(put.bodyText)")
            #expect(await hub.revisions("staging") == before)
            #expect(!FileManager.default.fileExists(atPath: hub.folder + "/policies/namespaces/payments/esc.yaml"))
            // what demo's workloads get is still decided by demo's and the global rules
            let explain = try CLI.run(["explain", "--repo", hub.folder, "--cluster", "staging-eu-1", "--target", "nv.nginx-pod.demo",
                                       "--peer", "external", "--port", "tcp/443", "--app", "HTTP", "--direction", "egress"])
            #expect(!explain.stdout.contains("payments/esc"), "\(explain.stdout)")
        }
    }

    /// An acknowledged API write and a CLI `apply` at the same time: the write is never dropped from the
    /// revision the apply records (the review lost it in 2 of 10 rounds).
    @Test func anAPIWriteRacingAnApplyIsNeverLost() async throws {
        try await ServeTests.withHub { hub in
            let admin = hub.tokens["security-admin"]
            for round in 0..<8 {
                let name = "race-\(round)"
                let folder = hub.folder
                async let applied = Task.detached { try CLI.run(["apply", "--repo", folder]) }.value
                let put = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/\(name)", token: admin,
                                            body: ServeTests.globalRule(name))
                #expect(put.status == 200, "\(put.bodyText)")
                let apply = try await applied
                #expect(apply.status == 0, "\(apply.stderr)")
                // the desired revision of staging holds the acknowledged document, whichever came first
                let documents = await hub.request("GET", "/v1/documents", token: admin)
                #expect(documents.bodyText.contains("\"\(name)\""), "round \(round): \(name) was lost: \(documents.bodyText.prefix(300))")
                // and a second apply records nothing new: the working tree and the revision agree
                let again = try CLI.run(["apply", "--repo", folder])
                #expect(!again.stderr.contains("recorded revision"), "round \(round): \(again.stderr)")
            }
        }
    }

    /// Two promotions at once: each answer names the revision that promotion recorded (or one is a conflict).
    @Test func concurrentPromotionsEachNameTheirOwnRevision() async throws {
        try await ServeTests.withHub { hub in
            let promoter = hub.tokens["promoter"]
            async let a = hub.request("POST", "/v1/promotions", token: promoter, body: #"{"to":"production","namespaces":["demo"],"force":true}"#)
            async let b = hub.request("POST", "/v1/promotions", token: promoter, body: #"{"to":"production","namespaces":["payments"],"force":true}"#)
            let (first, second) = await (a, b)
            let landed = [first, second].filter { $0.status == 201 }
            #expect(landed.count >= 1, "\(first.bodyText) \(second.bodyText)")
            for other in [first, second] where other.status != 201 { #expect(other.status == 409, "\(other.bodyText)") }
            let ids = landed.compactMap { hub.json($0)["revision"]?["id"]?.stringValue }
            #expect(Set(ids).count == landed.count, "both answers named \(ids)")
            let revisions = await hub.request("GET", "/v1/environments/production/revisions", token: promoter)
            for id in ids { #expect(revisions.bodyText.contains("\"\(id)\"")) }
        }
    }

    /// One request as raw bytes over a plain socket (no client normalises its path), and the whole answer.
    static func raw(port: Int, _ request: String) async throws -> String {
        let fd = try connected(port: port)
        defer { close(fd) }
        Self.send(fd, request)
        var answer: [UInt8] = []
        while let bytes = await receive(fd, within: 30), !bytes.isEmpty { answer += bytes }
        return String(decoding: answer, as: UTF8.self)
    }

    static func send(_ fd: Int32, _ text: String) {
        _ = Array(text.utf8).withUnsafeBufferPointer { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
    }

    /// Path segments that name a namespace or document are checked before the repository is touched: a
    /// security admin's `PUT /v1/namespaces/../documents/...` once wrote policies/<name>.yaml.
    @Test func pathSegmentsOutsideTheLayoutAreRefused() async throws {
        try await ServeTests.withHub { hub in
            let admin = try #require(hub.tokens["security-admin"])
            let body = ServeTests.paymentsRule
            for path in ["/v1/namespaces/../documents/NvSecurityRule/mygroup", "/v1/namespaces/%2E%2E/documents/NvSecurityRule/mygroup",
                         "/v1/namespaces/payments/documents/NvSecurityRule/..%2Fescape", "/v1/namespaces/Payments/documents/NvSecurityRule/x",
                         "/v1/documents/NvClusterSecurityRule/a%2Fb"] {
                let answer = try await Self.raw(port: hub.port, """
                    PUT \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(admin)\r\nContent-Type: application/yaml\r\n\
                    Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)
                    """)
                #expect(answer.hasPrefix("HTTP/1.1 400"), "\(path): \(answer.prefix(400))")
                #expect(answer.contains("is not a"), "\(path): \(answer)")
            }
            let validate = try CLI.run(["validate", "--repo", hub.folder])
            #expect(validate.status == 0, "\(validate.stdout)\(validate.stderr)")
            #expect(!FileManager.default.fileExists(atPath: hub.folder + "/policies/mygroup.yaml"))
        }
    }

    @Test func aWrongMethodOnAKnownPathIs405WithAllow() async throws {
        try await ServeTests.withHub { hub in
            let answer = await hub.request("DELETE", "/v1/clusters", token: hub.tokens["security-admin"])
            #expect(answer.status == 405, "\(answer.bodyText)")
            #expect(answer.header("Allow") == "GET")
            let document = await hub.request("POST", "/v1/documents/NvClusterSecurityRule/x", token: hub.tokens["security-admin"])
            #expect(document.status == 405)
            #expect(document.header("Allow") == "GET, PUT, DELETE")
            #expect(await hub.request("GET", "/v1/nothing-here", token: hub.tokens["viewer"]).status == 404)
        }
    }

    /// What a reviewer reads and what the hub does must not differ: duplicate keys are refused.
    @Test func duplicateKeysInAJSONBodyAre400() async throws {
        try await ServeTests.withHub { hub in
            let before = await hub.revisions("production")
            let answer = await hub.request("POST", "/v1/promotions", token: hub.tokens["promoter"],
                                           body: #"{"to":"production","namespaces":["demo"],"force":false,"force":true}"#)
            #expect(answer.status == 400, "\(answer.bodyText)")
            #expect(answer.bodyText.contains("'force' appears twice"))
            #expect(await hub.revisions("production") == before)
        }
    }

    /// If-Match is per document: one team's edit is no conflict for another's; the same document again
    /// records nothing.
    @Test func preconditionsArePerDocumentAndRepeatsRecordNothing() async throws {
        try await ServeTests.withHub { hub in
            let admin = hub.tokens["security-admin"]
            let before = await hub.revisions("staging")
            let path = "/v1/namespaces/payments/documents/NvSecurityRule/nv.audit.payments"
            let created = await hub.request("PUT", path, token: admin, body: ServeTests.paymentsRule, headers: [HTTPHeader("If-Match", "\"absent\"")])
            #expect(created.status == 200, "\(created.bodyText)")
            let tag = try #require(created.header("ETag"))
            #expect(tag.hasPrefix("\"sha256:"))
            let read = await hub.request("GET", path, token: admin)
            #expect(read.header("ETag") == tag)
            // the same body again: 200, the revision unchanged, nothing recorded
            let again = await hub.request("PUT", path, token: admin, body: ServeTests.paymentsRule)
            #expect(again.status == 200)
            #expect(hub.json(again)["unchanged"] == .bool(true))
            #expect(hub.json(again)["revision"]?["id"] == hub.json(created)["revision"]?["id"])
            #expect(await hub.revisions("staging") == before + 1)
            // another team changes another document meanwhile: no conflict for this one
            let other = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/other-team", token: admin,
                                          body: ServeTests.globalRule("other-team"))
            #expect(other.status == 200)
            let changed = ServeTests.paymentsRule.replacingOccurrences(of: "/usr/bin/curl", with: "/usr/bin/wget").replacingOccurrences(of: "name: curl", with: "name: wget")
            let edit = await hub.request("PUT", path, token: admin, body: changed, headers: [HTTPHeader("If-Match", tag)])
            #expect(edit.status == 200, "\(edit.bodyText)")
            // but a stale ETag of this document is
            let stale = await hub.request("PUT", path, token: admin, body: ServeTests.paymentsRule, headers: [HTTPHeader("If-Match", tag)])
            #expect(stale.status == 409, "\(stale.bodyText)")
            #expect(stale.bodyText.contains("changed since ETag"))
        }
    }

    /// The repository file and the revision are one outcome: a file that cannot be written records nothing.
    @Test func aWriteThatCannotReachTheRepositoryRecordsNothing() async throws {
        try await ServeTests.withHub { hub in
            let admin = hub.tokens["security-admin"]
            let before = await hub.revisions("staging")
            // a folder where the document's file would go: the rename over it fails
            try FileManager.default.createDirectory(atPath: hub.folder + "/policies/global/blocked.yaml/inside",
                                                    withIntermediateDirectories: true)
            let put = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/blocked", token: admin,
                                        body: ServeTests.globalRule("blocked"))
            #expect(put.status == 500, "\(put.bodyText)")
            #expect(put.bodyText.contains("cannot replace policies/global/blocked.yaml") && put.bodyText.contains("nothing was recorded"),
                    "\(put.bodyText)")
            #expect(await hub.revisions("staging") == before)
            let documents = await hub.request("GET", "/v1/documents", token: admin)
            #expect(!documents.bodyText.contains("\"blocked\""))
            #expect(!FileManager.default.fileExists(atPath: hub.folder + "/policies/global/blocked.yaml.policyhub-tmp"))
        }
    }

    /// A connected socket to the hub.
    static func connected(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(result == 0)
        return fd
    }

    /// What arrives on `fd` within `seconds`: bytes, an empty array when the peer closed, nil when nothing came.
    /// The wait blocks a thread of its own, never one of the concurrency pool the in-process hub answers on
    /// (tests run in parallel on two cores: two blocked pool threads would starve the hub).
    static func receive(_ fd: Int32, within seconds: Double) async -> [UInt8]? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&entry, 1, Int32(seconds * 1000)) > 0 else { return continuation.resume(returning: nil) }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = recv(fd, &buffer, buffer.count, 0)
                continuation.resume(returning: count <= 0 ? [] : Array(buffer[..<count]))
            }
        }
    }

    /// A connection that sends half a request head, or sits idle, is closed after idleTimeout.
    @Test func slowHeadsAndIdleConnectionsAreClosed() async throws {
        try await ServeTests.withHub(configure: { $0.idleTimeout = 1 }) { hub in
            let half = try Self.connected(port: hub.port)
            defer { close(half) }
            Self.send(half, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            let idle = try Self.connected(port: hub.port)
            defer { close(idle) }
            #expect(await Self.receive(half, within: 10) == [], "the server kept a half-sent request open")
            #expect(await Self.receive(idle, within: 10) == [], "the server kept an idle connection open")
            // and it still serves
            #expect(await hub.request("GET", "/healthz").status == 200)
        }
    }

    /// Beyond maxConnections open at once, a new connection is closed as soon as it is accepted; when one
    /// ends, the hub serves again.
    @Test func openConnectionsAreBounded() async throws {
        try await ServeTests.withHub(configure: { $0.maxConnections = 3 }) { hub in
            var held: [Int32] = []
            for _ in 0..<3 {
                let fd = try Self.connected(port: hub.port)
                Self.send(fd, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                // each of the three is served and kept open (keep-alive)
                #expect(String(decoding: await Self.receive(fd, within: 60) ?? [], as: UTF8.self).hasPrefix("HTTP/1.1 200"))
                held.append(fd)
            }
            let fourth = try Self.connected(port: hub.port)
            defer { close(fourth) }
            Self.send(fourth, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            #expect(await Self.receive(fourth, within: 60) == [], "a connection beyond maxConnections was served")
            close(held.removeLast())
            var served = false
            for _ in 0..<50 where !served {
                served = await hub.request("GET", "/healthz").status == 200
                if !served { try await Task.sleep(nanoseconds: 100_000_000) }
            }
            #expect(served, "the hub did not serve again after a connection ended")
            for fd in held { close(fd) }
            let metrics = await hub.request("GET", "/metrics")
            #expect(metrics.bodyText.contains("policyhub_connections_refused_total"), "\(metrics.bodyText)")
        }
    }

    /// Push and drift series carry the cluster (swift-metrics on a swift-prometheus registry).
    @Test func metricsPerCluster() async throws {
        try await ServeTests.withHub { hub in
            let admin = hub.tokens["security-admin"]
            #expect(await hub.request("POST", "/v1/promotions", token: admin, body: #"{"to":"production","all":true,"force":true}"#).status == 201)
            let reconcile = await hub.request("POST", "/v1/reconcile", token: admin)
            #expect(reconcile.status == 200, "\(reconcile.bodyText)")
            #expect(await hub.request("POST", "/v1/drift/reports", token: admin).status == 201)
            let metrics = await hub.request("GET", "/metrics").bodyText
            #expect(metrics.contains(#"policyhub_cluster_pushes_total{cluster="prod-eu-1",result="ok"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"policyhub_cluster_drift_findings{cluster="staging-eu-1"} 0"#), "\(metrics)")
            #expect(metrics.contains("# TYPE policyhub_pushes_total counter"))
        }
    }
}
