import Foundation
import HubTransport
import PolicyHubTesting
import Testing

/// libcurl against the Kubernetes API double over loopback TLS.
@Suite(.serialized) struct CurlTransportTests {
    final class Fixture: @unchecked Sendable {
        /// One certificate authority for the whole suite.
        static let sharedFolder = NSTemporaryDirectory() + "policyhub-tls-" + UUID().uuidString
        static let sharedPKI = Result { try TestPKI.make(in: sharedFolder) }
        let pki: TestPKI
        let double: KubernetesAPIDouble
        let transport: CurlTransport

        /// With `http2`, the double offers h2 first, as a real API server does.
        init(settings: TransportSettings = Fixture.fast, http2: Bool = false) throws {
            pki = try Fixture.sharedPKI.get()
            double = KubernetesAPIDouble(tokens: ["good-token"])
            try double.start(tls: KubernetesAPIDouble.TLS(certificateChain: pki.serverCertificate, privateKey: pki.serverKey,
                                                          clientCA: pki.caCertificate), http2: http2)
            transport = CurlTransport(settings: settings)
        }

        static var fast: TransportSettings {
            var settings = TransportSettings()
            settings.baseDelay = 0.05
            settings.totalTimeout = 5
            settings.connectTimeout = 2
            return settings
        }

        var trusted: TLSSettings {
            var tls = TLSSettings()
            tls.caPEM = pki.caCertificate
            return tls
        }

        func get(_ path: String, cluster: String = "c1", token: String? = "good-token", tls: TLSSettings? = nil) async
            -> Result<HTTPResponse, TransportError>
        {
            var headers = [HTTPHeader("Accept", "application/json")]
            if let token { headers.append(HTTPHeader("Authorization", "Bearer \(token)")) }
            return await transport.send(HTTPRequest(method: "GET", url: double.url(cluster: cluster) + path, headers: headers),
                                        tls: tls ?? trusted)
        }

        deinit {
            transport.shutdown()
            double.stop()
        }
    }

    @Test func discoveryWithABearerTokenAndTheCAFromMemory() async throws {
        let f = try Fixture()
        let response = try await f.get("/apis/neuvector.com/v1").get()
        #expect(response.status == 200)
        #expect(response.bodyText.contains("\"nvclustersecurityrules\""))
        #expect(response.header("content-type") == "application/json")
    }

    @Test func verificationIsOnByDefault() async throws {
        let f = try Fixture()
        let result = await f.get("/api", tls: TLSSettings())
        guard case .failure(.tls(_, let message)) = result else {
            Issue.record("an untrusted server was accepted: \(result)")
            return
        }
        #expect(!message.isEmpty)
    }

    @Test func clientCertificateFromMemoryAuthenticates() async throws {
        let f = try Fixture()
        var tls = f.trusted
        tls.clientCertificatePEM = f.pki.clientCertificate
        tls.clientKeyPEM = f.pki.clientKey
        #expect(try await f.get("/api", token: nil, tls: tls).get().status == 200)
        #expect(try await f.get("/api", token: nil).get().status == 401)
        #expect(try await f.get("/api", token: "wrong").get().bodyText.contains("\"reason\":\"Unauthorized\""))
    }

    @Test func tlsServerNameThroughConnectTo() async throws {
        let f = try Fixture()
        var tls = f.trusted
        tls.connectTo = ["kubernetes.default.svc:\(f.double.port):127.0.0.1:\(f.double.port)"]
        let url = "https://kubernetes.default.svc:\(f.double.port)/clusters/c1/api"
        let response = try await f.transport.send(HTTPRequest(method: "GET", url: url,
                                                              headers: [HTTPHeader("Authorization", "Bearer good-token")]), tls: tls).get()
        #expect(response.status == 200)
    }

    @Test(arguments: [false, true]) func retriesHonourRetryAfterThenSucceed(http2: Bool) async throws {
        let f = try Fixture(http2: http2)
        f.double.setFault(.status(code: 429, retryAfter: 1, count: 2), cluster: "c1")
        let started = Date()
        let response = try await f.get("/api").get()
        #expect(response.status == 200)
        #expect(response.attempts == 3)
        #expect(Date().timeIntervalSince(started) >= 1.9)  // two Retry-After: 1 waits
        f.double.setFault(.status(code: 503, retryAfter: nil, count: 1), cluster: "c2")
        #expect(try await f.get("/api", cluster: "c2").get().attempts == 2)
    }

