import Foundation
import HubTransport
import PolicyHubTesting
import Testing

/// Names that came from a member never become path structure, and a request never goes where it was not built to go.
@Suite struct RequestURLTests {
    @Test(arguments: [
        ("nv.api.payments", "nv.api.payments"),
        ("../../../api/v1/namespaces/kube-system/secrets/x", "..%2F..%2F..%2Fapi%2Fv1%2Fnamespaces%2Fkube-system%2Fsecrets%2Fx"),
        ("y#", "y%23"), ("a b?c=d&e", "a%20b%3Fc%3Dd%26e"), ("..", "%2E%2E"), (".", "%2E"), ("é", "%C3%A9"), ("100%", "100%25"),
    ])
    func segmentsAreEncoded(_ raw: String, _ encoded: String) {
        #expect(RequestURL.segment(raw) == encoded)
        #expect(!RequestURL.segment(raw).contains("/"))
    }

    @Test(arguments: [
        "https://h/clusters/x/apis/neuvector.com/v1/namespaces/../../../api/v1/secrets/y",
        "https://h/a/./b", "https://h/a/%2e%2E/b", "https://h/a/%2E", "https://h/a/b#frag", "https://h/..?q=1",
        "https://h/%2e%2e", "https://u:p@h/a/../b", "https://h/a/.%2E?x=/../",
    ])
    func dotSegmentsAndFragmentsAreRefused(_ url: String) {
        #expect(RequestURL.pathProblem(url) != nil)
    }

    @Test(arguments: ["https://h/apis/neuvector.com/v1/nvsecurityrules?labelSelector=a%3Db", "https://h/a..b/.c/d.",
                      "https://h", "https://h/a/%2E%2E%2Fb",
                      "https://h/a/%2", "https://h/a/%zz/b", "https://h/.../b", "https://h/a?q=/../", "https://h/a/%2E%"])
    func ordinaryPathsPass(_ url: String) {
        #expect(RequestURL.pathProblem(url) == nil)
    }

    @Test func passwordsAreRedacted() {
        #expect(RequestURL.redacted("https://user:secret@host:6443/k8s") == "https://user:***@host:6443/k8s")
        #expect(RequestURL.redacted("https://token@host") == "https://token:***@host")
        #expect(RequestURL.redacted("https://host/a@b") == "https://host/a@b")
        #expect(RequestURL.redactedText("Failed to connect to https://u:pw@h/x port 1") == "Failed to connect to https://u:***@h/x port 1")
        #expect(RequestURL.scheme(of: "HTTPS://h") == "https")
        #expect(RequestURL.scheme(of: "h:1") == nil)
    }

    /// The transport refuses such a URL itself, before any byte is sent, whoever built it.
    @Test func theTransportRefusesANormalisedPathWithoutSendingIt() async throws {
        let double = KubernetesAPIDouble(tokens: [])
        try double.start(tls: nil)
        defer { double.stop() }
        let transport = CurlTransport()
        defer { transport.shutdown() }
        let url = double.url(cluster: "c1", tls: false) + "/apis/neuvector.com/v1/namespaces/../../../../api/v1/namespaces/kube-system/secrets/y"
        let result = await transport.send(HTTPRequest(method: "DELETE", url: url, headers: [HTTPHeader("Authorization", "Bearer t")]),
                                          tls: TLSSettings())
        guard case .failure(.refused(_, let message)) = result else {
            Issue.record("sent: \(result)")
            return
        }
        #expect(message.contains("'..' segment"))
        #expect(double.requestLog.isEmpty)
        // the same transport still sends what is well formed
        let fine = await transport.send(HTTPRequest(method: "GET", url: double.url(cluster: "c1", tls: false) + "/api"), tls: TLSSettings())
        #expect((try? fine.get().status) == 200)
    }
}

/// An option libcurl refuses fails the request by name instead of falling back to libcurl's default.
@Suite struct CurlOptionTests {
    @Test func aRefusedOptionFailsTheRequest() async throws {
        let double = KubernetesAPIDouble(tokens: [])
        try double.start(tls: nil)
        defer { double.stop() }
        var settings = TransportSettings()
        settings.userAgent = String(repeating: "a", count: 9_000_000)  // over libcurl's 8 MB bound for a string option
        let transport = CurlTransport(settings: settings)
        defer { transport.shutdown() }
        let result = await transport.send(HTTPRequest(method: "GET", url: double.url(cluster: "c1", tls: false) + "/api"), tls: TLSSettings())
        guard case .failure(.other(_, let message)) = result else {
            Issue.record("sent anyway: \(result)")
            return
        }
        #expect(message.hasPrefix("libcurl refused CURLOPT_USERAGENT"), "\(message)")
        #expect(double.requestLog.isEmpty)
    }
}
