import Foundation
import HubEngine
import Hummingbird
import Logging
import Members
import NIOCore
import PolicyCore

/// One endpoint of the REST API: its method, OpenAPI-style path and the access it needs (nil: open).
public struct APIRoute: Sendable, Hashable {
    public enum Method: String, Sendable, Hashable { case get = "GET", put = "PUT", post = "POST", delete = "DELETE" }

    public enum Endpoint: String, Sendable, Hashable {
        case clusters, cluster, clusterPolicy, environments, revisions, documents
        case globalDocument, putGlobalDocument, deleteGlobalDocument
        case namespaceDocument, putNamespaceDocument, deleteNamespaceDocument
        case promotions, rollbacks, driftReports, latestDriftReport, runDriftReport, reconcile, audit
        case healthz, readyz, metrics, gitHook
    }

    public var method: Method
    public var path: String
    public var endpoint: Endpoint

    /// The access class the route needs, given the request's path parameters; nil for open endpoints.
    public func access(namespace: String?) -> Access? {
        switch endpoint {
        case .healthz, .readyz, .metrics: return nil
        case .gitHook: return nil  // authenticated by the push event's HMAC signature, not a token
        case .clusters, .cluster, .clusterPolicy, .environments, .revisions, .documents, .globalDocument, .namespaceDocument,
             .driftReports, .latestDriftReport, .audit:
            return .read
        case .putGlobalDocument, .deleteGlobalDocument: return .writeDocument(namespace: nil)
        case .putNamespaceDocument, .deleteNamespaceDocument: return .writeDocument(namespace: namespace ?? "")
        case .promotions, .rollbacks: return .promote
        case .runDriftReport, .reconcile: return .operate
        }
    }
}

/// The REST API: routes, bearer tokens and roles, JSON bodies and errors, request metrics.
public struct HubAPI: Sendable {
    /// Every route the server answers; `openapi.yaml` documents exactly these (a test checks it).
    public static let routes: [APIRoute] = [
        APIRoute(method: .get, path: "/healthz", endpoint: .healthz),
        APIRoute(method: .get, path: "/readyz", endpoint: .readyz),
        APIRoute(method: .get, path: "/metrics", endpoint: .metrics),
        APIRoute(method: .get, path: "/v1/clusters", endpoint: .clusters),
        APIRoute(method: .get, path: "/v1/clusters/{cluster}", endpoint: .cluster),
        APIRoute(method: .get, path: "/v1/clusters/{cluster}/policy", endpoint: .clusterPolicy),
        APIRoute(method: .get, path: "/v1/environments", endpoint: .environments),
        APIRoute(method: .get, path: "/v1/environments/{environment}/revisions", endpoint: .revisions),
        APIRoute(method: .get, path: "/v1/documents", endpoint: .documents),
        APIRoute(method: .get, path: "/v1/documents/{kind}/{name}", endpoint: .globalDocument),
        APIRoute(method: .put, path: "/v1/documents/{kind}/{name}", endpoint: .putGlobalDocument),
        APIRoute(method: .delete, path: "/v1/documents/{kind}/{name}", endpoint: .deleteGlobalDocument),
        APIRoute(method: .get, path: "/v1/namespaces/{namespace}/documents/{kind}/{name}", endpoint: .namespaceDocument),
        APIRoute(method: .put, path: "/v1/namespaces/{namespace}/documents/{kind}/{name}", endpoint: .putNamespaceDocument),
        APIRoute(method: .delete, path: "/v1/namespaces/{namespace}/documents/{kind}/{name}", endpoint: .deleteNamespaceDocument),
        APIRoute(method: .post, path: "/v1/promotions", endpoint: .promotions),
        APIRoute(method: .post, path: "/v1/rollbacks", endpoint: .rollbacks),
        APIRoute(method: .get, path: "/v1/drift/reports", endpoint: .driftReports),
        APIRoute(method: .post, path: "/v1/drift/reports", endpoint: .runDriftReport),
        APIRoute(method: .get, path: "/v1/drift/reports/latest", endpoint: .latestDriftReport),
        APIRoute(method: .post, path: "/v1/reconcile", endpoint: .reconcile),
        APIRoute(method: .get, path: "/v1/audit", endpoint: .audit),
        APIRoute(method: .post, path: "/v1/hooks/git", endpoint: .gitHook),
    ]

