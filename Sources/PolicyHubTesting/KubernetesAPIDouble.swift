import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import PolicyCore
import PolicyYAML

/// A Kubernetes API server double for NeuVector's two security rule kinds, faithful to the captures in
/// `shared/reference/kubernetes-wire*.md`: discovery, get, list (label selector, all namespaces),
/// server-side apply (201 create, 200 update, unchanged keeps `resourceVersion`), delete, `metav1.Status`
/// errors, bearer-token and client-certificate authentication over TLS, and many virtual clusters behind
/// one port under `/clusters/<name>` (as proxies such as Rancher serve them). Real `kubectl` talks to it.
public final class KubernetesAPIDouble: @unchecked Sendable {
    /// A fault a virtual cluster can be told to show.
    public enum Fault: Sendable, Equatable {
        case none
        /// Close the connection without answering.
        case refuse
        /// Never answer.
        case hang
        /// Answer the next `count` requests with `code` (429, 503...) and a `Retry-After`.
        case status(code: Int, retryAfter: Int?, count: Int)
        /// Answer every request 500.
        case internalError
        /// Send the head and half a body, then close.
        case dropMidResponse
        /// Serve no NeuVector CRDs: discovery and resource paths give the text/plain 404.
        case crdMissing
        /// Answer every write with 403 Forbidden.
        case forbidden
        /// Answer every apply with a 409 field-manager conflict.
        case conflict
        // Hostile members: answers that must cost the hub one failed cluster, never the process.
        /// Announce a body of 2 GiB (`Content-Length`), then send zeros for as long as the client reads.
        case hugeContentLength
        /// A chunked body that never ends (a list whose items keep coming).
        case endlessBody
        /// A gzip body (`Content-Encoding: gzip`) that decodes to far more than it is: these bytes.
        case gzipBody([UInt8])
        /// One byte a second, forever.
        case slowDrip
        /// A response with `count` headers of 1 KiB each.
        case hugeHeaders(count: Int)
        /// Lists answer with `count` generated objects labelled as managed by the hub (sent as they are made,
        /// so a million costs the double no memory); other requests are served as usual.
        case listFlood(count: Int)
        /// The next `count` list requests that carry a `continue` token answer 410 Gone (the token expired).
        case expireContinue(count: Int)
        /// Applies are stored as usual but answered with a bare `{"kind": ...}` instead of the object (a proxy's
        /// fixed reply): what was stored can only be learnt by reading it.
        case bareApplyAnswers
    }

    /// One stored object and its JSON, encoded once when stored (gets, lists and applies answer with it).
    struct Stored {
        var value: Value
        var resourceVersion: Int
        var json: [UInt8]
        /// The object less what the server adds, kept so that an apply compares without recomputing it.
        var comparable: Value

        /// `comparable`: `withoutServerFields(value)` when the caller has it already.
        init(value: Value, resourceVersion: Int, comparable: Value? = nil) {
            self.value = value
            self.resourceVersion = resourceVersion
            json = JSONWriter.compactBytes(value)
            self.comparable = comparable ?? KubernetesAPIDouble.withoutServerFields(value)
        }
    }

    /// Guarded by the double's lock.
    final class VirtualCluster: @unchecked Sendable {
        var objects: [ObjectIdentity: Stored] = [:]
        var fault: Fault = .none
        var requests = 0
        var uidCounter = 0
        /// The NeuVector kinds whose CRDs the cluster serves (a cluster may lack, say, the DLP CRD).
        var served: Set<ObjectKind> = Set(ObjectKind.allCases)
        /// NeuVector's CRD webhook in front of the writes, when set.
        var neuvector: NeuVectorMode?
        /// Admissions waiting in NeuVector's webhook (its bounded queue).
        var queued = 0
        /// NeuVector's event log of objects it removed after admitting them: identity and reason.
        var removed: [(ObjectIdentity, String)] = []
        /// Admissions denied because the queue was full.
        var queueDenials = 0
        /// Objects admitted and not judged yet, in admission order.
        var unjudged: [ObjectIdentity] = []
        /// The changes a watch can be resumed over, oldest first, and the oldest resourceVersion they reach back
        /// to: a watch from before `historyFloor` is answered 410 Gone (the API server compacted its history).
        var history: [WatchRecord] = []
        var historyFloor = 0
        /// Watches being served, by id.
        var watchers: [Int: Watcher] = [:]
    }

    /// NeuVector's CRD validating webhook as the API server sees it (controller/rest/crdvalidatewebhook.go @1b8b707,
    /// `shared/reference/neuvector-delivery.md`): it answers every write only after sleeping (1 s), queues it in a
    /// channel of 128 and denies "too many requests received" when that is full, denies every dry run and every
    /// object over 512 KiB, and judges what it admitted later, deleting what its importer rejects. The installed
    /// CRD's structural schema prunes fields it does not know.
    public struct NeuVectorMode: Sendable {
        /// Seconds every admitted or queue-denied write waits before its answer (`scheduleKvEnqueue` sleeps 1 s).
        public var admissionLatency: Double
        /// Writes that may wait in the webhook at once (`crdReqMgr.init(128)`).
        public var queueCapacity: Int
        /// Seconds after its answer that an admitted object is judged (`crdQueueProc`).
        public var judgeDelay: Double
        /// The largest object admitted (`cluster.KVValueSizeMax`).
        public var maxBytes: Int
        /// Fields the installed CRD schema does not know, as dotted paths (`spec.dlp`): dropped from what is stored.
        public var prunedFields: [String]
        /// The importer's verdict on an admitted object, given every other object the cluster holds: a message
        /// rejects it (NeuVector deletes it and logs the message), nil keeps it.
        public var reject: @Sendable (_ object: Value, _ others: [ObjectIdentity: Value]) -> String?

        public init(admissionLatency: Double = 1, queueCapacity: Int = 128, judgeDelay: Double = 0.05, maxBytes: Int = 512 * 1024,
                    prunedFields: [String] = [],
                    reject: @escaping @Sendable (_ object: Value, _ others: [ObjectIdentity: Value]) -> String? = { _, _ in nil }) {
            self.admissionLatency = admissionLatency
            self.queueCapacity = queueCapacity
            self.judgeDelay = judgeDelay
            self.maxBytes = maxBytes
            self.prunedFields = prunedFields
            self.reject = reject
        }

