import Foundation
import HubTransport
import PolicyCore
import PolicyYAML

/// A Kubernetes cluster running NeuVector: one server-side apply per object (`fieldManager=policyhub`,
/// `force=true`), then managed objects no longer desired are deleted. Errors name the cluster, the
/// object and carry the server's own `metav1.Status` message.
public struct KubernetesMember: Member {
    public let cluster: String
    public let endpoint: KubernetesEndpoint
    public let transport: any HTTPTransport
    /// When this member's work must be over, retries included (seconds since 1970); nil: no overall bound.
    public var deadline: Double?
    /// The most managed objects one push deletes; more is refused until a person raises the bound.
    public var maxDeletions: Int
    /// What the operator allows an exec credential plugin (the endpoint's, when it has one).
    public var exec: ExecSettings
    /// Where plugin credentials are kept until they expire (one per process).
    public var credentials: ExecCredentialCache
    /// Where the member notes the retries it schedules itself (NeuVector's queue-full denial), for progress.
    public var activity: ActivityBoard?

    public static let fieldManager = "policyhub"
    static let selector = "app.kubernetes.io%2Fmanaged-by%3Dpolicyhub"
    /// Deletions sent at once.
    static let deletionsInFlight = 8
    /// The default of `maxDeletions`.
    public static let defaultMaxDeletions = 100

    public init(cluster: String, endpoint: KubernetesEndpoint, transport: any HTTPTransport, deadline: Double? = nil,
                maxDeletions: Int = KubernetesMember.defaultMaxDeletions, exec: ExecSettings = ExecSettings(),
                credentials: ExecCredentialCache = .shared, settle: Double = KubernetesMember.defaultSettle,
                activity: ActivityBoard? = nil) {
        self.activity = activity
        self.settle = settle
        self.cluster = cluster
        self.endpoint = endpoint
        self.transport = transport
        self.deadline = deadline
        self.maxDeletions = maxDeletions
        self.exec = exec
        self.credentials = credentials
    }

    func request(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String? = nil) -> HTTPRequest {
        var headers = [HTTPHeader("Accept", "application/json")] + endpoint.headers
        if let token = endpoint.token, endpoint.exec == nil { headers.append(HTTPHeader("Authorization", "Bearer \(token)")) }
        if let contentType { headers.append(HTTPHeader("Content-Type", contentType)) }
        return HTTPRequest(method: method, url: endpoint.server + path, headers: headers, body: body, deadline: deadline, tag: cluster)
    }

    /// The error for a response that is not a success: the server's Status message when it sent one.
    func failure(_ response: HTTPResponse, object: ObjectIdentity?, doing what: String) -> MemberError {
        var message = "HTTP \(response.status)"
        if let status = try? JSONReader.parse(response.body), status["kind"]?.stringValue == "Status" {
            if let reason = status["reason"]?.stringValue, !reason.isEmpty { message += " \(reason)" }
            if let text = status["message"]?.stringValue { message += ": \(text)" }
        } else if !response.body.isEmpty {
            message += ": \(response.bodyText.trimmingCharacters(in: .whitespacesAndNewlines).prefix(200))"
        }
        return MemberError(cluster: cluster, object: object, message: "\(what): \(message)")
    }

    func send(_ request: HTTPRequest, object: ObjectIdentity? = nil, doing what: String) async throws(MemberError) -> HTTPResponse {
        guard let plugin = endpoint.exec else { return try await transfer(request, tls: endpoint.tls, object: object, doing: what) }
        // an exec plugin's credential: cached until it expires; a 401 runs the plugin once more and retries once
        var credential = try await credentials.credential(for: plugin, server: endpoint.server, cluster: cluster, settings: exec)
        var response = try await transfer(authorized(request, credential), tls: tls(credential), object: object, doing: what)
        if response.status == 401 {
            credential = try await credentials.credential(for: plugin, server: endpoint.server, cluster: cluster, settings: exec,
                                                          rejected: credential)
            response = try await transfer(authorized(request, credential), tls: tls(credential), object: object, doing: what)
        }
        return response
    }

    func transfer(_ request: HTTPRequest, tls: TLSSettings, object: ObjectIdentity?, doing what: String) async throws(MemberError) -> HTTPResponse {
        switch await transport.send(request, tls: tls) {
        case .success(let response): return response
        case .failure(let error): throw MemberError(cluster: cluster, object: object, message: "\(what): \(error)")
        }
    }

