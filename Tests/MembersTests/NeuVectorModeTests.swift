import Foundation
import HubTransport
import Members
import PolicyCore
import PolicyHubTesting
import Testing

/// The hub against NeuVector's CRD webhook as the API double plays it: every fault on its own.
@Suite(.serialized) struct NeuVectorModeTests {
    typealias Fixture = KubernetesMemberTests.Fixture

    /// An NvSecurityRule whose target group is `group` with `criteria` (key=value), plus `extra` spec fields.
    static func rule(_ name: String, group: String, criteria: String, extra: [Value.MapEntry] = []) -> RenderedObject {
        let parts = criteria.split(separator: "=").map(String.init)
        let criterion = Value.map([Value.MapEntry("key", .string(parts[0])), Value.MapEntry("op", .string("=")),
                                   Value.MapEntry("value", .string(parts[1]))])
        let selector = Value.map([Value.MapEntry("criteria", .list([criterion])), Value.MapEntry("name", .string(group))])
        let spec = Value.map(([Value.MapEntry("target", .map([Value.MapEntry("selector", selector)]))] + extra).sorted { $0.key < $1.key })
        let meta: [Value.MapEntry] = [
            Value.MapEntry("labels", .map([Value.MapEntry(HubAnnotation.managedByKey, .string(HubAnnotation.managedByValue))])),
            Value.MapEntry("name", .string(name)), Value.MapEntry("namespace", .string("demo")),
        ]
        let value = Value.map([Value.MapEntry("apiVersion", .string("neuvector.com/v1")), Value.MapEntry("kind", .string("NvSecurityRule")),
                               Value.MapEntry("metadata", .map(meta)), Value.MapEntry("spec", spec)])
        return RenderedObject(identity: ObjectIdentity(kind: .securityRule, namespace: "demo", name: name), source: "x",
                              hash: ContentHash.of(spec), value: value)
    }

    static func fast(_ change: (inout KubernetesAPIDouble.NeuVectorMode) -> Void = { _ in }) -> KubernetesAPIDouble.NeuVectorMode {
        var mode = KubernetesAPIDouble.NeuVectorMode(admissionLatency: 0.05, judgeDelay: 0.05)
        change(&mode)
        return mode
    }

    static func failure(_ work: () async throws(MemberError) -> PushOutcome) async -> String {
        do throws(MemberError) {
            _ = try await work()
            return "no error"
        } catch {
            return error.description
        }
    }

    /// NeuVector's webhook sleeps through each admission; over HTTP/2 one connection per cluster carries all
    /// the applies a push has in flight, so the sleeps overlap instead of queueing behind connections.
    @Test func overHTTP2TheSlowAdmissionsOfAPushShareOneConnection() async throws {
        let f = try Fixture(http2: true, inFlight: 1_000)
        f.double.setNeuVector(KubernetesAPIDouble.NeuVectorMode(admissionLatency: 0.5, judgeDelay: 0.05), cluster: "nv")
        var member = f.member("nv")
        member.settle = 0.2
        let objects = (0..<40).map { Self.rule("nv.app\($0).demo", group: "nv.app\($0).demo", criteria: "service=app\($0).demo") }
        let outcome = try await member.push(objects)
        #expect(outcome.created.count == 40)
        #expect(Set(f.double.objects(cluster: "nv").keys) == Set(objects.map(\.identity)))
        #expect(f.double.acceptedConnections == 1, "\(f.double.acceptedConnections) connections")
        #expect(f.double.http2Requests == f.double.requestCount(cluster: "nv"))
        #expect(f.double.queueDenials(cluster: "nv") == 0)
    }

