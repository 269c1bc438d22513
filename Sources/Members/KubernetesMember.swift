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

    public static let fieldManager = "policyhub"
    static let selector = "app.kubernetes.io%2Fmanaged-by%3Dpolicyhub"
    /// Deletions sent at once.
    static let deletionsInFlight = 8
    /// The default of `maxDeletions`.
    public static let defaultMaxDeletions = 100

    public init(cluster: String, endpoint: KubernetesEndpoint, transport: any HTTPTransport, deadline: Double? = nil,
                maxDeletions: Int = KubernetesMember.defaultMaxDeletions, exec: ExecSettings = ExecSettings(),
                credentials: ExecCredentialCache = .shared) {
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
        return HTTPRequest(method: method, url: endpoint.server + path, headers: headers, body: body, deadline: deadline)
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

    /// One round trip's worth of work at once: the CRD check, the applies and the labelled lists run
    /// concurrently; the CRD check's verdict is reported before any apply error, and deletions (which
    /// need the list) come last.
    public func push(_ objects: [RenderedObject]) async throws(MemberError) -> PushOutcome {
        async let discovery: Result<Void, MemberError> = { () async -> Result<Void, MemberError> in
            do throws(MemberError) {
                try await checkCRDs(for: Set(objects.map(\.identity.kind)))
                return .success(())
            } catch {
                return .failure(error)
            }
        }()
        async let listed: Result<ManagedListing, MemberError> = { () async -> Result<ManagedListing, MemberError> in
            do throws(MemberError) {
                return .success(try await managedListing())
            } catch {
                return .failure(error)
            }
        }()
        let results = await withTaskGroup(of: (ObjectIdentity, Result<Int, MemberError>).self) { group in
            for object in objects {
                group.addTask {
                    let query = "?fieldManager=\(KubernetesMember.fieldManager)&force=true&fieldValidation=Strict"
                    let request = self.request("PATCH", KubernetesMember.path(object.identity) + query,
                                               body: JSONWriter.compactBytes(object.value),
                                               contentType: "application/apply-patch+yaml")
                    do throws(MemberError) {
                        let response = try await self.send(request, object: object.identity, doing: "server-side apply")
                        guard response.status == 200 || response.status == 201 else {
                            return (object.identity, .failure(self.failure(response, object: object.identity, doing: "server-side apply")))
                        }
                        return (object.identity, .success(response.status))
                    } catch {
                        return (object.identity, .failure(error))
                    }
                }
            }
            var out: [(ObjectIdentity, Result<Int, MemberError>)] = []
            for await result in group { out.append(result) }
            return out.sorted { $0.0 < $1.0 }
        }
        if case .failure(let error) = await discovery { throw error }
        var outcome = PushOutcome()
        for (identity, result) in results {
            switch result {
            case .success(201): outcome.created.append(identity)
            case .success: outcome.updated.append(identity)
            case .failure(let error): throw error
            }
        }
        let held: ManagedListing
        switch await listed {
        case .success(let listing): held = listing
        case .failure(let error): throw error
        }
        outcome.refused = held.refused.map(\.description)
        let desired = Set(objects.map(\.identity))
        let stale = held.objects.keys.filter { !desired.contains($0) }.sorted()
        if stale.count > maxDeletions {
            throw MemberError(cluster: cluster, message: "\(stale.count) objects labelled as managed by the hub are no longer desired, more than the \(maxDeletions) one push may delete; nothing was deleted (the rest was applied). Check what created them, then confirm with --max-deletions \(stale.count)")
        }
        outcome.deleted = try await delete(stale)
        return outcome
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

    /// `work` for every NeuVector kind at once, in the kinds' order.
    func everyKind<T: Sendable>(_ work: @escaping @Sendable (ObjectKind) async -> T) async -> [(ObjectKind, T)] {
        await withTaskGroup(of: (ObjectKind, T).self) { group in
            for kind in ObjectKind.allCases { group.addTask { (kind, await work(kind)) } }
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
        var items: [JSONReader.ListItem] = []
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
                continue
            }
            // a kind whose CRD the cluster does not serve holds nothing (discovery says which the policy needs)
            if response.status == 404 && token == nil && items.isEmpty && kind != .securityRule && kind != .clusterSecurityRule {
                return []
            }
            guard response.status == 200 else { throw failure(response, object: nil, doing: "list \(kind.plural)") }
            guard let page = try? JSONReader.listPage(response.body, keeping: "spec") else {
                throw MemberError(cluster: cluster, message: "list \(kind.plural): the answer is not a list")
            }
            items += page.items
            if items.count > KubernetesMember.maxListedObjects {
                throw MemberError(cluster: cluster, message: "list \(kind.plural): the member lists more than \(KubernetesMember.maxListedObjects) objects of one kind; refused")
            }
            guard let next = page.continueToken, !next.isEmpty else { return items }
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

    func managedListing() async throws(MemberError) -> ManagedListing {
        var out = ManagedListing()
        let lists = await everyKind { kind -> Result<[Value], MemberError> in
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