        /// NeuVector's live-state check of `parseCrdGroup`: a rule whose target group has the name of a group
        /// another object already defines with other criteria is rejected ("has different criteria from existing
        /// group").
        public static let differentGroupCriteria: @Sendable (Value, [ObjectIdentity: Value]) -> String? = { object, others in
            guard let target = object["spec"]?["target"]?["selector"], let name = target["name"]?.stringValue else { return nil }
            for (identity, other) in others.sorted(by: { $0.key < $1.key }) {
                guard let selector = other["spec"]?["target"]?["selector"], selector["name"]?.stringValue == name,
                      selector["criteria"] != target["criteria"] else { continue }
                return "CRD Rule format error: Group \(name) has different criteria from existing group (defined by \(identity))"
            }
            return nil
        }
    }

    let lock = NSLock()
    private let judgeQueue = DispatchQueue(label: "policyhub-double-neuvector-queue")
    var clusters: [String: VirtualCluster] = [:]
    /// `METHOD URI` of every request received, in order, whatever it asked for (a hostile member's test
    /// reads it to see that no request left the paths the hub builds).
    private var log: [String] = []
    private var headerLog: [[String: String]] = []
    var resourceVersion = 1000
    var bookmarkSeconds = 60.0
    var watcherCounter = 0
    /// The virtual cluster of every watch being served, by watch id.
    var watchersByID: [Int: VirtualCluster] = [:]
    private var firstRequest: Double?
    private var lastRequest: Double?
    private let group: MultiThreadedEventLoopGroup
    private var channel: Channel?
    /// Accepted bearer tokens; empty accepts any request.
    public let tokens: Set<String>
    public private(set) var port = 0

    /// TLS material for the double, PEM.
    public struct TLS: Sendable {
        public var certificateChain: [UInt8]
        public var privateKey: [UInt8]
        /// CA that client certificates must chain to; client certificates are optional.
        public var clientCA: [UInt8]?

        public init(certificateChain: [UInt8], privateKey: [UInt8], clientCA: [UInt8]?) {
            self.certificateChain = certificateChain
            self.privateKey = privateKey
            self.clientCA = clientCA
        }
    }

    public init(tokens: Set<String> = [], threads: Int = 2) {
        self.tokens = tokens
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    /// A double already listening over TLS with `pki`'s server certificate; client certificates signed by
    /// `pki`'s CA are accepted when `clientCertificates` is set.
    /// With `http2`, TLS offers `h2` before `http/1.1` (ALPN), as a real API server does, and one connection
    /// carries many requests at once.
    public static func started(pki: TestPKI, tokens: Set<String>, clientCertificates: Bool = true,
                               http2: Bool = false) throws -> KubernetesAPIDouble {
        let double = KubernetesAPIDouble(tokens: tokens)
        try double.start(tls: TLS(certificateChain: pki.serverCertificate, privateKey: pki.serverKey,
                                  clientCA: clientCertificates ? pki.caCertificate : nil), http2: http2)
        return double
    }

    /// Starts listening on 127.0.0.1 (port 0 picks a free one). Plain HTTP when `tls` is nil; HTTP/2 is offered
    /// only over TLS, when `http2` is set (each HTTP/2 stream is served as one HTTP/1.1 exchange).
    public func start(tls: TLS?, port: Int = 0, http2: Bool = false) throws {
        let sslContext = try tls.map { try KubernetesAPIDouble.serverContext($0, http2: http2) }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                countConnection()
                guard let sslContext else {
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(DoubleHandler(double: self, tls: false))
                    }
                }
                do {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                guard http2 else {
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(DoubleHandler(double: self, tls: true))
                    }
                }
                // h2 or http/1.1 as negotiated; for h2 the configurator runs once per stream channel
                return channel.configureCommonHTTPServerPipeline(h2ConnectionChannelConfigurator: { [self] connection in
                    connection.eventLoop.makeCompletedFuture {
                        try connection.pipeline.syncOperations.addHandler(ConnectionErrors(double: self))
                    }
                }, targetWindowSize: 1 << 20) { [self] stream in
                    // called with each HTTP/2 stream's channel, or with the connection when it fell back to HTTP/1.1
                    stream.eventLoop.makeCompletedFuture {
                        let h2 = (try? stream.pipeline.syncOperations.handler(type: HTTP2FramePayloadToHTTP1ServerCodec.self)) != nil
                        if h2 { try stream.pipeline.syncOperations.addHandler(EndStreamOnLastData(), position: .first) }
                        try stream.pipeline.syncOperations.addHandler(DoubleHandler(double: self, tls: true, http2: h2))
                    }
                }
            }
        let channel = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    /// The server side of TLS: the double's certificate, and client certificates checked against `clientCA`.
    static func serverContext(_ tls: TLS, http2: Bool) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMBytes(tls.certificateChain).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(bytes: tls.privateKey, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        if let ca = tls.clientCA {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
            configuration.certificateVerification = .optionalVerification
        }
        configuration.applicationProtocols = http2 ? ["h2", "http/1.1"] : ["http/1.1"]
        return try NIOSSLContext(configuration: configuration)
    }

    public func stop() {
        try? channel?.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// A kubeconfig for one virtual cluster: its URL, the CA that signed the double's certificate, a token.
    public func kubeconfig(cluster: String, caPEM: [UInt8], token: String, ownHost: Bool = false) -> String {
        """
        apiVersion: v1
        kind: Config
        current-context: \(cluster)
        clusters: [{name: \(cluster), cluster: {server: '\(url(cluster: cluster, ownHost: ownHost))', certificate-authority-data: \(Data(caPEM).base64EncodedString())}}]
        users: [{name: hub, user: {token: \(token)}}]
        contexts: [{name: \(cluster), context: {cluster: \(cluster), user: hub}}]

        """
    }

    /// The server URL of a virtual cluster, e.g. `https://127.0.0.1:PORT/clusters/c1`.
    /// A virtual cluster's URL. With `ownHost`, its host is `CLUSTER.clusters.localhost` (loopback, in the test
    /// certificate), so that a client keeps connections per cluster, as it must with a fleet of real clusters.
    public func url(cluster: String, tls: Bool = true, ownHost: Bool = false) -> String {
        "\(tls ? "https" : "http")://\(ownHost ? KubernetesAPIDouble.ownHost(cluster) : "127.0.0.1"):\(port)/clusters/\(cluster)"
    }

    /// The host name of a virtual cluster's own host (see `url(cluster:tls:ownHost:)`).
    public static func ownHost(_ cluster: String) -> String { "\(cluster).clusters.localhost" }

    func virtual(_ name: String) -> VirtualCluster {
        if let existing = clusters[name] { return existing }
        let created = VirtualCluster()
        clusters[name] = created
        return created
    }

    /// Sets a virtual cluster's fault.
    public func setFault(_ fault: Fault, cluster: String) {
        lock.lock()
        virtual(cluster).fault = fault
        lock.unlock()
    }

    /// Which NeuVector CRDs a virtual cluster serves (all of them unless told otherwise).
    /// Puts NeuVector's CRD webhook in front of a virtual cluster's writes (nil: plain Kubernetes).
    public func setNeuVector(_ mode: NeuVectorMode?, cluster: String) {
        lock.lock()
        defer { lock.unlock() }
        virtual(cluster).neuvector = mode
    }

    /// The objects NeuVector removed after admitting them, with its reason, in order.
    public func removedByNeuVector(cluster: String) -> [(ObjectIdentity, String)] {
        lock.lock()
        defer { lock.unlock() }
        return virtual(cluster).removed
    }

    /// How many writes NeuVector denied because its queue was full.
    public func queueDenials(cluster: String) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return virtual(cluster).queueDenials
    }