    /// The request with a plugin's token (a certificate answer goes in the TLS settings instead).
    func authorized(_ request: HTTPRequest, _ credential: ExecCredential) -> HTTPRequest {
        var out = request
        if let token = credential.token { out.headers.append(HTTPHeader("Authorization", "Bearer \(token)")) }
        return out
    }

    func tls(_ credential: ExecCredential) -> TLSSettings {
        var settings = endpoint.tls
        if let certificate = credential.clientCertificatePEM, let key = credential.clientKeyPEM {
            settings.clientCertificatePEM = certificate
            settings.clientKeyPEM = key
            settings.clientCertificateFile = nil
            settings.clientKeyFile = nil
        }
        return settings
    }

    /// Checks once that the NeuVector CRDs of every kind in `kinds` (and of the two rule kinds) are served,
    /// naming every one that is missing.
    public func checkCRDs(for kinds: Set<ObjectKind> = []) async throws(MemberError) {
        let response = try await send(request("GET", "/apis/neuvector.com/v1"), doing: "discovery")
        if response.status == 404 {
            throw MemberError(cluster: cluster, message: "the NeuVector CRDs are not served (GET /apis/neuvector.com/v1 answered 404 \(response.bodyText.trimmingCharacters(in: .whitespacesAndNewlines))); install NeuVector or its CRD chart first")
        }
        guard response.status == 200 else { throw failure(response, object: nil, doing: "discovery") }
        let served = KubernetesMember.servedKinds(discovery: response.body)
        let needed = kinds.union([.securityRule, .clusterSecurityRule])
        let missing = ObjectKind.allCases.filter { needed.contains($0) && !served.contains($0) }
        guard missing.isEmpty else {
            let names = missing.map { "\($0.plural).neuvector.com (\($0.rawValue))" }.joined(separator: ", ")
            throw MemberError(cluster: cluster, message: "the server does not serve the CRD\(missing.count == 1 ? "" : "s") \(names), which this cluster's policy uses; install or upgrade NeuVector's CRD chart on it, then apply again")
        }
    }

    /// The kinds a discovery answer (`APIResourceList` of neuvector.com/v1) lists.
    static func servedKinds(discovery body: [UInt8]) -> Set<ObjectKind> {
        guard let value = try? JSONReader.parse(body), case .list(let resources)? = value["resources"] else { return [] }
        var out: Set<ObjectKind> = []
        for resource in resources {
            guard let name = resource["name"]?.stringValue, let kind = ObjectKind.allCases.first(where: { $0.plural == name }) else { continue }
            out.insert(kind)
        }
        return out
    }

    /// The API path of one object, every segment percent-encoded (names never become path structure).
    public static func path(_ identity: ObjectIdentity) -> String {
        let name = RequestURL.segment(identity.name)
        if identity.kind.isNamespaced {
            return "/apis/neuvector.com/v1/namespaces/\(RequestURL.segment(identity.namespace))/\(identity.kind.plural)/\(name)"
        }
        return "/apis/neuvector.com/v1/\(identity.kind.plural)/\(name)"
    }

    /// Server-side applies in flight to one cluster at once: well below NeuVector's admission queue of 128
    /// (`crdReqMgr.init(128)`), which denies what does not fit.
    public static let appliesInFlight = 16
    /// Retries of NeuVector's "too many requests received" denial, with doubling backoff from `retryBase`.
    static let queueRetries = 6
    static let retryBase = 0.25