    public let operations: any HubOperations
    public let tokens: TokenSource
    public let metrics: HubMetrics
    public let maxBodyBytes: Int
    public let logger: Logger
    /// Called after every drift report (the API's and the scheduler's): metrics and the webhook.
    public let afterDriftReport: @Sendable (DriftRun, String) async -> Void
    /// Where requests run (nil: the default executor); jobs a request starts (a push, a drift report) run on
    /// the default executor at normal priority.
    public let requestExecutor: ThreadPoolExecutor?
    /// Push events of the followed branch (nil: the daemon follows none, and the route answers 404).
    public let gitHook: GitHook?

    public init(operations: any HubOperations, tokens: TokenSource, metrics: HubMetrics, maxBodyBytes: Int, logger: Logger,
                requestExecutor: ThreadPoolExecutor? = nil, gitHook: GitHook? = nil,
                afterDriftReport: @escaping @Sendable (DriftRun, String) async -> Void) {
        self.gitHook = gitHook
        self.requestExecutor = requestExecutor
        self.operations = operations
        self.tokens = tokens
        self.metrics = metrics
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
        self.afterDriftReport = afterDriftReport
    }

    /// A router with every route of `HubAPI.routes`, answering unknown paths with a JSON 404 or 405. Each
    /// route of /v1 runs behind `Authentication` (which hands the caller's identity to it); its handler
    /// comes from the resource it belongs to (`HubAPI+Routes.swift`).
    public func router() -> Router<HubRequestContext> {
        let router = Router(context: HubRequestContext.self)
        router.add(middleware: NotFoundMiddleware())
        let handlers = self.handlers()
        for route in HubAPI.routes {
            guard let handler = handlers[route.endpoint] else { preconditionFailure("no handler for \(route.path)") }
            let path = RouterPath(route.path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: ""))
            let method: HTTPRequest.Method
            switch route.method {
            case .get: method = .get
            case .put: method = .put
            case .post: method = .post
            case .delete: method = .delete
            }
            let group = router.group()
            if route.access(namespace: nil) != nil {
                group.add(middleware: Authentication(route: route, api: self))
            }
            group.on(path, method: method) { request, context in
                guard let executor = self.requestExecutor else {
                    return await self.respond(route, request: request, context: context, handler)
                }
                return await withTaskExecutorPreference(executor) { await self.respond(route, request: request, context: context, handler) }
            }
        }
        return router
    }

    /// Runs a route's handler, turns every error into a JSON answer, and counts and logs the request.
    func respond(_ route: APIRoute, request: Request, context: HubRequestContext, _ handler: Handler) async -> Response {
        let started = ContinuousClock.now
        let response: Response
        do {
            response = try await handler(request, context)
        } catch let error as APIError {
            response = HubAPI.json(error.status, error.body)
        } catch {
            logger.error("\(route.method.rawValue) \(request.uri.path): \(error)")
            response = HubAPI.json(500, APIError(500, "InternalError", "the hub failed to answer; its log says why").body)
        }
        observe(route, request: request, principal: context.principal, status: Int(response.status.code), since: started)
        return response
    }

    /// Request metrics and the log line: who, what and the outcome; never the token.
    func observe(_ route: APIRoute, request: Request, principal: Principal?, status: Int, since started: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        metrics.observeRequest(route: route.path, method: route.method.rawValue, status: status, seconds: seconds)
        if route.access(namespace: nil) != nil {
            logger.info("\(route.method.rawValue) \(request.uri.path) \(status)", metadata: ["principal": .string(principal?.name ?? "-")])
        }
    }

    static func refusal(_ principal: Principal, route: APIRoute, namespace: String?) -> String {
        switch principal.role {
        case .viewer: return "token '\(principal.name)' (viewer) may only read"
        case .promoter: return "token '\(principal.name)' (promoter) may read, promote and roll back only"
        case .namespaceOwner:
            if let namespace, route.endpoint == .putNamespaceDocument || route.endpoint == .deleteNamespaceDocument {
                return "token '\(principal.name)' (namespace-owner of \(principal.namespaces.joined(separator: ", "))) may not change namespace '\(namespace)'"
            }
            return "token '\(principal.name)' (namespace-owner) may change only documents of \(principal.namespaces.joined(separator: ", ")); never global documents, promotions or jobs"
        case .securityAdmin: return "refused"
        }
    }

    static func bearerToken(_ request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }

    /// Runs an operation, its error as the API answers it.
    static func operation<T>(_ body: () async throws(OperationError) -> T) async throws(APIError) -> T {
        do {
            return try await body()
        } catch {
            throw APIError(error)
        }
    }

    /// Runs a job a request started (a push, a drift report) on the default executor, at normal priority.
    func atNormalPriority<T: Sendable>(_ body: @Sendable () async throws(OperationError) -> T) async throws(OperationError) -> T {
        guard requestExecutor != nil else { return try await body() }
        let result: Result<T, OperationError> = await withTaskExecutorPreference(globalConcurrentExecutor) {
            do throws(OperationError) { return .success(try await body()) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// The body, at most `maxBodyBytes` (413 beyond).
    func collect(_ request: Request) async throws(APIError) -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBodyBytes {
            throw APIError(413, "RequestEntityTooLarge", "the body is \(length) bytes; the limit is \(maxBodyBytes)")
        }
        do {
            let buffer = try await request.body.collect(upTo: maxBodyBytes)
            return Array(buffer.readableBytesView)
        } catch {
            throw APIError(413, "RequestEntityTooLarge", "the body is larger than \(maxBodyBytes) bytes")
        }
    }

    static func identity(_ parameters: Parameters) throws(APIError) -> ObjectIdentity {
        let kindText = parameters.get("kind") ?? ""
        guard let kind = ObjectKind.allCases.first(where: { $0.rawValue == kindText || $0.plural == kindText.lowercased() }) else {
            throw APIError(404, "NotFound", "unknown kind '\(kindText)' (known: \(ObjectKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let namespace = parameters.get("namespace") ?? ""
        let name = parameters.get("name") ?? ""
        // checked before anything touches the repository: these words become a file's path
        if parameters.get("namespace") != nil && !NeuVectorNames.isDNS1123Label(namespace) {
            throw APIError(400, "BadRequest", "'\(HubAPI.printable(namespace))' is not a namespace name (a DNS-1123 label: lower-case letters, digits and '-', at most 63)")
        }
        if !NeuVectorNames.isDNS1123Subdomain(name) {
            throw APIError(400, "BadRequest", "'\(HubAPI.printable(name))' is not a document name (a DNS-1123 subdomain: lower-case letters, digits, '-' and '.')")
        }
        if kind.isNamespaced && namespace.isEmpty {
            throw APIError(404, "NotFound", "\(kind.rawValue) is namespaced: use /v1/namespaces/{namespace}/documents/\(kind.rawValue)/{name}")
        }
        if !kind.isNamespaced && !namespace.isEmpty {
            throw APIError(404, "NotFound", "\(kind.rawValue) is cluster-scoped (a global document): use /v1/documents/\(kind.rawValue)/{name}")
        }
        return ObjectIdentity(kind: kind, namespace: namespace, name: name)
    }

    /// A word from a request, safe to echo: control characters escaped, at most 100 characters.
    static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(100) {
            out += scalar.value < 0x20 || scalar.value == 0x7f ? scalar.escaped(asASCII: true) : String(scalar)
        }
        return text.unicodeScalars.count > 100 ? out + "…" : out
    }

    /// `If-Match: r12` (or `12`): the document as it was in that root revision; `If-Match: "sha256:..."`
    /// (or `"absent"`): the document's ETag from a GET.
    static func precondition(_ request: Request) throws(APIError) -> DocumentPrecondition? {
        guard let header = request.headers[.ifMatch] else { return nil }
        let text = header.trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
        if text.hasPrefix("sha256:") || text == "absent" { return .etag(text) }
        guard let revision = revisionNumber(.string(text)) else {
            throw APIError(400, "BadRequest", "If-Match must be a document's ETag (\"sha256:...\", from a GET) or a revision such as r12")
        }
        return .revision(revision)
    }

    static func revisionNumber(_ value: Value?) -> Int64? {
        switch value {
        case .int(let number)?: return Int64(number)
        case .string(let text)?: return Int64(text.hasPrefix("r") ? String(text.dropFirst()) : text)
        default: return nil
        }
    }

    /// A JSON object body with only `allowed` keys (400 malformed, 422 unknown fields).
    static func object(_ body: [UInt8], allowed: Set<String>) throws(APIError) -> Value {
        let value: Value
        do {
            value = try JSONReader.parse(body)
        } catch {
            throw APIError(400, "BadRequest", "the body is not JSON: \(error.message) at byte \(error.offset)")
        }
        guard case .map(let entries) = value else { throw APIError(400, "BadRequest", "the body must be a JSON object") }
        if let duplicate = HubAPI.duplicateKey(in: value) {
            // most proxies and JSON libraries take the last of two equal keys, this reader the first: refuse both
            throw APIError(400, "BadRequest", "the key '\(printable(duplicate))' appears twice in one JSON object")
        }
        let unknown = entries.map(\.key).filter { !allowed.contains($0) }
        if !unknown.isEmpty {
            throw APIError(422, "Invalid", "unknown field\(unknown.count == 1 ? "" : "s") \(unknown.sorted().joined(separator: ", ")) (known: \(allowed.sorted().joined(separator: ", ")))")
        }
        return value
    }

    /// The first key that appears twice in one mapping anywhere in `value`.
    static func duplicateKey(in value: Value) -> String? {
        switch value {
        case .map(let entries):
            var seen = Set<String>()
            for entry in entries {
                if !seen.insert(entry.key).inserted { return entry.key }
                if let inner = duplicateKey(in: entry.value) { return inner }
            }
            return nil
        case .list(let items):
            for item in items { if let inner = duplicateKey(in: item) { return inner } }
            return nil
        default:
            return nil
        }
    }

    /// The methods of the routes whose path template matches `path` (for 405's `Allow`).
    static func methods(matching path: String) -> [String] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        return routes.filter { route in
            let template = route.path.split(separator: "/", omittingEmptySubsequences: false)
            return template.count == parts.count && zip(template, parts).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
        }.map(\.method.rawValue)
    }

    static func promotionRequest(_ body: [UInt8]) throws(APIError) -> PromotionRequest {
        let fields = try object(body, allowed: ["to", "namespaces", "globals", "documents", "all", "force", "dryRun", "baseRevision",
                                                "reason", "from"])
        guard let to = fields["to"]?.stringValue else { throw APIError(422, "Invalid", "to: the target environment is required") }
        func strings(_ key: String) throws(APIError) -> [String] {
            guard let value = fields[key] else { return [] }
            guard case .list(let items) = value, items.allSatisfy({ $0.stringValue != nil }) else {
                throw APIError(422, "Invalid", "\(key) must be a list of strings")
            }
            return items.compactMap(\.stringValue)
        }
        func flag(_ key: String) throws(APIError) -> Bool {
            guard let value = fields[key] else { return false }
            guard case .bool(let flag) = value else { throw APIError(422, "Invalid", "\(key) must be true or false") }
            return flag
        }
        var base: Int64?
        if let value = fields["baseRevision"], value != .null {
            guard let number = revisionNumber(value) else { throw APIError(422, "Invalid", "baseRevision must be a revision such as 3 or \"r3\"") }
            base = number
        }
        for key in ["reason", "from"] where fields[key] != nil && fields[key]?.stringValue == nil {
            throw APIError(422, "Invalid", "\(key) must be a string")
        }
        return PromotionRequest(to: to, namespaces: try strings("namespaces"), globals: try strings("globals"),
                                documents: try strings("documents"), all: try flag("all"), force: try flag("force"),
                                dryRun: try flag("dryRun"), baseRevision: base, reason: fields["reason"]?.stringValue,
                                from: fields["from"]?.stringValue)
    }

    static func json(_ status: Int, _ value: Value) -> Response {
        json(status, bytes: JSONWriter.compactBytes(value))
    }

    static func json(_ status: Int, bytes: [UInt8]) -> Response {
        var bytes = bytes
        bytes.append(0x0a)
        return Response(status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// An API error: status, a reason word and a message, with diagnostics and the current revision when known.
struct APIError: Error {
    var status: Int
    var reason: String
    var message: String
    var diagnostics: [String] = []
    var currentRevision: Int64?
    /// The promotion gates that failed (412), each `gate: reason`.
    var gates: [String] = []

    init(_ status: Int, _ reason: String, _ message: String) {
        self.status = status
        self.reason = reason
        self.message = message
    }

    init(_ error: OperationError) {
        switch error.kind {
        case .notFound: self.init(404, "NotFound", error.message)
        case .invalid: self.init(422, "Invalid", error.message)
        case .conflict: self.init(409, "Conflict", error.message)
        case .gateFailed: self.init(412, "GateFailed", error.message)
        case .unavailable: self.init(503, "Unavailable", error.message)
        case .failure: self.init(500, "InternalError", error.message)
        }
        diagnostics = error.diagnostics
        currentRevision = error.currentRevision
        gates = error.gates
    }

    var body: Value {
        var map = ValueMapBuilder()
        map.set("code", .int(status))
        map.set("reason", .string(reason))
        map.set("message", .string(message))
        if !diagnostics.isEmpty { map.set("diagnostics", .list(diagnostics.map(Value.string))) }
        map.set("currentRevision", currentRevision.map { .string("r\($0)") })
        if !gates.isEmpty { map.set("gates", .list(gates.map(Value.string))) }
        return .map([Value.MapEntry("error", map.value)])
    }
}

/// Unknown paths and methods get the same JSON error shape as every other failure.
struct NotFoundMiddleware: RouterMiddleware {
    typealias Context = HubRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound || error.status == .methodNotAllowed {
            let allowed = HubAPI.methods(matching: request.uri.path)
            if !allowed.isEmpty {
                var response = HubAPI.json(405, APIError(405, "MethodNotAllowed",
                                                         "\(request.method.rawValue) is not allowed on \(request.uri.path); allowed: \(allowed.joined(separator: ", "))").body)
                response.headers[.allow] = allowed.joined(separator: ", ")
                return response
            }
            return HubAPI.json(404, APIError(404, "NotFound", "no route \(request.method.rawValue) \(request.uri.path)").body)
        }
    }
}

/// A request's context: Hummingbird's core context and who is calling (set by `Authentication`).
public struct HubRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The caller, once `Authentication` accepted its token; nil on the open routes.
    public var principal: Principal?

    public init(source: Source) {
        coreContext = .init(source: source)
        principal = nil
    }
}

/// Authentication of a /v1 route: the bearer token names a principal (401 otherwise), whose role must
/// allow the route for the request's namespace (403 otherwise); the principal is handed to the route in
/// its context. Every refusal is audited with who (or "anonymous") and the route, never the token.
struct Authentication: RouterMiddleware {
    typealias Context = HubRequestContext

    let route: APIRoute
    let api: HubAPI

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var context = context
        let namespace = context.parameters.get("namespace")
        do throws(APIError) {
            guard let presented = HubAPI.bearerToken(request) else {
                throw APIError(401, "Unauthorized", "send Authorization: Bearer <token>")
            }
            guard let found = api.tokens.current().principal(token: presented) else {
                throw APIError(401, "Unauthorized", "the token is not valid (unknown, revoked or expired)")
            }
            context.principal = found
            if let access = route.access(namespace: namespace), !access.allows(found) {
                throw APIError(403, "Forbidden", HubAPI.refusal(found, route: route, namespace: namespace))
            }
        } catch {
            await api.operations.auditDenied(principal: context.principal?.name ?? "anonymous", method: route.method.rawValue,
                                             route: route.path, path: request.uri.path, status: error.status)
            api.observe(route, request: request, principal: context.principal, status: error.status, since: started)
            return HubAPI.json(error.status, error.body)
        }
        return try await next(request, context)
    }
}