    @Test func overHTTP2OneConnectionCarriesManyRequestsAtOnce() async throws {
        let f = try Fixture(http2: true)
        let answers = await withTaskGroup(of: Int.self) { group in
            for index in 0..<40 {
                group.addTask { (try? await f.get("/api", cluster: "c\(index % 4)").get().status) ?? 0 }
            }
            return await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(answers.count == 40 && answers.allSatisfy { $0 == 200 }, "\(answers)")
        #expect(f.double.http2Requests == 40)
        // the first request's connection is awaited by the others (CURLOPT_PIPEWAIT), not raced by 39 more
        #expect(f.double.acceptedConnections == 1, "\(f.double.acceptedConnections) connections")
    }

    /// A client without HTTP/2 (the curl command told to use 1.1, like wrk or an old kubectl) still gets its
    /// answer from a double that offers h2 first; with HTTP/2 allowed, curl negotiates it.
    @Test(arguments: [("--http1.1", "HTTP/1.1 200"), ("--http2", "HTTP/2 200")])
    func aDoubleOfferingHTTP2StillAnswersHTTP1(flag: String, statusLine: String) throws {
        let f = try Fixture(http2: true)
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-s", "-i", flag, "--cacert", f.pki.folder + "/ca.crt", "-H", "Authorization: Bearer good-token",
                          f.double.url(cluster: "c1") + "/api"]
        let out = Pipe()
        curl.standardOutput = out
        try curl.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        curl.waitUntilExit()
        #expect(curl.terminationStatus == 0)
        #expect(text.hasPrefix(statusLine), "\(text.prefix(200))")
        #expect(f.double.http2Requests == (flag == "--http2" ? 1 : 0))
    }

    @Test(arguments: [false, true]) func persistent500IsReturnedAfterTheLastAttempt(http2: Bool) async throws {
        let f = try Fixture(http2: http2)
        f.double.setFault(.internalError, cluster: "c1")
        let response = try await f.get("/api").get()
        #expect(response.status == 500 && response.attempts == 4)
        #expect(f.double.requestCount(cluster: "c1") == 4)
    }

    /// Over HTTP/2 a refused or dropped answer is a reset stream (libcurl: CURLE_HTTP2_STREAM), the same
    /// connection error as a closed HTTP/1.1 connection, and retried the same way.
    @Test(arguments: [false, true]) func refusedHangingAndDroppedConnectionsAreNamedErrors(http2: Bool) async throws {
        var settings = Fixture.fast
        settings.totalTimeout = 1
        settings.maxAttempts = 2
        let f = try Fixture(settings: settings, http2: http2)
        f.double.setFault(.refuse, cluster: "refuse")
        f.double.setFault(.hang, cluster: "hang")
        f.double.setFault(.dropMidResponse, cluster: "drop")
        guard case .failure(.connection(let url, _)) = await f.get("/api", cluster: "refuse") else {
            Issue.record("a refused connection was not a connection error")
            return
        }
        #expect(url.hasSuffix("/clusters/refuse/api"))
        guard case .failure(.timeout) = await f.get("/api", cluster: "hang") else {
            Issue.record("a hanging server was not a timeout")
            return
        }
        guard case .failure(.connection) = await f.get("/api", cluster: "drop") else {
            Issue.record("a dropped response was not a connection error")
            return
        }
        #expect(f.double.requestCount(cluster: "drop") == 2)
        // nothing listens: connection refused by the kernel
        let closed = await f.transport.send(HTTPRequest(method: "GET", url: "https://127.0.0.1:1/api"), tls: f.trusted)
        guard case .failure(.connection) = closed else {
            Issue.record("port 1 answered: \(closed)")
            return
        }
    }

    @Test func manyTransfersAtOnceWithABound() async throws {
        var settings = Fixture.fast
        settings.maxInFlight = 8
        let f = try Fixture(settings: settings)
        let statuses = await withTaskGroup(of: Int.self) { group in
            for index in 0..<200 {
                group.addTask { (try? await f.get("/api", cluster: "c\(index % 50)").get().status) ?? -1 }
            }
            var out: [Int] = []
            for await status in group { out.append(status) }
            return out
        }
        #expect(statuses.count == 200 && statuses.allSatisfy { $0 == 200 })
        #expect(f.double.totalRequests == 200)
    }
}