    public func setServedKinds(_ kinds: Set<ObjectKind>, cluster: String) {
        lock.lock()
        virtual(cluster).served = kinds
        lock.unlock()
    }

    /// The headers of every request received so far (names lower-cased, repeated ones joined by ", ").
    public var requestHeaders: [[String: String]] {
        lock.lock()
        defer { lock.unlock() }
        return headerLog
    }

    /// Every request received so far, as `METHOD URI`.
    public var requestLog: [String] {
        lock.lock()
        defer { lock.unlock() }
        return log
    }

    /// Every request received so far, as `METHOD URI`, with the User-Agent it came with (which replica of
    /// the hub sent it).
    public var requestsWithAgents: [(request: String, agent: String)] {
        lock.lock()
        defer { lock.unlock() }
        return zip(log, headerLog).map { ($0, $1["user-agent"] ?? "") }
    }

    /// Forgets every object and request count (the faults stay).
    public func reset() {
        lock.lock()
        defer { lock.unlock() }
        for cluster in clusters.values {
            cluster.objects = [:]
            cluster.requests = 0
            cluster.history = []
            cluster.historyFloor = resourceVersion
        }
        connections = 0
        http2 = 0
        firstRequest = nil
        lastRequest = nil
    }

    /// Forgets request and connection counts and the active window; the objects stay.
    public func resetCounters() {
        lock.lock()
        defer { lock.unlock() }
        for cluster in clusters.values { cluster.requests = 0 }
        connections = 0
        http2 = 0
        firstRequest = nil
        lastRequest = nil
    }

    /// Seconds from the first request answered to the last since the last reset: what a load tool's run
    /// took as the server saw it.
    public var activeSeconds: Double {
        lock.lock()
        defer { lock.unlock() }
        guard let firstRequest, let lastRequest else { return 0 }
        return lastRequest - firstRequest
    }

    private var connections = 0
    private var http2 = 0
    private var errors: [String] = []

    func countHTTP2Request() {
        lock.lock()
        http2 += 1
        lock.unlock()
    }

    /// Requests that came over HTTP/2 since the last reset.
    public var http2Requests: Int {
        lock.lock()
        defer { lock.unlock() }
        return http2
    }

    /// Notes an error that ended a connection (an HTTP/2 protocol error, say).
    func noteConnectionError(_ error: any Error) {
        lock.lock()
        if errors.count < 100 { errors.append(String(describing: error)) }
        lock.unlock()
    }

    /// The errors that ended connections, the first 100.
    public var connectionErrors: [String] {
        lock.lock()
        defer { lock.unlock() }
        return errors
    }

    private func countConnection() {
        lock.lock()
        connections += 1
        lock.unlock()
    }

    /// Connections accepted since the last reset (a client that keeps its connections opens few).
    public var acceptedConnections: Int {
        lock.lock()
        defer { lock.unlock() }
        return connections
    }

