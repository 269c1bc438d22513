import Foundation
import HubTransport
import Members
import PolicyCore
import PolicyHubTesting
import Testing

@Suite(.serialized) struct KubernetesMemberTests {
    static let folder = NSTemporaryDirectory() + "policyhub-k8s-" + UUID().uuidString
    static let pki = Result { try TestPKI.make(in: folder) }

    final class Fixture: @unchecked Sendable {
        let double = KubernetesAPIDouble(tokens: ["hub-token"])
        let transport: CurlTransport
        let pki: TestPKI

        /// With `http2`, the double offers h2 first, as a real API server does.
        init(http2: Bool = false, inFlight: Int? = nil) throws {
            pki = try KubernetesMemberTests.pki.get()
            try double.start(tls: KubernetesAPIDouble.TLS(certificateChain: pki.serverCertificate, privateKey: pki.serverKey,
                                                          clientCA: pki.caCertificate), http2: http2)
            var settings = TransportSettings()
            settings.baseDelay = 0.05
            settings.maxAttempts = 2
            if let inFlight { settings.maxInFlight = inFlight }
            transport = CurlTransport(settings: settings)
        }

        func member(_ cluster: String, token: String = "hub-token") -> KubernetesMember {
            var tls = TLSSettings()
            tls.caPEM = pki.caCertificate
            return KubernetesMember(cluster: cluster, endpoint: KubernetesEndpoint(server: double.url(cluster: cluster), tls: tls,
                                                                                   token: token), transport: transport)
        }

        deinit {
            transport.shutdown()
            double.stop()
        }
    }

    static func object(_ kind: ObjectKind, _ namespace: String, _ name: String, mode: String = "Protect") -> RenderedObject {
        var meta: [Value.MapEntry] = [
            Value.MapEntry("labels", .map([Value.MapEntry(HubAnnotation.managedByKey, .string(HubAnnotation.managedByValue))])),
            Value.MapEntry("name", .string(name)),
        ]
        if kind.isNamespaced { meta.append(Value.MapEntry("namespace", .string(namespace))) }
        let spec = Value.map([Value.MapEntry("target", .map([Value.MapEntry("policymode", .string(mode))]))])
        let value = Value.map([Value.MapEntry("apiVersion", .string("neuvector.com/v1")), Value.MapEntry("kind", .string(kind.rawValue)),
                               Value.MapEntry("metadata", .map(meta)), Value.MapEntry("spec", spec)])
        return RenderedObject(identity: ObjectIdentity(kind: kind, namespace: namespace, name: name), source: "x",
                              hash: ContentHash.of(spec), value: value)
    }

    @Test func applyCreatesUpdatesKeepsUnchangedAndDeletesOnlyManaged() async throws {
        let f = try Fixture()
        let member = f.member("c1")
        let a = Self.object(.securityRule, "demo", "nv.web.demo")
        let b = Self.object(.clusterSecurityRule, "", "containers")
        var outcome = try await member.push([a, b])
        #expect(outcome.created.count == 2 && outcome.deleted.isEmpty)
        let stored = f.double.objects(cluster: "c1")
        guard case .list(let fields)? = stored[a.identity]?["metadata"]?["managedFields"] else {
            Issue.record("the server recorded no managedFields")
            return
        }
        #expect(fields.first?["manager"] == .string("policyhub") && fields.first?["operation"] == .string("Apply"))
        let version = stored[a.identity]?["metadata"]?["resourceVersion"]
        // someone else's object, without the hub's label
        f.double.put(.map([Value.MapEntry("apiVersion", .string("neuvector.com/v1")), Value.MapEntry("kind", .string("NvSecurityRule")),
                           Value.MapEntry("metadata", .map([Value.MapEntry("name", .string("theirs")),
                                                            Value.MapEntry("namespace", .string("demo"))]))]), cluster: "c1")
        outcome = try await member.push([a, Self.object(.clusterSecurityRule, "", "containers", mode: "Monitor")])
        // the unchanged object gets no request at all
        #expect(outcome.created.isEmpty && outcome.updated == [b.identity] && outcome.unchanged == 1)
        #expect(f.double.objects(cluster: "c1")[a.identity]?["metadata"]?["resourceVersion"] == version)
        outcome = try await member.push([a])
        #expect(outcome.deleted == [b.identity])
        let left = f.double.objects(cluster: "c1").keys.map(\.name).sorted()
        #expect(left == ["nv.web.demo", "theirs"])
        #expect(try await member.managedObjects().keys.map(\.name) == ["nv.web.demo"])
    }