    @Test func anObjectNeuVectorRemovesAfterAdmissionFailsThePushByName() async throws {
        let f = try Fixture()
        f.double.setNeuVector(Self.fast { $0.reject = KubernetesAPIDouble.NeuVectorMode.differentGroupCriteria }, cluster: "nv")
        // a group someone defined by hand, with other criteria than the hub's rule gives it
        let theirs = KubernetesAPIDouble.removing(["metadata", "labels"],
                                                  from: Self.rule("nv.theirs.demo", group: "nv.web.demo", criteria: "service=web.demo").value)
        f.double.put(theirs, cluster: "nv")
        var member = f.member("nv")
        member.settle = 1.5
        let good = Self.rule("nv.api.demo", group: "nv.api.demo", criteria: "service=api.demo")
        let clash = Self.rule("nv.web.demo", group: "nv.web.demo", criteria: "service=other.demo")
        let message = await Self.failure { () async throws(MemberError) in try await member.push([good, clash]) }
        #expect(message.contains("NvSecurityRule/demo/nv.web.demo: rejected by NeuVector after admission"), "\(message)")
        #expect(!message.contains("nv.api.demo"))
        #expect(f.double.removedByNeuVector(cluster: "nv").map(\.0) == [clash.identity])
        #expect(f.double.objects(cluster: "nv")[good.identity] != nil)

        // read back at once (no settle), the same push would have looked fine: that is why the hub waits
        f.double.put(theirs, cluster: "nv2")
        f.double.setNeuVector(Self.fast { $0.reject = KubernetesAPIDouble.NeuVectorMode.differentGroupCriteria; $0.judgeDelay = 600 },
                              cluster: "nv2")
        var hasty = f.member("nv2")
        hasty.settle = 0
        #expect(await Self.failure { () async throws(MemberError) in try await hasty.push([clash]) } == "no error")
        f.double.judgeNow(cluster: "nv2")  // NeuVector's queue gets to it after the hasty read-back
        #expect(f.double.objects(cluster: "nv2")[clash.identity] == nil, "\(f.double.removedByNeuVector(cluster: "nv2")) \(f.double.objects(cluster: "nv2").keys)")

        // the only object of its kind is read back with one get of it, not a list of the kind: found gone the same
        f.double.put(theirs, cluster: "nv3")
        f.double.setNeuVector(Self.fast { $0.reject = KubernetesAPIDouble.NeuVectorMode.differentGroupCriteria }, cluster: "nv3")
        var alone = f.member("nv3")
        alone.settle = 1
        let logged = f.double.requestLog.count
        let single = await Self.failure { () async throws(MemberError) in try await alone.push([clash]) }
        #expect(single.contains("NvSecurityRule/demo/nv.web.demo: rejected by NeuVector after admission"), "\(single)")
        let reads = f.double.requestLog.dropFirst(logged).filter { $0.hasPrefix("GET ") && $0.contains("/clusters/nv3/") }
        #expect(reads.contains { $0.hasSuffix("/namespaces/demo/nvsecurityrules/nv.web.demo") }, "\(reads)")
    }

    @Test func aFullQueueIsRetriedUntilEveryObjectIsIn() async throws {
        let f = try Fixture()
        f.double.setNeuVector(Self.fast { $0.queueCapacity = 4; $0.admissionLatency = 0.1 }, cluster: "busy")
        var member = f.member("busy")
        member.settle = 0
        let objects = (0..<40).map { Self.rule("nv.app\($0).demo", group: "nv.app\($0).demo", criteria: "service=app\($0).demo") }
        let outcome = try await member.push(objects)
        #expect(outcome.created.count == 40)
        #expect(f.double.queueDenials(cluster: "busy") > 0)  // the queue did fill: the retries are what got them in
        #expect(f.double.objects(cluster: "busy").count == 40)
    }

    @Test func aQueueThatStaysFullFailsWithNeuVectorsWords() async throws {
        let f = try Fixture()
        f.double.setNeuVector(Self.fast { $0.queueCapacity = 0 }, cluster: "jammed")
        var member = f.member("jammed")
        member.settle = 0
        member.deadline = Date().timeIntervalSince1970 + 3
        let message = await Self.failure { () async throws(MemberError) in
            try await member.push([Self.rule("nv.a.demo", group: "nv.a.demo", criteria: "service=a.demo")])
        }
        #expect(message.contains("NvSecurityRule/demo/nv.a.demo: server-side apply: HTTP 400"), "\(message)")
        #expect(message.contains("denied: too many requests received"))
    }