    /// Requests a virtual cluster has received.
    public func requestCount(cluster: String) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return clusters[cluster]?.requests ?? 0
    }

    /// Total requests over all virtual clusters.
    public var totalRequests: Int {
        lock.lock()
        defer { lock.unlock() }
        return clusters.values.reduce(0) { $0 + $1.requests }
    }

    /// The objects a virtual cluster holds, as stored (with server fields).
    public func objects(cluster: String) -> [ObjectIdentity: Value] {
        lock.lock()
        defer { lock.unlock() }
        return clusters[cluster]?.objects.mapValues(\.value) ?? [:]
    }

    /// Puts an object in a virtual cluster directly, as someone else would (for drift tests).
    public func put(_ value: Value, cluster: String) {
        lock.lock()
        defer { lock.unlock() }
        guard let identity = KubernetesAPIDouble.identity(of: value) else { return }
        resourceVersion += 1
        let stored = Stored(value: KubernetesAPIDouble.settingResourceVersion(value, resourceVersion), resourceVersion: resourceVersion)
        let held = virtual(cluster)
        let old = held.objects[identity]
        held.objects[identity] = stored
        changed(identity, from: old, to: stored, cluster: held)
    }

    /// Deletes an object by hand, as `kubectl delete` would.
    public func remove(_ identity: ObjectIdentity, cluster: String) {
        lock.lock()
        defer { lock.unlock() }
        let held = virtual(cluster)
        guard let old = held.objects.removeValue(forKey: identity) else { return }
        resourceVersion += 1
        changed(identity, from: old, to: nil, cluster: held)
    }

    static func identity(of value: Value) -> ObjectIdentity? {
        guard let kindText = value["kind"]?.stringValue, let kind = ObjectKind(rawValue: kindText),
              let name = value["metadata"]?["name"]?.stringValue else { return nil }
        return ObjectIdentity(kind: kind, namespace: value["metadata"]?["namespace"]?.stringValue ?? "", name: name)
    }

    // MARK: - Answering

    struct Request: Sendable {
        var method: HTTPMethod
        var uri: String
        var headers: HTTPHeaders
        var body: [UInt8]
        var clientCertificate: Bool
    }

    enum Answer {
        case response(status: Int, contentType: String, body: [UInt8], headers: [(String, String)])
        case close
        case hang
        case dropAfterHead(status: Int, body: [UInt8])
        /// A head, then the chunks `chunk(0)`, `chunk(1)`, … until one is nil, `interval` apart (nil: as fast
        /// as the client reads); the body is chunked unless `headers` give a Content-Length.
        case stream(status: Int, headers: [(String, String)], interval: TimeAmount?, chunk: @Sendable (Int) -> [UInt8]?)
        /// The answer `produce` gives, `delay` from now (NeuVector's webhook sleeping).
        case deferred(delay: TimeAmount, produce: @Sendable () -> Answer)
        /// A watch stream: chunked, one event per line, as long as the watcher is registered.
        case watch(Watcher)
    }

    static func json(_ status: Int, _ value: Value, headers: [(String, String)] = []) -> Answer {
        .response(status: status, contentType: "application/json", body: JSONWriter.compactBytes(value), headers: headers)
    }

    static func statusBody(_ code: Int, reason: String, message: String, details: Value? = nil) -> Value {
        var map = ValueMapBuilder()
        map.set("kind", .string("Status"))
        map.set("apiVersion", .string("v1"))
        map.set("metadata", .map([]))
        map.set("status", .string(code < 400 ? "Success" : "Failure"))
        map.set("message", .string(message))
        map.set("reason", .string(reason))
        map.set("details", details)
        map.set("code", .int(code))
        return map.value
    }

    static let notFoundText = Answer.response(status: 404, contentType: "text/plain; charset=utf-8",
                                              body: Array("404 page not found\n".utf8), headers: [])

    func answer(_ request: Request) -> Answer {
        lock.lock()
        defer { lock.unlock() }
        log.append("\(request.method.rawValue) \(request.uri)")
        var seen: [String: String] = [:]
        for header in request.headers { seen[header.name.lowercased(), default: ""] += seen[header.name.lowercased()] == nil ? header.value : ", " + header.value }
        headerLog.append(seen)
        var path = Substring(request.uri)
        var query = ""
        if let mark = path.firstIndex(of: "?") {
            query = String(path[path.index(after: mark)...])
            path = path[..<mark]
        }
        let parts = path.split(separator: "/").map(String.init)
        guard parts.count >= 2, parts[0] == "clusters" else { return KubernetesAPIDouble.notFoundText }
        let cluster = virtual(parts[1])
        cluster.requests += 1
        let now = Date().timeIntervalSince1970
        if firstRequest == nil { firstRequest = now }
        lastRequest = now
        let rest = Array(parts.dropFirst(2))
        switch cluster.fault {
        case .refuse: return .close
        case .hang: return .hang
        case .internalError:
            return KubernetesAPIDouble.json(500, KubernetesAPIDouble.statusBody(500, reason: "InternalError",
                                                                                message: "Internal error occurred: injected"))
        case .dropMidResponse: return .dropAfterHead(status: 200, body: Array("{\"kind\":\"Stat".utf8))
        case .hugeContentLength:
            let zeros = [UInt8](repeating: 0x20, count: 64 << 10)
            return .stream(status: 200, headers: [("Content-Length", "2147483648")], interval: nil) { _ in zeros }
        case .endlessBody:
            let items = Array(String(repeating: "{\"metadata\":{\"name\":\"endless\"}},", count: 2000).utf8)
            return .stream(status: 200, headers: [], interval: nil) { index in
                index == 0 ? Array("{\"kind\":\"NvSecurityRuleList\",\"items\":[".utf8) : items
            }
        case .gzipBody(let bytes):
            return .response(status: 200, contentType: "application/json", body: bytes, headers: [("Content-Encoding", "gzip")])
        case .slowDrip:
            let text = Array("{\"kind\":\"NvSecurityRuleList\",\"items\":[".utf8)
            return .stream(status: 200, headers: [], interval: .seconds(1)) { index in [text[index % text.count]] }
        case .hugeHeaders(let count):
            let value = String(repeating: "x", count: 1024)
            return .response(status: 200, contentType: "application/json", body: Array("{}".utf8),
                             headers: (0..<count).map { ("X-Padding-\($0)", value) })
        case .listFlood(let count) where request.method == .GET && KubernetesAPIDouble.isList(rest)
            && (rest.last == "nvclustersecurityrules" || rest.last == "nvsecurityrules"):
            let kind: ObjectKind = rest.last == "nvclustersecurityrules" ? .clusterSecurityRule : .securityRule
            let held = cluster.objects.filter { $0.key.kind == kind }.sorted { $0.key < $1.key }.map(\.value.json)
            return KubernetesAPIDouble.flood(count: count, kind: kind, then: held)
        case .status(let code, let retryAfter, let count) where count > 0:
            cluster.fault = count > 1 ? .status(code: code, retryAfter: retryAfter, count: count - 1) : .none
            let reason = code == 429 ? "TooManyRequests" : "ServiceUnavailable"
            return KubernetesAPIDouble.json(code, KubernetesAPIDouble.statusBody(code, reason: reason, message: "injected \(code)"),
                                            headers: retryAfter.map { [("Retry-After", String($0))] } ?? [])
        case .expireContinue(let count) where count > 0 && request.method == .GET && query.contains("continue="):
            cluster.fault = count > 1 ? .expireContinue(count: count - 1) : .none
            return KubernetesAPIDouble.json(410, KubernetesAPIDouble.statusBody(
                410, reason: "Expired",
                message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."))
        case .none, .crdMissing, .forbidden, .conflict, .status, .listFlood, .expireContinue, .bareApplyAnswers: break
        }
        // authentication: a listed bearer token, or a verified client certificate
        if !tokens.isEmpty {
            let bearer = request.headers.first(name: "Authorization").flatMap { header -> String? in
                header.hasPrefix("Bearer ") ? String(header.dropFirst(7)) : nil
            }
            if !(bearer.map(tokens.contains) ?? false) && !request.clientCertificate {
                return KubernetesAPIDouble.json(401, KubernetesAPIDouble.statusBody(401, reason: "Unauthorized", message: "Unauthorized"))
            }
        }
        if let mode = cluster.neuvector, let webhook = neuvectorWebhook(request, rest, query: query, cluster: cluster, mode: mode) {
            return webhook
        }
        return route(request, rest, query: query, cluster: cluster)
    }

    static let webhookName = "neuvector-validating-crd-webhook.neuvector.svc"

    static func denied(_ message: String) -> Answer {
        json(400, statusBody(400, reason: "BadRequest", message: "admission webhook \"\(webhookName)\" denied the request: \(message)"))
    }

    /// NeuVector's webhook on a write to one of its kinds; nil for everything else (reads, other paths).
    func neuvectorWebhook(_ request: Request, _ rest: [String], query: String, cluster: VirtualCluster, mode: NeuVectorMode) -> Answer? {
        guard request.method == .PATCH || request.method == .DELETE || request.method == .POST || request.method == .PUT,
              rest.count >= 4, rest[0] == "apis", rest[1] == "neuvector.com",
              let kind = ObjectKind.allCases.first(where: { $0.plural == (rest.count >= 7 ? rest[5] : rest[3]) }),
              let name = (rest.count >= 7 ? rest[6] : (rest.count >= 5 ? rest[4] : nil))?.removingPercentEncoding else { return nil }
        let namespace = rest.count >= 7 ? rest[4] : ""
        let identity = ObjectIdentity(kind: kind, namespace: namespace, name: name)
        let exists = cluster.objects[identity] != nil
        let operation = request.method == .DELETE ? "DELETE" : (exists ? "UPDATE" : "CREATE")
        let parameters = KubernetesAPIDouble.query(query)
        if let dryRun = parameters["dryRun"], !dryRun.isEmpty {
            return KubernetesAPIDouble.denied(" \(operation) denied in dry-run")
        }
        if request.body.count > mode.maxBytes {
            return KubernetesAPIDouble.denied(" \(operation) denied: CRD resource size(\(request.body.count)) is too big")
        }
        if operation == "CREATE" {
            let allowed: [String]
            switch kind {
            case .admissionControl: allowed = ["fed", "local"]
            case .vulnerabilityProfile, .complianceProfile: allowed = ["default"]
            default: allowed = []
            }
            if !allowed.isEmpty && !allowed.contains(name) {
                return KubernetesAPIDouble.denied(" \(operation) denied: CRD resource metadata name(\(name)) is not allowed")
            }
        }
        let delay = TimeAmount.nanoseconds(Int64(mode.admissionLatency * 1e9))
        guard cluster.queued < mode.queueCapacity else {
            cluster.queueDenials += 1
            return .deferred(delay: delay) { KubernetesAPIDouble.denied(" \(operation) denied: too many requests received") }
        }
        cluster.queued += 1
        var admitted = request
        if !mode.prunedFields.isEmpty, let body = try? JSONReader.parse(request.body) {
            admitted.body = JSONWriter.compactBytes(mode.prunedFields.reduce(body) { KubernetesAPIDouble.removing($1.split(separator: ".").map(String.init), from: $0) })
        }
        let parts = rest
        let pruned = admitted
        return .deferred(delay: delay) { [self] in
            lock.lock()
            cluster.queued -= 1
            let answer = route(pruned, parts, query: query, cluster: cluster)
            let admitted = request.method == .PATCH && { if case .response(let status, _, _, _) = answer { return status == 200 || status == 201 }
                                                          return false }()
            if admitted { cluster.unjudged.append(identity) }
            lock.unlock()
            if admitted {
                judgeQueue.asyncAfter(deadline: .now() + mode.judgeDelay) { [self] in judge(identity, cluster: cluster, mode: mode) }
            }
            return answer
        }
    }

    /// Runs NeuVector's importer now on the objects admitted and not judged yet (what its queue does later).
    public func judgeNow(cluster name: String) {
        lock.lock()
        let cluster = virtual(name)
        let identities = cluster.unjudged
        let mode = cluster.neuvector
        lock.unlock()
        guard let mode else { return }
        for identity in identities { judge(identity, cluster: cluster, mode: mode) }
    }

    /// NeuVector's importer on an admitted object: rejected ones are deleted, as `deleteCrInK8s` does.
    func judge(_ identity: ObjectIdentity, cluster: VirtualCluster, mode: NeuVectorMode) {
        lock.lock()
        defer { lock.unlock() }
        guard let index = cluster.unjudged.firstIndex(of: identity) else { return }
        cluster.unjudged.remove(at: index)
        guard let stored = cluster.objects[identity] else { return }
        var others: [ObjectIdentity: Value] = [:]
        for (other, value) in cluster.objects where other != identity { others[other] = value.value }
        if let reason = mode.reject(stored.value, others) {
            cluster.objects[identity] = nil
            resourceVersion += 1
            changed(identity, from: stored, to: nil, cluster: cluster)
            cluster.removed.append((identity, reason))
        }
    }

    /// `value` without the field at `path`.
    public static func removing(_ path: [String], from value: Value) -> Value {
        guard let first = path.first, case .map(var entries) = value else { return value }
        guard let index = entries.firstIndex(where: { $0.key == first }) else { return value }
        if path.count == 1 {
            entries.remove(at: index)
        } else {
            entries[index].value = removing(Array(path.dropFirst()), from: entries[index].value)
        }
        return .map(entries)
    }

    func route(_ request: Request, _ parts: [String], query: String, cluster: VirtualCluster) -> Answer {
        let crd = cluster.fault != .crdMissing
        switch (request.method, parts) {
        case (.GET, ["api"]):
            return KubernetesAPIDouble.json(200, .map([Value.MapEntry("kind", .string("APIVersions")),
                                                       Value.MapEntry("versions", .list([.string("v1")]))]))
        case (.GET, ["apis"]):
            var groups: [Value] = []
            if crd { groups.append(KubernetesAPIDouble.apiGroup("neuvector.com")) }
            groups.append(KubernetesAPIDouble.apiGroup("apiextensions.k8s.io"))
            return KubernetesAPIDouble.json(200, .map([Value.MapEntry("kind", .string("APIGroupList")),
                                                       Value.MapEntry("apiVersion", .string("v1")),
                                                       Value.MapEntry("groups", .list(groups))]))
        case (.GET, ["api", "v1"]):
            return KubernetesAPIDouble.json(200, KubernetesAPIDouble.resourceList("v1", [
                ("namespaces", "namespace", false, "Namespace"),
            ]))
        case (.GET, ["apis", "apiextensions.k8s.io", "v1"]):
            return KubernetesAPIDouble.json(200, KubernetesAPIDouble.resourceList("apiextensions.k8s.io/v1", [
                ("customresourcedefinitions", "customresourcedefinition", false, "CustomResourceDefinition"),
            ]))
        case (.GET, ["apis", "neuvector.com", "v1"]):
            guard crd else { return KubernetesAPIDouble.notFoundText }
            let served = ObjectKind.allCases.filter { cluster.served.contains($0) }
            return KubernetesAPIDouble.json(200, KubernetesAPIDouble.resourceList("neuvector.com/v1", served.map { kind in
                (kind.plural, kind.rawValue.lowercased(), kind.isNamespaced, kind.rawValue)
            }))
        default: break
        }
        guard parts.count >= 4, parts[0] == "apis", parts[1] == "neuvector.com", parts[2] == "v1", crd else {
            return KubernetesAPIDouble.notFoundText
        }
        var rest = Array(parts.dropFirst(3))
        var namespace: String?
        if rest.first == "namespaces", rest.count >= 3 {
            namespace = rest[1]
            rest = Array(rest.dropFirst(2))
        }
        guard let plural = rest.first, let kind = ObjectKind.allCases.first(where: { $0.plural == plural }),
              cluster.served.contains(kind) else {
            return KubernetesAPIDouble.notFoundText
        }
        if !kind.isNamespaced && namespace != nil { return KubernetesAPIDouble.notFoundText }
        let name = rest.count >= 2 ? rest[1].removingPercentEncoding : nil
        if kind.isNamespaced && name != nil && namespace == nil { return KubernetesAPIDouble.notFoundText }
        let parameters = KubernetesAPIDouble.query(query)
        switch (request.method, name) {
        case (.GET, nil) where parameters["watch"] == "1" || parameters["watch"] == "true":
            return watch(kind: kind, namespace: namespace, parameters: parameters, cluster: cluster,
                         agent: request.headers.first(name: "user-agent") ?? "")
        case (.GET, nil):
            return list(kind: kind, namespace: namespace, selector: parameters["labelSelector"], cluster: cluster,
                        table: request.headers.first(name: "Accept")?.contains("as=Table") ?? false,
                        limit: parameters["limit"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil },
                        continueToken: parameters["continue"]?.removingPercentEncoding)
        case (.GET, let name?):
            let identity = ObjectIdentity(kind: kind, namespace: namespace ?? "", name: name)
            guard let stored = cluster.objects[identity] else { return notFound(kind, name) }
            return .response(status: 200, contentType: "application/json", body: stored.json, headers: [])
        case (.PATCH, let name?):
            if cluster.fault == .forbidden { return forbidden(kind, name, namespace: namespace, verb: "patch") }
            return apply(request, kind: kind, namespace: namespace, name: name, parameters: parameters, cluster: cluster)
        case (.DELETE, let name?):
            if cluster.fault == .forbidden { return forbidden(kind, name, namespace: namespace, verb: "delete") }
            let identity = ObjectIdentity(kind: kind, namespace: namespace ?? "", name: name)
            guard let removed = cluster.objects.removeValue(forKey: identity) else { return notFound(kind, name) }
            resourceVersion += 1
            changed(identity, from: removed, to: nil, cluster: cluster)
            return KubernetesAPIDouble.json(200, KubernetesAPIDouble.statusBody(200, reason: "", message: "", details: .map([
                Value.MapEntry("name", .string(name)), Value.MapEntry("group", .string("neuvector.com")),
                Value.MapEntry("kind", .string(kind.plural)),
                Value.MapEntry("uid", removed.value["metadata"]?["uid"] ?? .string("")),
            ])))
        default:
            return KubernetesAPIDouble.json(405, KubernetesAPIDouble.statusBody(405, reason: "MethodNotAllowed",
                                                                                message: "the server does not allow this method on the requested resource"))
        }
    }

    /// Whether path parts (after `/clusters/<name>`) ask for a list of a NeuVector rule kind.
    static func isList(_ parts: [String]) -> Bool {
        guard parts.count >= 4, parts[0] == "apis", parts[1] == "neuvector.com", let last = parts.last else { return false }
        return ObjectKind.allCases.contains { $0.plural == last } && (parts.count == 4 || parts.count == 6)
    }

    /// A list of `count` generated managed objects, made 1,000 at a time as the client reads.
    /// `count` generated objects, then the objects the cluster really holds (`then`, their JSON).
    static func flood(count: Int, kind: ObjectKind, then held: [[UInt8]] = []) -> Answer {
        let batch = 1000
        return .stream(status: 200, headers: [], interval: nil) { index in
            if index == 0 { return Array("{\"apiVersion\":\"neuvector.com/v1\",\"kind\":\"\(kind.rawValue)List\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[".utf8) }
            let batches = (count + batch - 1) / batch
            if index == batches + 1 {
                var tail: [UInt8] = []
                for (n, json) in held.enumerated() {
                    if n > 0 || count > 0 { tail.append(UInt8(ascii: ",")) }
                    tail += json
                }
                return tail + Array("]}".utf8)
            }
            if index > batches + 1 { return nil }
            let first = (index - 1) * batch
            var text = ""
            for n in first..<min(count, first + batch) {
                let namespace = kind == .securityRule ? ",\"namespace\":\"flood\"" : ""
                text += (n == 0 ? "" : ",") + "{\"apiVersion\":\"neuvector.com/v1\",\"kind\":\"\(kind.rawValue)\",\"metadata\":{\"name\":\"flood-\(n)\"\(namespace),\"labels\":{\"app.kubernetes.io/managed-by\":\"policyhub\"}},\"spec\":{\"target\":{\"selector\":{\"name\":\"flood-\(n)\"}}}}"
            }
            return Array(text.utf8)
        }
    }

    func notFound(_ kind: ObjectKind, _ name: String) -> Answer {
        KubernetesAPIDouble.json(404, KubernetesAPIDouble.statusBody(
            404, reason: "NotFound", message: "\(kind.plural).neuvector.com \"\(name)\" not found",
            details: .map([Value.MapEntry("name", .string(name)), Value.MapEntry("group", .string("neuvector.com")),
                           Value.MapEntry("kind", .string(kind.plural))])))
    }

    func forbidden(_ kind: ObjectKind, _ name: String, namespace: String?, verb: String) -> Answer {
        let scope = namespace.map { " in the namespace \"\($0)\"" } ?? " at the cluster scope"
        return KubernetesAPIDouble.json(403, KubernetesAPIDouble.statusBody(
            403, reason: "Forbidden",
            message: "\(kind.plural).neuvector.com \"\(name)\" is forbidden: User \"system:serviceaccount:policyhub:hub\" cannot \(verb) resource \"\(kind.plural)\" in API group \"neuvector.com\"\(scope)",
            details: .map([Value.MapEntry("name", .string(name)), Value.MapEntry("group", .string("neuvector.com")),
                           Value.MapEntry("kind", .string(kind.plural))])))
    }

    /// A list, paged as the API server pages it when `limit` is given: `metadata.continue` names where the
    /// next page starts and `remainingItemCount` how many are left.
    func list(kind: ObjectKind, namespace: String?, selector: String?, cluster: VirtualCluster, table: Bool,
              limit: Int? = nil, continueToken: String? = nil) -> Answer {
        let wanted = selector.flatMap { try? LabelSelector.parse($0) } ?? .everything
        let everything = cluster.objects.filter { identity, stored in
            guard identity.kind == kind, namespace == nil || identity.namespace == namespace else { return false }
            var labels: [String: String] = [:]
            if case .map(let entries)? = stored.value["metadata"]?["labels"] {
                for entry in entries { labels[entry.key] = entry.value.stringValue }
            }
            return wanted.matches(labels)
        }.sorted { $0.key < $1.key }.map(\.value)
        var start = 0
        if let continueToken {
            guard continueToken.hasPrefix("page-"), let offset = Int(continueToken.dropFirst(5)), offset >= 0 else {
                return KubernetesAPIDouble.json(400, KubernetesAPIDouble.statusBody(400, reason: "BadRequest", message: "continue key is not valid"))
            }
            start = min(offset, everything.count)
        }
        let end = limit.map { min(everything.count, start + $0) } ?? everything.count
        let stored = Array(everything[start..<end])
        let items = stored.map(\.value)
        var listMeta = [Value.MapEntry("resourceVersion", .string(String(resourceVersion)))]
        if end < everything.count {
            listMeta.append(Value.MapEntry("continue", .string("page-\(end)")))
            listMeta.append(Value.MapEntry("remainingItemCount", .int(everything.count - end)))
        }
        let metadata = Value.map(listMeta)
        if table {
            let rows: [Value] = items.map { item in
                .map([Value.MapEntry("cells", .list([item["metadata"]?["name"] ?? .string(""), .string("1m")])),
                      Value.MapEntry("object", .map([Value.MapEntry("kind", .string("PartialObjectMetadata")),
                                                     Value.MapEntry("apiVersion", .string("meta.k8s.io/v1")),
                                                     Value.MapEntry("metadata", item["metadata"] ?? .map([]))]))])
            }
            let columns: [Value] = ["Name", "Age"].map { name in
                .map([Value.MapEntry("name", .string(name)), Value.MapEntry("type", .string(name == "Age" ? "date" : "string")),
                      Value.MapEntry("format", .string(name == "Name" ? "name" : "")), Value.MapEntry("description", .string("")),
                      Value.MapEntry("priority", .int(0))])
            }
            return KubernetesAPIDouble.json(200, .map([
                Value.MapEntry("kind", .string("Table")), Value.MapEntry("apiVersion", .string("meta.k8s.io/v1")),
                Value.MapEntry("metadata", metadata), Value.MapEntry("columnDefinitions", .list(columns)),
                Value.MapEntry("rows", .list(rows)),
            ]))
        }
        // the list's envelope around the items' stored JSON
        var body = JSONWriter.compactBytes(.map([
            Value.MapEntry("apiVersion", .string("neuvector.com/v1")), Value.MapEntry("kind", .string(kind.rawValue + "List")),
            Value.MapEntry("metadata", metadata), Value.MapEntry("items", .list([])),
        ]))
        body.removeLast(2)  // "]}"
        for (index, item) in stored.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body += item.json
        }
        body += Array("]}".utf8)
        return .response(status: 200, contentType: "application/json", body: body, headers: [])
    }

    func apply(_ request: Request, kind: ObjectKind, namespace: String?, name: String, parameters: [String: String],
               cluster: VirtualCluster) -> Answer {
        guard request.headers.first(name: "Content-Type")?.hasPrefix("application/apply-patch+yaml") == true else {
            return KubernetesAPIDouble.json(415, KubernetesAPIDouble.statusBody(415, reason: "UnsupportedMediaType",
                                                                                message: "the body of the request was in an unknown format"))
        }
        guard let manager = parameters["fieldManager"], !manager.isEmpty else {
            return KubernetesAPIDouble.json(422, KubernetesAPIDouble.statusBody(
                422, reason: "Invalid",
                message: "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"))
        }
        if cluster.fault == .conflict {
            return KubernetesAPIDouble.json(409, KubernetesAPIDouble.statusBody(
                409, reason: "Conflict", message: "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using neuvector.com/v1: .spec.target.policymode"))
        }
        // JSON (what kubectl and the hub send) read fast; YAML, which apply also accepts, otherwise
        let parsed = (try? JSONReader.parse(request.body))
            ?? { if case .success(let nodes) = YAMLParser.parseDocuments(request.body, file: "body") { return nodes.first?.value }
                 return nil }()
        guard let body = parsed, case .map = body else {
            return KubernetesAPIDouble.json(400, KubernetesAPIDouble.statusBody(400, reason: "BadRequest",
                                                                                message: "error decoding patch: invalid JSON"))
        }
        let identity = ObjectIdentity(kind: kind, namespace: namespace ?? "", name: name)
        guard KubernetesAPIDouble.identity(of: body) == identity else {
            return KubernetesAPIDouble.json(400, KubernetesAPIDouble.statusBody(
                400, reason: "BadRequest", message: "the name or namespace of the object does not match the request"))
        }
        let existing = cluster.objects[identity]
        let applied = KubernetesAPIDouble.withoutServerFields(body)
        if let existing, existing.comparable == applied {
            // unchanged: same resourceVersion
            return .response(status: 200, contentType: "application/json", body: existing.json, headers: [])
        }
        resourceVersion += 1
        cluster.uidCounter += 1
        let uid = existing?.value["metadata"]?["uid"]?.stringValue ?? "00000000-0000-4000-8000-\(String(format: "%012d", cluster.uidCounter))"
        let generation = (existing?.value["metadata"]?["generation"].flatMap { value -> Int? in
            if case .int(let n) = value { return n }
            return nil
        } ?? 0) + (existing == nil || existing?.value["spec"] != applied["spec"] ? 1 : 0)
        // the object as applied (canonical, without the server's fields) with the server's fields: only the
        // metadata mapping is sorted again
        var meta: [Value.MapEntry] = []
        if case .map(let given)? = applied["metadata"] { meta = given }
        meta.append(Value.MapEntry("uid", .string(uid)))
        meta.append(Value.MapEntry("resourceVersion", .string(String(resourceVersion))))
        meta.append(Value.MapEntry("generation", .int(generation)))
        meta.append(Value.MapEntry("creationTimestamp", existing?.value["metadata"]?["creationTimestamp"] ?? .string("2026-11-27T00:00:00Z")))
        meta.append(Value.MapEntry("managedFields", Value.list([.map([
            Value.MapEntry("manager", .string(manager)), Value.MapEntry("operation", .string("Apply")),
            Value.MapEntry("apiVersion", .string("neuvector.com/v1")), Value.MapEntry("fieldsType", .string("FieldsV1")),
        ])]).canonical))
        meta.sort { $0.key < $1.key }
        var object = applied
        if case .map(var entries) = object {
            entries.removeAll { $0.key == "metadata" }
            entries.append(Value.MapEntry("metadata", .map(meta)))
            entries.sort { $0.key < $1.key }
            object = .map(entries)
        }
        // the server's fields are what `applied` lacks: it is the stored object's comparable form
        let stored = Stored(value: object, resourceVersion: resourceVersion, comparable: applied)
        cluster.objects[identity] = stored
        changed(identity, from: existing, to: stored, cluster: cluster)
        let answer = cluster.fault == .bareApplyAnswers ? Array("{\"kind\":\"\(kind.rawValue)\"}".utf8) : stored.json
        return .response(status: existing == nil ? 201 : 200, contentType: "application/json", body: answer, headers: [])
    }

    /// An object less what the server adds, for "did this apply change anything".
    static func withoutServerFields(_ value: Value) -> Value {
        guard case .map(var entries) = value else { return value }
        if let index = entries.firstIndex(where: { $0.key == "metadata" }), case .map(let meta) = entries[index].value {
            let server: Set<String> = ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"]
            entries[index].value = .map(meta.filter { !server.contains($0.key) })
        }
        return Value.map(entries).canonical
    }

    static func apiGroup(_ name: String) -> Value {
        let version = Value.map([Value.MapEntry("groupVersion", .string("\(name)/v1")), Value.MapEntry("version", .string("v1"))])
        return .map([Value.MapEntry("name", .string(name)), Value.MapEntry("versions", .list([version])),
                     Value.MapEntry("preferredVersion", version)])
    }

    static func resourceList(_ groupVersion: String, _ resources: [(String, String, Bool, String)]) -> Value {
        .map([
            Value.MapEntry("kind", .string("APIResourceList")), Value.MapEntry("apiVersion", .string("v1")),
            Value.MapEntry("groupVersion", .string(groupVersion)),
            Value.MapEntry("resources", .list(resources.map { name, singular, namespaced, kind in
                .map([Value.MapEntry("name", .string(name)), Value.MapEntry("singularName", .string(singular)),
                      Value.MapEntry("namespaced", .bool(namespaced)), Value.MapEntry("kind", .string(kind)),
                      Value.MapEntry("verbs", .list(["delete", "deletecollection", "get", "list", "patch", "create", "update",
                                                     "watch"].map(Value.string))),
                      Value.MapEntry("storageVersionHash", .string("double00000="))])
            })),
        ])
    }

    static func query(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            // most queries have nothing encoded: Foundation's decoding only where there is something to decode
            func decoded(_ text: String) -> String {
                guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return text }
                return text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? text
            }
            out[decoded(parts[0])] = parts.count > 1 ? decoded(parts[1]) : ""
        }
        return out
    }
}