    /// With no settle time the read-back would come at once: the apply's answer, the object as stored, is it, so
    /// a changed object costs one request; an answer that is not the object leaves the read-back to a request.
    @Test func withNoSettleTimeTheApplyAnswerIsTheReadBack() async throws {
        let f = try Fixture()
        let objects = [Self.object(.securityRule, "demo", "nv.web.demo"), Self.object(.securityRule, "demo", "nv.api.demo"),
                       Self.object(.clusterSecurityRule, "", "containers")]
        func readsAfterTheFirstApply(_ cluster: String, settle: Double) async throws -> [String] {
            var member = f.member(cluster)
            member.settle = settle
            let logged = f.double.requestLog.count
            _ = try await member.push(objects)
            let log = f.double.requestLog.dropFirst(logged).filter { $0.contains("/clusters/\(cluster)/") }
            return Array(log.drop { !$0.hasPrefix("PATCH ") }.filter { $0.hasPrefix("GET ") })
        }
        let answered = try await readsAfterTheFirstApply("quick", settle: 0)
        #expect(answered.isEmpty, "\(answered)")
        let waited = try await readsAfterTheFirstApply("waited", settle: 0.05)
        #expect(waited.count == 2, "one list of the rules, one get of the only cluster rule: \(waited)")
        f.double.setFault(.bareApplyAnswers, cluster: "proxied")
        let bare = try await readsAfterTheFirstApply("proxied", settle: 0)
        #expect(bare.count == 2, "\(bare)")
        #expect(f.double.objects(cluster: "proxied").count == 3)
    }

    @Test func serverErrorsNameTheClusterTheObjectAndTheServersWords() async throws {
        let f = try Fixture()
        let a = Self.object(.securityRule, "demo", "nv.web.demo")
        func message(_ member: KubernetesMember) async -> String {
            do {
                _ = try await member.push([a])
                return "no error"
            } catch {
                return error.description
            }
        }
        f.double.setFault(.crdMissing, cluster: "nocrd")
        #expect(await message(f.member("nocrd")).hasPrefix("cluster nocrd: the NeuVector CRDs are not served (GET /apis/neuvector.com/v1 answered 404 404 page not found)"))
        #expect(await message(f.member("c401", token: "stolen")) == "cluster c401: discovery: HTTP 401 Unauthorized: Unauthorized")
        f.double.setFault(.forbidden, cluster: "c403")
        #expect(await message(f.member("c403")) == "cluster c403: NvSecurityRule/demo/nv.web.demo: server-side apply: HTTP 403 Forbidden: nvsecurityrules.neuvector.com \"nv.web.demo\" is forbidden: User \"system:serviceaccount:policyhub:hub\" cannot patch resource \"nvsecurityrules\" in API group \"neuvector.com\" in the namespace \"demo\"")
        f.double.setFault(.conflict, cluster: "c409")
        #expect(await message(f.member("c409")).contains("HTTP 409 Conflict: Apply failed with 1 conflict"))
        f.double.setFault(.internalError, cluster: "c500")
        #expect(await message(f.member("c500")) == "cluster c500: discovery: HTTP 500 InternalError: Internal error occurred: injected")
        f.double.setFault(.refuse, cluster: "down")
        #expect(await message(f.member("down")).hasPrefix("cluster down: discovery: cannot connect to"))
    }