    /// Sends what differs and deletes what is no longer desired, then confirms that NeuVector kept it. Without
    /// a trusted record the managed objects are listed first and compared. The CRD check runs beside the
    /// applies; its verdict is reported before any apply error, and deletions come last.
    public func push(_ push: PushRequest) async throws(MemberError) -> PushOutcome {
        // the CRD check, unless the store's record shows objects of every kind this push sends already held there
        let heldKinds = Set(push.previous?.keys.map(\.kind) ?? [])
        let sentKinds = Set(push.objects.map(\.identity.kind))
        let needsDiscovery = push.previous == nil || !sentKinds.isSubset(of: heldKinds)
        async let discovery: Result<Void, MemberError> = { () async -> Result<Void, MemberError> in
            guard needsDiscovery else { return .success(()) }
            do throws(MemberError) {
                try await checkCRDs(for: sentKinds)
                return .success(())
            } catch {
                return .failure(error)
            }
        }()
        var outcome = PushOutcome()
        var live: [ObjectIdentity: Value]?
        if push.previous == nil {
            do throws(MemberError) {
                let held = try await managedListing()
                outcome.refused = held.refused.map(\.description)
                live = held.objects
            } catch {
                // the CRD check's verdict names the cause better than a failed list
                if case .failure(let missing) = await discovery { throw missing }
                throw error
            }
        }
        let changes = push.changes(live: live)
        outcome.unchanged = changes.kept.count
        let results = await apply(changes.send)
        if case .failure(let error) = await discovery { throw error }
        var answered: [ObjectIdentity: Value] = [:]
        for (identity, result) in results {
            switch result {
            case .success(let applied):
                if applied.status == 201 { outcome.created.append(identity) } else { outcome.updated.append(identity) }
                answered[identity] = applied.held
            case .failure(let error): throw error
            }
        }
        if changes.delete.count > maxDeletions {
            throw MemberError(cluster: cluster, message: "\(changes.delete.count) objects labelled as managed by the hub are no longer desired, more than the \(maxDeletions) one push may delete; nothing was deleted (the rest was applied). Check what created them, then confirm with --max-deletions \(changes.delete.count)")
        }
        outcome.deleted = try await delete(changes.delete)
        try await confirm(changes.send.map(\.object), answered: answered, settling: push.settling)
        outcome.applied = changes.applied(sent: changes.send, revision: push.revision)
        outcome.recordChanges = changes.recordChanges(sent: changes.send, revision: push.revision)
        return outcome
    }

    /// What the API server answered to one server-side apply: 201 created or 200 updated, and, when the
    /// push reads back at once (no settle time), the object as the answer says it is now stored.
    struct Applied: Sendable {
        var status: Int
        var held: Value?
    }

    /// Server-side applies of `objects`, `appliesInFlight` at once, each retried while NeuVector's webhook
    /// denies it for a full queue; what each was answered, or its error, by identity.
    func apply(_ objects: [(object: RenderedObject, hash: String)]) async -> [(ObjectIdentity, Result<Applied, MemberError>)] {
        await withTaskGroup(of: (ObjectIdentity, Result<Applied, MemberError>).self) { group in
            var pending = objects[...]
            func startNext() {
                guard let (object, hash) = pending.popFirst() else { return }
                group.addTask { (object.identity, await self.apply(object, body: EncodedObjects.shared.bytes(of: object, hash: hash, format: .json))) }
            }
            for _ in 0..<KubernetesMember.appliesInFlight { startNext() }
            var out: [(ObjectIdentity, Result<Applied, MemberError>)] = []
            while let result = await group.next() {
                out.append(result)
                startNext()
            }
            return out.sorted { $0.0 < $1.0 }
        }
    }

    func apply(_ object: RenderedObject, body: [UInt8]) async -> Result<Applied, MemberError> {
        let query = "?fieldManager=\(KubernetesMember.fieldManager)&force=true&fieldValidation=Strict"
        let request = self.request("PATCH", KubernetesMember.path(object.identity) + query, body: body,
                                   contentType: "application/apply-patch+yaml")
        var attempt = 0
        var denial: MemberError?
        while true {
            do throws(MemberError) {
                let response = try await send(request, object: object.identity, doing: "server-side apply")
                if response.status == 200 || response.status == 201 {
                    return .success(Applied(status: response.status, held: settle > 0 ? nil : stored(response, as: object.identity)))
                }
                let error = failure(response, object: object.identity, doing: "server-side apply")
                let delay = KubernetesMember.retryBase * Double(1 << attempt)
                // a retry only when it has time left for its answer after the pause
                guard KubernetesMember.isQueueFull(response), attempt < KubernetesMember.queueRetries,
                      deadline.map({ Date().timeIntervalSince1970 + delay * 1.5 + 0.25 < $0 }) ?? true else {
                    return .failure(error)
                }
                denial = error
                attempt += 1
                activity?.retrying(cluster, attempt: attempt + 1, of: KubernetesMember.queueRetries + 1,
                                   after: "NeuVector's \"too many requests received\"", next: Date().timeIntervalSince1970 + delay)
                try? await Task.sleep(nanoseconds: UInt64(delay * 1e9))
            } catch {
                // a retry after NeuVector's queue-full denial that ran out of time: NeuVector's words say why
                return .failure(denial ?? error)
            }
        }
    }