/// Records the errors that reach the end of an HTTP/2 connection's pipeline (the double's own diagnostics).
final class ConnectionErrors: ChannelInboundHandler, Sendable {
    typealias InboundIn = Any
    let double: KubernetesAPIDouble

    init(double: KubernetesAPIDouble) { self.double = double }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        double.noteConnectionError(error)
        context.fireErrorCaught(error)
    }
}

/// Ends an HTTP/2 answer on its last DATA frame, as a Go server does, rather than on an empty DATA frame of its
/// own: libcurl 7.88 takes an answer whose body is complete as done, and resets a stream that is not closed yet;
/// hundreds of those resets make NIO close the connection as a "rapid reset" attack.
final class EndStreamOnLastData: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// A DATA frame without END_STREAM, held until the next write says whether it was the last.
    private var held: (data: HTTP2Frame.FramePayload.Data, promise: EventLoopPromise<Void>?)?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let payload = unwrapOutboundIn(data)
        if case .data(var next) = payload, let (last, lastPromise) = held, next.endStream,
           case .byteBuffer(let empty) = next.data, empty.readableBytes == 0 {
            held = nil
            next = last
            next.endStream = true
            if let lastPromise { promise?.futureResult.cascade(to: lastPromise) }
            context.write(wrapOutboundOut(.data(next)), promise: promise ?? lastPromise)
            return
        }
        release(context: context)
        if case .data(let frame) = payload, !frame.endStream, case .byteBuffer = frame.data {
            held = (frame, promise)
            return
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        release(context: context)
        context.flush()
    }

    private func release(context: ChannelHandlerContext) {
        guard let (frame, promise) = held else { return }
        held = nil
        context.write(wrapOutboundOut(.data(frame)), promise: promise)
    }
}