    @Test func everyDryRunIsDeniedAndThePushNeverSendsOne() async throws {
        let f = try Fixture()
        f.double.setNeuVector(Self.fast(), cluster: "nv")
        let object = Self.rule("nv.a.demo", group: "nv.a.demo", criteria: "service=a.demo")
        var tls = TLSSettings()
        tls.caPEM = f.pki.caCertificate
        let request = HTTPRequest(method: "PATCH", url: f.double.url(cluster: "nv") + KubernetesMember.path(object.identity)
                                    + "?fieldManager=policyhub&dryRun=All",
                                  headers: [HTTPHeader("Authorization", "Bearer hub-token"), HTTPHeader("Content-Type", "application/apply-patch+yaml")],
                                  body: JSONWriter.compactBytes(object.value))
        let response = try await f.transport.send(request, tls: tls).get()
        #expect(response.status == 400)
        #expect(response.bodyText.contains("CREATE denied in dry-run"), "\(response.bodyText)")
        var member = f.member("nv")
        member.settle = 0
        _ = try await member.push([object])
        #expect(!f.double.requestLog.contains { $0.contains("dryRun") && !$0.hasPrefix("PATCH /clusters/nv/apis/neuvector.com/v1/namespaces/demo/nvsecurityrules/nv.a.demo?fieldManager=policyhub&dryRun") })
        #expect(f.double.objects(cluster: "nv")[object.identity] != nil)
    }

    @Test func anObjectOverNeuVectorsSizeLimitIsRefusedByName() async throws {
        let f = try Fixture()
        f.double.setNeuVector(Self.fast(), cluster: "nv")
        let huge = Self.rule("nv.huge.demo", group: "nv.huge.demo", criteria: "service=huge.demo",
                             extra: [Value.MapEntry("process", .list((0..<6000).map { n in
                                 .map([Value.MapEntry("action", .string("allow")), Value.MapEntry("name", .string("p\(n)")),
                                       Value.MapEntry("path", .string("/usr/local/bin/a-rather-long-process-name-\(n)"))])
                             }))])
        var member = f.member("nv")
        member.settle = 0
        let message = await Self.failure { () async throws(MemberError) in try await member.push([huge]) }
        #expect(message.contains("NvSecurityRule/demo/nv.huge.demo: server-side apply: HTTP 400"), "\(message)")
        #expect(message.contains("is too big"))
        #expect(f.double.objects(cluster: "nv").isEmpty)
    }

    @Test func aFieldTheInstalledSchemaPrunesFailsThePushNamingIt() async throws {
        let f = try Fixture()
        f.double.setNeuVector(Self.fast { $0.prunedFields = ["spec.dlp"] }, cluster: "old-chart")
        var member = f.member("old-chart")
        member.settle = 0
        let object = Self.rule("nv.a.demo", group: "nv.a.demo", criteria: "service=a.demo",
                               extra: [Value.MapEntry("dlp", .map([Value.MapEntry("status", .bool(true))]))])
        let message = await Self.failure { () async throws(MemberError) in try await member.push([object]) }
        #expect(message.contains("NvSecurityRule/demo/nv.a.demo: changed after admission: spec.dlp"), "\(message)")
        #expect(f.double.objects(cluster: "old-chart")[object.identity]?["spec"]?["dlp"] == nil)
    }

    @Test func aNameNeuVectorDoesNotAllowOnCreateIsDenied() async throws {
        let f = try Fixture()
        f.double.setNeuVector(Self.fast(), cluster: "nv")
        let meta: [Value.MapEntry] = [
            Value.MapEntry("labels", .map([Value.MapEntry(HubAnnotation.managedByKey, .string(HubAnnotation.managedByValue))])),
            Value.MapEntry("name", .string("mine")),
        ]
        let spec = Value.map([Value.MapEntry("config", .map([Value.MapEntry("enable", .bool(true))]))])
        let value = Value.map([Value.MapEntry("apiVersion", .string("neuvector.com/v1")),
                               Value.MapEntry("kind", .string("NvAdmissionControlSecurityRule")),
                               Value.MapEntry("metadata", .map(meta)), Value.MapEntry("spec", spec)])
        let object = RenderedObject(identity: ObjectIdentity(kind: .admissionControl, namespace: "", name: "mine"), source: "x",
                                    hash: ContentHash.of(spec), value: value)
        var member = f.member("nv")
        member.settle = 0
        let message = await Self.failure { () async throws(MemberError) in try await member.push([object]) }
        #expect(message.contains("CRD resource metadata name(mine) is not allowed"), "\(message)")
    }
}