    @Test func aHangingMemberTimesOutAndABadCertificateIsATLSFailure() async throws {
        let f = try Fixture()
        var settings = TransportSettings()
        settings.totalTimeout = 1
        settings.maxAttempts = 1
        let impatient = CurlTransport(settings: settings)
        defer { impatient.shutdown() }
        f.double.setFault(.hang, cluster: "stuck")
        var tls = TLSSettings()
        tls.caPEM = f.pki.caCertificate
        let stuck = KubernetesMember(cluster: "stuck", endpoint: KubernetesEndpoint(server: f.double.url(cluster: "stuck"), tls: tls,
                                                                                    token: "hub-token"), transport: impatient)
        do {
            _ = try await stuck.push([Self.object(.securityRule, "demo", "nv.web.demo")])
            Issue.record("a hanging member succeeded")
        } catch {
            #expect(error.description.hasPrefix("cluster stuck: discovery: timed out talking to"))
        }
        // a kubeconfig whose CA is not the server's: verification fails, nothing is sent
        var wrongCA = TLSSettings()
        wrongCA.caPEM = f.pki.strangerCertificate
        let wrong = KubernetesMember(cluster: "wrong-ca", endpoint: KubernetesEndpoint(server: f.double.url(cluster: "wrong-ca"),
                                                                                       tls: wrongCA, token: "hub-token"),
                                     transport: f.transport)
        do {
            _ = try await wrong.push([Self.object(.securityRule, "demo", "nv.web.demo")])
            Issue.record("an unverified server was trusted")
        } catch {
            #expect(error.description.hasPrefix("cluster wrong-ca: discovery: TLS failure with"))
        }
        #expect(f.double.requestCount(cluster: "wrong-ca") == 0)
    }

    @Test func kubeconfigFieldsAndRefusals() throws {
        let folder = KubernetesMemberTests.folder + "/kc-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let pki = try KubernetesMemberTests.pki.get()
        let ca = Data(pki.caCertificate).base64EncodedString()
        try "file-token\n".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
        let config = """
            apiVersion: v1
            kind: Config
            current-context: a
            clusters:
            - name: a
              cluster: {server: 'https://127.0.0.1:6443/', certificate-authority-data: \(ca)}
            - name: named
              cluster: {server: 'https://127.0.0.1:6443', certificate-authority-data: \(ca), tls-server-name: kubernetes.default.svc}
            - name: plain
              cluster: {server: 'http://127.0.0.1:8080'}
            - name: both
              cluster: {server: 'https://127.0.0.1:6443', certificate-authority-data: \(ca), insecure-skip-tls-verify: true}
            users:
            - name: u
              user: {token: inline-token, tokenFile: token}
            contexts:
            - {name: a, context: {cluster: a, user: u}}
            - {name: named, context: {cluster: named, user: u}}
            - {name: plain, context: {cluster: plain, user: u}}
            - {name: both, context: {cluster: both, user: u}}
            """
        let path = folder + "/kubeconfig"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let a = try Kubeconfig.endpoint(path: path, context: nil)
        #expect(a.server == "https://127.0.0.1:6443")
        #expect(a.token == "file-token")  // tokenFile wins, as client-go does
        #expect(a.tls.caPEM == pki.caCertificate && a.tls.verifyPeer)
        let named = try Kubeconfig.endpoint(path: path, context: "named")
        #expect(named.server == "https://kubernetes.default.svc:6443")
        #expect(named.tls.connectTo == ["kubernetes.default.svc:6443:127.0.0.1:6443"])
        for (context, fragment) in [("plain", "refuses to send credentials without TLS"),
                                    ("both", "insecure flag is not allowed"), ("nope", "has no context 'nope'")] {
            do {
                _ = try Kubeconfig.endpoint(path: path, context: context)
                Issue.record("context \(context) was accepted")
            } catch {
                #expect(error.description.contains(fragment), "\(error)")
                #expect(!error.description.contains("token"), "a secret in a message: \(error)")
            }
        }
        do {
            _ = try Kubeconfig.endpoint(path: folder + "/missing", context: nil)
        } catch {
            #expect(error.description == "kubeconfig \(folder)/missing: cannot be read")
        }
    }
}