/// One connection's HTTP/1.1 exchange with the double.
final class DoubleHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let double: KubernetesAPIDouble
    let tls: Bool
    /// Serving one HTTP/2 stream (its channel's parent is the connection) rather than an HTTP/1.1 connection.
    let http2: Bool
    var head: HTTPRequestHead?
    var body: [UInt8] = []

    init(double: KubernetesAPIDouble, tls: Bool, http2: Bool = false) {
        self.double = double
        self.tls = tls
        self.http2 = http2
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = []
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else { return }
            var clientCertificate = false
            // TLS is the connection's: an HTTP/2 stream's channel has it on its parent
            let connection = http2 ? (context.channel.parent ?? context.channel) : context.channel
            if http2 { double.countHTTP2Request() }
            if tls, let handler = try? connection.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self) {
                clientCertificate = handler.peerCertificate != nil
            }
            let answer = double.answer(KubernetesAPIDouble.Request(method: head.method, uri: head.uri, headers: head.headers,
                                                                   body: body, clientCertificate: clientCertificate))
            respond(context: context, answer, keepAlive: head.isKeepAlive)
        }
    }

    func respond(context: ChannelHandlerContext, _ answer: KubernetesAPIDouble.Answer, keepAlive: Bool) {
        switch answer {
        case .deferred(let delay, let produce):
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: delay) {
                guard bound.value.channel.isActive else { return }
                handler.value.respond(context: bound.value, produce(), keepAlive: keepAlive)
            }
        case .watch(let watcher):
            serve(watcher, context: context)
        case .close:
            context.close(promise: nil)
        case .hang:
            return
        case .dropAfterHead(let status, let bytes):
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: "1000")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status),
                                                                 headers: headers))), promise: nil)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))))
                .whenComplete { _ in bound.value.close(promise: nil) }
        case .stream(let status, let extra, let interval, let chunk):
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            for (name, value) in extra { headers.add(name: name, value: value) }
            if !headers.contains(name: "Content-Length") { headers.add(name: "Transfer-Encoding", value: "chunked") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status),
                                                                 headers: headers))), promise: nil)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            @Sendable func send(_ index: Int) {
                let context = bound.value
                guard context.channel.isActive else { return }
                guard let bytes = chunk(index) else {
                    context.writeAndFlush(handler.value.wrapOutboundOut(.end(nil)), promise: nil)
                    return
                }
                let part = handler.value.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes))))
                context.writeAndFlush(part).whenComplete { result in
                    guard case .success = result else { return }  // the client went away: stop
                    // a later turn of the loop (never recursion), paced so that one endless answer cannot keep
                    // the double's event loop from its other connections
                    context.eventLoop.scheduleTask(in: interval ?? .milliseconds(1)) { send(index + 1) }
                }
            }
            send(0)
        case .response(let status, let contentType, let bytes, let extra):
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: String(bytes.count))
            headers.add(name: "Audit-Id", value: UUID().uuidString.lowercased())
            for (name, value) in extra { headers.add(name: name, value: value) }
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status),
                                                                 headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { bound.value.close(promise: nil) }
            }
        }
    }
}