    /// The object an apply's answer says is stored, when the answer is that object with the hub's label (an
    /// answer that is not, such as a proxy's fixed reply, leaves the read-back to a list or a get).
    func stored(_ response: HTTPResponse, as identity: ObjectIdentity) -> Value? {
        guard let value = try? JSONReader.parse(response.body, sortingKeys: true),
              let name = value["metadata"]?["name"]?.stringValue, name == identity.name,
              (value["metadata"]?["namespace"]?.stringValue ?? "") == identity.namespace,
              value["kind"]?.stringValue == identity.kind.rawValue,
              value["metadata"]?["labels"]?[HubAnnotation.managedByKey]?.stringValue == HubAnnotation.managedByValue
        else { return nil }
        return value
    }

    /// NeuVector's webhook denial when its admission queue is full (controller/rest/crdvalidatewebhook.go:560):
    /// worth retrying after a pause, unlike its other denials.
    static func isQueueFull(_ response: HTTPResponse) -> Bool {
        response.status >= 400 && response.status < 500 && response.bodyText.contains("denied: too many requests received")
    }

    /// How long NeuVector may take, after the last admission answer, to judge what it admitted; then the
    /// applied objects are read back. Zero reads back at once.
    public var settle: Double

    /// The settle time when none is given: `POLICYHUB_SETTLE` (seconds) when set, otherwise 2 s, enough for
    /// NeuVector to judge what its webhook queued.
    public static var defaultSettle: Double {
        ProcessInfo.processInfo.environment["POLICYHUB_SETTLE"].flatMap(Double.init).flatMap { $0 >= 0 ? $0 : nil } ?? 2
    }

    /// Reads back every applied object once NeuVector's queue has settled, one labelled list per kind (one get
    /// for a kind of which only one object was applied: a one-document change reads one object, not the kind):
    /// NeuVector's CRD webhook admits first and judges later, deleting what it rejects (`crdQueueProc` →
    /// `deleteCrInK8s`), so a 201 only says "queued". An object gone or changed fails the push, naming it.
    /// With no settle time the read-back would come at once, so the apply answers (`answered`: the object as
    /// stored, after any pruning) are that read-back; only objects without one are read again.
    func confirm(_ applied: [RenderedObject], answered: [ObjectIdentity: Value] = [:],
                 settling: (@Sendable () -> Void)? = nil) async throws(MemberError) {
        guard !applied.isEmpty else { return }
        if settle > 0 {
            settling?()
            try? await Task.sleep(nanoseconds: UInt64(settle * 1e9))
        }
        var held = settle > 0 ? [:] : answered
        let byKind = Dictionary(grouping: applied.filter { held[$0.identity] == nil }, by: \.identity.kind)
        let single = byKind.values.compactMap { $0.count == 1 ? $0[0].identity : nil }
        async let gotten = readBack(single)
        let kinds = Set(byKind.keys).subtracting(single.map(\.kind))
        for (identity, value) in try await managedListing(of: kinds).objects { held[identity] = value }
        for (identity, value) in try await gotten.get() { held[identity] = value }
        var problems: [String] = []
        var gone: [ObjectIdentity] = []
        for object in applied {
            guard let live = held[object.identity] else {
                gone.append(object.identity)
                continue
            }
            if DriftComparison.sameAsSent(object.value, live) { continue }  // the common case, without building copies
            let changes = ValueDiff.changes(from: DriftComparison.comparable(object.value), to: DriftComparison.comparable(live))
            if !changes.isEmpty {
                problems.append("\(object.identity): changed after admission: \(changes.map { "\($0.path): sent \(ValueDiff.shortText($0.old)), held \(ValueDiff.shortText($0.new))" }.joined(separator: "; ")) (a field the installed NeuVector CRD schema does not know is pruned)")
            }
        }
        if !gone.isEmpty {
            // one explanation for all of them: a cluster whose NeuVector rejects everything gives one readable line
            let what = gone.count == 1 ? "the apply succeeded, then the object was gone" : "each apply succeeded, then the object was gone"
            problems.insert("\(gone.map(\.description).joined(separator: ", ")): rejected by NeuVector after admission: \(what) \(settle) s later (NeuVector's CRD webhook deletes what it cannot import; its reason is in NeuVector's event log as \"CRD ... Removed\")", at: 0)
        }
        guard problems.isEmpty else {
            throw MemberError(cluster: cluster, object: nil, message: problems.joined(separator: "; "))
        }
    }

