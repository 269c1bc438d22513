import Foundation
import HubTransport
import Members
import PolicyCore
import PolicyHubTesting
import Testing

/// The rest of a real kubeconfig: `proxy-url` (a CONNECT proxy written for the test carries a push),
/// impersonation headers, `disable-compression`, and what is refused (auth-provider, basic auth).
@Suite(.serialized) struct KubeconfigOptionsTests {
    static let folder = NSTemporaryDirectory() + "policyhub-kubeconfig-" + UUID().uuidString
    static let pki = Result { try TestPKI.make(in: folder) }

    /// An HTTP CONNECT proxy on loopback: each tunnel is two threads copying bytes; it records what was
    /// asked for.
    final class ConnectProxy: @unchecked Sendable {
        let listener: Int32
        private(set) var port = 0
        private let lock = NSLock()
        private var asked: [String] = []

        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            listener = fd
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                    bind(fd, raw, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, raw, &length) == 0
                }
            }
            try #require(bound)
            port = Int(UInt16(bigEndian: address.sin_port))
            let listener = self.listener
            Thread.detachNewThread { [self] in
                while true {
                    let client = accept(listener, nil, nil)
                    if client < 0 { return }
                    Thread.detachNewThread { self.tunnel(client) }
                }
            }
        }

        var requests: [String] { lock.withLock { asked } }

        func tunnel(_ client: Int32) {
            var head: [UInt8] = []
            var byte: UInt8 = 0
            while !head.ends(with: Array("\r\n\r\n".utf8)), recv(client, &byte, 1, 0) == 1 { head.append(byte) }
            let line = String(decoding: head, as: UTF8.self).split(separator: "\r\n").first.map(String.init) ?? ""
            lock.withLock { asked.append(line) }
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[0] == "CONNECT", let colon = parts[1].lastIndex(of: ":"),
                  let upstreamPort = UInt16(parts[1][parts[1].index(after: colon)...]) else {
                _ = "HTTP/1.1 400 Bad Request\r\n\r\n".withCString { send(client, $0, strlen($0), 0) }
                close(client)
                return
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = upstreamPort.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                close(client)
                close(upstream)
                return
            }
            _ = "HTTP/1.1 200 Connection established\r\n\r\n".withCString { send(client, $0, strlen($0), 0) }
            let done = DispatchSemaphore(value: 0)
            for (from, to) in [(client, upstream), (upstream, client)] {
                Thread.detachNewThread {
                    var buffer = [UInt8](repeating: 0, count: 16384)
                    while true {
                        let count = recv(from, &buffer, buffer.count, 0)
                        if count <= 0 || send(to, buffer, count, 0) != count { break }
                    }
                    shutdown(to, Int32(SHUT_WR))
                    done.signal()
                }
            }
            done.wait()
            done.wait()
            close(client)
            close(upstream)
        }

        func stop() {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
        }
    }

    /// A kubeconfig for the double's virtual cluster c1 with `cluster` (extra fields of the cluster) and
    /// `user` (the user's fields), each given without indentation.
    static func kubeconfig(_ double: KubernetesAPIDouble, pki: TestPKI, cluster: String = "", user: String, userName: String = "u",
                           in dir: String) throws -> String {
        let path = dir + "/config-\(UUID().uuidString)"
        try """
            apiVersion: v1
            kind: Config
            current-context: c1
            clusters:
            - name: c1
              cluster:
                server: '\(double.url(cluster: "c1"))'
                certificate-authority-data: \(Data(pki.caCertificate).base64EncodedString())
            \(cluster.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            contexts: [{name: c1, context: {cluster: c1, user: \(userName)}}]
            users:
            - name: \(userName)
              user:
            \(user.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let object = ExecPluginTests.object

    @Test func aProxyURLCarriesThePushAndImpersonationAndCompressionAreHonoured() async throws {
        let pki = try Self.pki.get()
        let double = try KubernetesAPIDouble.started(pki: pki, tokens: ["t"])
        defer { double.stop() }
        let proxy = try ConnectProxy()
        defer { proxy.stop() }
        var settings = TransportSettings()
        settings.maxAttempts = 1
        let transport = CurlTransport(settings: settings)
        defer { transport.shutdown() }
        let path = try Self.kubeconfig(double, pki: pki, cluster: "proxy-url: http://127.0.0.1:\(proxy.port)\ndisable-compression: true",
                                       user: "token: t\nas: alice\nas-groups: [team-a, team-b]\nas-uid: '42'", in: Self.folder)
        let member = KubernetesMember(cluster: "c1", endpoint: try Kubeconfig.endpoint(path: path, context: nil), transport: transport)
        let outcome = try await member.push([Self.object])
        #expect(outcome.created.count == 1)
        #expect(proxy.requests.contains("CONNECT 127.0.0.1:\(double.port) HTTP/1.1"), "\(proxy.requests)")
        let headers = try #require(double.requestHeaders.last)
        #expect(headers["impersonate-user"] == "alice" && headers["impersonate-group"] == "team-a, team-b" && headers["impersonate-uid"] == "42")
        #expect(headers["accept-encoding"] == nil, "disable-compression sent Accept-Encoding")

        // without disable-compression, gzip is asked for (and decoded; see the gzip-bomb test)
        let plain = KubernetesMember(cluster: "c1", endpoint: try Kubeconfig.endpoint(
            path: try Self.kubeconfig(double, pki: pki, user: "token: t", in: Self.folder), context: nil), transport: transport)
        _ = try await plain.managedObjects()
        #expect(double.requestHeaders.last?["accept-encoding"]?.contains("gzip") == true)
        #expect(double.requestHeaders.last?["impersonate-user"] == nil)
    }

    @Test(arguments: [
        ("auth-provider: {name: gcp, config: {}}", "auth-provider 'gcp' was removed from Kubernetes (1.26); use its exec credential plugin, gke-gcloud-auth-plugin, instead"),
        ("auth-provider: {name: azure}", "kubelogin (azure.github.io/kubelogin)"),
        ("username: admin\npassword: hunter2", "basic auth"),
    ])
    func removedAuthenticationIsRefusedByName(user: String, message: String) throws {
        let pki = try Self.pki.get()
        let double = KubernetesAPIDouble()
        let path = try Self.kubeconfig(double, pki: pki, user: user, in: Self.folder)
        do throws(KubeconfigError) {
            _ = try Kubeconfig.endpoint(path: path, context: nil)
            Issue.record("\(user) was accepted")
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
            #expect(!error.message.contains("hunter2"))
        }
    }

    /// A kubeconfig is resolved once while its bytes stay the same, and again as soon as they change; the
    /// files one names (here a token file) are read every time.
    @Test func anEditedKubeconfigAndAnEditedTokenFileAreReadAgain() throws {
        let folder = Self.folder + "/edited-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        func write(_ text: String, _ name: String) throws { try text.write(toFile: folder + "/" + name, atomically: true, encoding: .utf8) }
        func config(_ user: String, server: String = "https://127.0.0.1:6443") -> String {
            """
            apiVersion: v1
            kind: Config
            current-context: c
            contexts: [{name: c, context: {cluster: k, user: u}}]
            clusters: [{name: k, cluster: {server: "\(server)"}}]
            users: [{name: u, user: {\(user)}}]
            """
        }
        let path = folder + "/kubeconfig.yaml"
        try write(config("token: first"), "kubeconfig.yaml")
        #expect(try Kubeconfig.endpoint(path: path, context: nil).token == "first")
        #expect(try Kubeconfig.endpoint(path: path, context: nil).token == "first")
        try write(config("token: second", server: "https://127.0.0.2:6443"), "kubeconfig.yaml")
        let edited = try Kubeconfig.endpoint(path: path, context: nil)
        #expect(edited.token == "second" && edited.server == "https://127.0.0.2:6443")
        // the same bytes, a token file that changes under it
        try write("one\n", "token")
        try write(config("tokenFile: token"), "kubeconfig.yaml")
        #expect(try Kubeconfig.endpoint(path: path, context: nil).token == "one")
        try write("two\n", "token")
        #expect(try Kubeconfig.endpoint(path: path, context: nil).token == "two")
        // made invalid: an error, not the endpoint it had
        try write("clusters: [", "kubeconfig.yaml")
        #expect(throws: KubeconfigError.self) { _ = try Kubeconfig.endpoint(path: path, context: nil) }
    }

    @Test func aProxyThatIsNoURLIsRefused() throws {
        let pki = try Self.pki.get()
        let double = KubernetesAPIDouble()
        #expect(throws: KubeconfigError.self) {
            _ = try Kubeconfig.endpoint(path: try Self.kubeconfig(double, pki: pki, cluster: "proxy-url: ftp://proxy:21", user: "token: t",
                                                                  in: Self.folder), context: nil)
        }
    }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