    /// The objects of `identities` the member still holds with the hub's label, one get each, all at once.
    func readBack(_ identities: [ObjectIdentity]) async -> Result<[ObjectIdentity: Value], MemberError> {
        await withTaskGroup(of: Result<(ObjectIdentity, Value?), MemberError>.self) { group in
            for identity in identities {
                group.addTask {
                    do throws(MemberError) {
                        let response = try await self.send(self.request("GET", KubernetesMember.path(identity)), object: identity, doing: "read back")
                        if response.status == 404 { return .success((identity, nil)) }
                        guard response.status == 200 else { return .failure(self.failure(response, object: identity, doing: "read back")) }
                        guard let value = try? JSONReader.parse(response.body, sortingKeys: true) else {
                            return .failure(MemberError(cluster: self.cluster, object: identity, message: "read back: the answer is not JSON"))
                        }
                        // what a labelled list would not return is not the hub's object any more
                        let managed = value["metadata"]?["labels"]?[HubAnnotation.managedByKey]?.stringValue == HubAnnotation.managedByValue
                        return .success((identity, managed ? value : nil))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var out: [ObjectIdentity: Value] = [:]
            var failure: MemberError?
            for await result in group {
                switch result {
                case .success((let identity, let value?)): out[identity] = value
                case .success: break
                case .failure(let error): failure = failure ?? error
                }
            }
            return failure.map { .failure($0) } ?? .success(out)
        }
    }

    /// Deletes `identities`, a few at once; the first failure (in identity order) is thrown after all finished.
    func delete(_ identities: [ObjectIdentity]) async throws(MemberError) -> [ObjectIdentity] {
        let results = await withTaskGroup(of: (ObjectIdentity, MemberError?).self) { group in
            var pending = identities[...]
            func startNext() {
                guard let identity = pending.popFirst() else { return }
                group.addTask {
                    let delete = self.request("DELETE", KubernetesMember.path(identity),
                                              body: Array("{\"propagationPolicy\":\"Background\"}\n".utf8),
                                              contentType: "application/json")
                    do throws(MemberError) {
                        let response = try await self.send(delete, object: identity, doing: "delete")
                        guard response.status == 200 || response.status == 202 || response.status == 404 else {
                            return (identity, self.failure(response, object: identity, doing: "delete"))
                        }
                        return (identity, nil)
                    } catch {
                        return (identity, error)
                    }
                }
            }
            for _ in 0..<KubernetesMember.deletionsInFlight { startNext() }
            var out: [(ObjectIdentity, MemberError?)] = []
            while let result = await group.next() {
                out.append(result)
                startNext()
            }
            return out.sorted { $0.0 < $1.0 }
        }
        if let failed = results.first(where: { $0.1 != nil })?.1 { throw failed }
        return results.map(\.0)
    }

    public func heldObjects() async throws(MemberError) -> HeldObjects {
        var held = HeldObjects(managed: [:], unmanaged: [])
        // every kind at once: one round trip of latency per cluster, whatever the number of kinds
        for (kind, answer) in await everyKind({ kind in await self.listed(kind) }) {
            for item in try answer.get() {
                let metadata = item.value["metadata"]
                guard let name = metadata?["name"]?.stringValue else { continue }
                let identity: ObjectIdentity
                switch ObjectIdentity.listed(kind: kind, namespace: metadata?["namespace"]?.stringValue, name: name) {
                case .success(let valid): identity = valid
                case .failure(let problem):
                    held.refused.append(problem)
                    continue
                }
                if metadata?["labels"]?[HubAnnotation.managedByKey] == .string(HubAnnotation.managedByValue) {
                    held.managed[identity] = HeldObject(value: item.value, specJSON: item.kept)
                } else {
                    held.unmanaged.append(identity)
                }
            }
        }
        return held
    }

    /// Every object of `kind` (no label selector), each spec kept as its JSON text, or the failure.
    func listed(_ kind: ObjectKind) async -> Result<[JSONReader.ListItem], MemberError> {
        do throws(MemberError) {
            return .success(try await listAll(kind, selector: nil))
        } catch {
            return .failure(error)
        }
    }

    /// `work` for every NeuVector kind (or those of `kinds`) at once, in the kinds' order.
    func everyKind<T: Sendable>(of kinds: Set<ObjectKind> = Set(ObjectKind.allCases),
                                _ work: @escaping @Sendable (ObjectKind) async -> T) async -> [(ObjectKind, T)] {
        await withTaskGroup(of: (ObjectKind, T).self) { group in
            for kind in ObjectKind.allCases where kinds.contains(kind) { group.addTask { (kind, await work(kind)) } }
            var out: [(ObjectKind, T)] = []
            for await result in group { out.append(result) }
            return out.sorted { $0.0 < $1.0 }
        }
    }

    /// Objects one list request asks for (`limit`), as kubectl does.
    public static let pageSize = 500
    /// The most objects of one kind the hub reads from one member, over all pages.
    public static let maxListedObjects = 200_000

    /// Every object of `kind` (with `selector`), page by page: each request carries `limit` and follows
    /// `continue` to the end; a 410 Gone for an expired continue token restarts the list once. Each spec is
    /// kept as its JSON text.
    func listAll(_ kind: ObjectKind, selector: String?) async throws(MemberError) -> [JSONReader.ListItem] {
        try await listAllPages(kind, selector: selector).items
    }

    /// `listAll`, with the resourceVersion of the list (its first page's: the state the pages show).
    func listAllPages(_ kind: ObjectKind, selector: String?) async throws(MemberError) -> (items: [JSONReader.ListItem], resourceVersion: String?) {
        var items: [JSONReader.ListItem] = []
        var resourceVersion: String?
        var token: String?
        var restarted = false
        while true {
            var query = "?limit=\(KubernetesMember.pageSize)"
            if let selector { query += "&labelSelector=\(selector)" }
            if let token { query += "&continue=\(RequestURL.segment(token))" }
            let response = try await send(request("GET", "/apis/neuvector.com/v1/\(kind.plural)\(query)"), doing: "list \(kind.plural)")
            if response.status == 410, token != nil, !restarted {
                // the continue token expired (the API server compacted its history): from the start, once
                restarted = true
                token = nil
                items = []
                resourceVersion = nil
                continue
            }
            // a kind whose CRD the cluster does not serve holds nothing (discovery says which the policy needs)
            if response.status == 404 && token == nil && items.isEmpty && kind != .securityRule && kind != .clusterSecurityRule {
                return ([], nil)
            }
            guard response.status == 200 else { throw failure(response, object: nil, doing: "list \(kind.plural)") }
            guard let page = try? JSONReader.listPage(response.body, keeping: "spec") else {
                throw MemberError(cluster: cluster, message: "list \(kind.plural): the answer is not a list")
            }
            items += page.items
            if token == nil { resourceVersion = page.resourceVersion }
            if items.count > KubernetesMember.maxListedObjects {
                throw MemberError(cluster: cluster, message: "list \(kind.plural): the member lists more than \(KubernetesMember.maxListedObjects) objects of one kind; refused")
            }
            guard let next = page.continueToken, !next.isEmpty else { return (items, resourceVersion) }
            token = next
        }
    }

    /// Every object of `kind` with the hub's label (or `selector`), read whole (keys sorted).
    func list(_ kind: ObjectKind, selector: String? = KubernetesMember.selector) async throws(MemberError) -> [Value] {
        var values: [Value] = []
        for item in try await listAll(kind, selector: selector) {
            do {
                values.append(try HeldObject(value: item.value, specJSON: item.kept).whole())
            } catch {
                throw MemberError(cluster: cluster, message: "list \(kind.plural): an item's spec is not JSON (\(error.message))")
            }
        }
        return values
    }

    /// The managed objects the member lists, and those listed under names the hub refuses to act on.
    struct ManagedListing {
        var objects: [ObjectIdentity: Value] = [:]
        var refused: [ListedNameProblem] = []
    }

    /// The managed objects of every kind (or of `kinds`), one labelled list per kind, all at once.
    func managedListing(of kinds: Set<ObjectKind> = Set(ObjectKind.allCases)) async throws(MemberError) -> ManagedListing {
        var out = ManagedListing()
        let lists = await everyKind(of: kinds) { kind -> Result<[Value], MemberError> in
            do throws(MemberError) {
                return .success(try await self.list(kind))
            } catch {
                return .failure(error)
            }
        }
        for (kind, answer) in lists {
            for item in try answer.get() {
                guard let name = item["metadata"]?["name"]?.stringValue else { continue }
                switch ObjectIdentity.listed(kind: kind, namespace: item["metadata"]?["namespace"]?.stringValue, name: name) {
                case .success(let identity): out.objects[identity] = item  // read canonical
                case .failure(let problem): out.refused.append(problem)
                }
            }
        }
        return out
    }

    public func managedObjects() async throws(MemberError) -> [ObjectIdentity: Value] {
        try await managedListing().objects
    }
}
