import Foundation
import HubEngine
import Hummingbird
import NIOCore
import PolicyCore

/// A route's handler: the request, its context (with the caller) in; a response or an error out (an
/// `APIError`; anything else is a fault of the hub, answered 500 without its internals).
typealias Handler = @Sendable (Request, HubRequestContext) async throws -> Response

/// The handlers, grouped by the resource they serve. Each decodes its request, calls one operation and
/// encodes the typed answer.
extension HubAPI {
    func handlers() -> [APIRoute.Endpoint: Handler] {
        var all: [APIRoute.Endpoint: Handler] = [:]
        for group in [healthRoutes(), clusterRoutes(), environmentRoutes(), documentRoutes(), promotionRoutes(), driftRoutes(),
                      jobRoutes(), hookRoutes()] {
            all.merge(group) { first, _ in first }
        }
        return all
    }

    /// Who a change is recorded for.
    static func author(_ context: HubRequestContext) -> String { context.principal?.name ?? "anonymous" }

    /// `?limit=N` (1...1000, default 50).
    static func limit(_ request: Request) -> Int {
        request.uri.queryParameters.get("limit").flatMap { Int($0) }.map { max(1, min($0, 1000)) } ?? 50
    }

    // MARK: - /healthz, /readyz, /metrics (open)

    func healthRoutes() -> [APIRoute.Endpoint: Handler] {
        let operations = self.operations
        let metrics = self.metrics
        return [
            .healthz: { _, _ in HubAPI.json(200, .map([Value.MapEntry("status", .string("ok"))])) },
            .readyz: { _, _ in
                switch await operations.readiness() {
                case .ready: return HubAPI.json(200, .map([Value.MapEntry("status", .string("ready"))]))
                case .degraded(let reason):
                    return HubAPI.json(200, .map([Value.MapEntry("status", .string("degraded")), Value.MapEntry("reason", .string(reason))]))
                case .notReady(let problem):
                    return HubAPI.json(503, .map([Value.MapEntry("status", .string("not ready")), Value.MapEntry("reason", .string(problem))]))
                }
            },
            .metrics: { _, _ in
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                         body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.exposition())))
            },
        ]
    }

    // MARK: - /v1/hooks/git (open: the signature is the authentication)

    func hookRoutes() -> [APIRoute.Endpoint: Handler] {
        let hook = self.gitHook
        let logger = self.logger
        return [
            .gitHook: { request, _ in
                guard let hook else {
                    throw APIError(404, "NotFound", "the daemon follows no branch (repository: {url, branch} in hub.yaml)")
                }
                let body = try await self.collect(request)
                func header(_ name: String) -> String? {
                    request.headers.first { $0.name.canonicalName == name.lowercased() }?.value
                }
                let signature = header("X-Hub-Signature-256")
                let gitlab = header("X-Gitlab-Token")
                guard hook.authentic(body: body, signature: signature, gitlabToken: gitlab) else {
                    logger.warning("policyhub: a push event with a missing or wrong signature was refused")
                    throw APIError(401, "Unauthorized", "the push event is not signed with the webhook secret (X-Hub-Signature-256: sha256=HMAC, or X-Gitlab-Token)")
                }
                let event = header("X-GitHub-Event") ?? header("X-Gitlab-Event")
                if event == "ping" { return HubAPI.json(200, .map([Value.MapEntry("status", .string("pong"))])) }
                guard let value = try? JSONReader.parse(body) else {
                    throw APIError(400, "BadRequest", "the push event is not JSON")
                }
                guard let branch = GitHook.pushedBranch(value), branch == hook.branch else {
                    return HubAPI.json(202, .map([Value.MapEntry("status", .string("ignored")),
                                                  Value.MapEntry("reason", .string("not a push to \(hook.branch)"))]))
                }
                await hook.trigger()
                return HubAPI.json(202, .map([Value.MapEntry("status", .string("fetching")), Value.MapEntry("branch", .string(branch))]))
            },
        ]
    }

    // MARK: - /v1/clusters

    func clusterRoutes() -> [APIRoute.Endpoint: Handler] {
        let operations = self.operations
        return [
            .clusters: { _, _ in HubAPI.json(200, try await HubAPI.operation { () async throws(OperationError) in try await operations.clusters() }) },
            .cluster: { _, context in
                let name = context.parameters.get("cluster") ?? ""
                return HubAPI.json(200, try await HubAPI.operation { () async throws(OperationError) in try await operations.cluster(named: name) })
            },
            .clusterPolicy: { _, context in
                let name = context.parameters.get("cluster") ?? ""
                return HubAPI.json(200, bytes: try await HubAPI.operation { () async throws(OperationError) in
                    try await operations.effectivePolicy(cluster: name)
                })
            },
        ]
    }

    // MARK: - /v1/environments

    func environmentRoutes() -> [APIRoute.Endpoint: Handler] {
        let operations = self.operations
        return [
            .environments: { _, _ in
                HubAPI.json(200, try await HubAPI.operation { () async throws(OperationError) in try await operations.environments() })
            },
            .revisions: { request, context in
                let environment = context.parameters.get("environment") ?? ""
                let limit = HubAPI.limit(request)
                return HubAPI.json(200, try await HubAPI.operation { () async throws(OperationError) in
                    try await operations.revisions(environment: environment, limit: limit)
                })
            },
        ]
    }

    // MARK: - /v1/documents and /v1/namespaces/{namespace}/documents

    func documentRoutes() -> [APIRoute.Endpoint: Handler] {
        let operations = self.operations
        let read: Handler = { _, context in
            let identity = try HubAPI.identity(context.parameters)
            let document = try await HubAPI.operation { () async throws(OperationError) in try await operations.document(identity) }
            var response = HubAPI.json(200, document)
            response.headers[.eTag] = "\"\(DocumentPrecondition.etag(ofHash: document["hash"]?.stringValue))\""
            return response
        }
        let write: Handler = { request, context in
            let identity = try HubAPI.identity(context.parameters)
            var body: [UInt8]?
            if request.method == .put {
                body = try await self.collect(request)
                guard body?.isEmpty == false else { throw APIError(400, "BadRequest", "the body must be the document's YAML or JSON") }
            }
            let precondition = try HubAPI.precondition(request)
            let author = HubAPI.author(context)
            let yaml = body
            let result = try await HubAPI.operation { () async throws(OperationError) in
                try await operations.writeDocument(identity, yaml: yaml, precondition: precondition, author: author)
            }
            var response = HubAPI.json(200, result)
            if request.method == .put { response.headers[.eTag] = "\"\(DocumentPrecondition.etag(ofHash: result["hash"]?.stringValue))\"" }
            return response
        }
        return [
            .documents: { _, _ in HubAPI.json(200, try await HubAPI.operation { () async throws(OperationError) in try await operations.documents() }) },
            .globalDocument: read, .namespaceDocument: read,
            .putGlobalDocument: write, .putNamespaceDocument: write, .deleteGlobalDocument: write, .deleteNamespaceDocument: write,
        ]
    }

    // MARK: - /v1/promotions and /v1/rollbacks

    func promotionRoutes() -> [APIRoute.Endpoint: Handler] {
        let operations = self.operations
        return [
            .promotions: { request, context in
                let promotion = try HubAPI.promotionRequest(try await self.collect(request))
                let author = HubAPI.author(context)
                return HubAPI.json(promotion.dryRun ? 200 : 201, try await HubAPI.operation { () async throws(OperationError) in
                    try await operations.promote(promotion, author: author)
                })
            },
            .rollbacks: { request, context in
                let fields = try HubAPI.object(try await self.collect(request), allowed: ["environment", "to", "reason"])
                guard let environment = fields["environment"]?.stringValue, let to = HubAPI.revisionNumber(fields["to"]),
                      let reason = fields["reason"]?.stringValue, !reason.trimmingCharacters(in: .whitespaces).isEmpty else {
                    throw APIError(422, "Invalid", "a rollback needs environment (a name), to (a revision: 3 or \"r3\") and reason (why, recorded in the revision and the audit log)")
                }
                let author = HubAPI.author(context)
                return HubAPI.json(201, try await HubAPI.operation { () async throws(OperationError) in
                    try await operations.rollback(environment: environment, to: to, author: author, reason: reason)
                })
            },
        ]
    }

    // MARK: - /v1/drift/reports

    func driftRoutes() -> [APIRoute.Endpoint: Handler] {
        let operations = self.operations
        return [
            .driftReports: { request, _ in
                let limit = HubAPI.limit(request)
                return HubAPI.json(200, try await HubAPI.operation { () async throws(OperationError) in try await operations.driftReports(limit: limit) })
            },
            .latestDriftReport: { _, _ in
                HubAPI.json(200, try await HubAPI.operation { () async throws(OperationError) in try await operations.latestDriftReport() })
            },
            .runDriftReport: { _, context in
                let author = HubAPI.author(context)
                let run = try await HubAPI.operation { () async throws(OperationError) in
                    try await self.atNormalPriority { () async throws(OperationError) -> DriftRun in try await operations.runDriftReport(author: author) }
                }
                await self.afterDriftReport(run, "api")
                return HubAPI.json(201, run.report)
            },
        ]
    }

    // MARK: - /v1/reconcile and /v1/audit

    func jobRoutes() -> [APIRoute.Endpoint: Handler] {
        let operations = self.operations
        let metrics = self.metrics
        return [
            .reconcile: { _, context in
                let author = HubAPI.author(context)
                let run = try await HubAPI.operation { () async throws(OperationError) in
                    try await self.atNormalPriority { () async throws(OperationError) -> ReconcileRun in try await operations.reconcile(author: author) }
                }
                metrics.recordPushes(run.outcomes)
                return HubAPI.json(200, .map([
                    Value.MapEntry("pushed", .int(run.pushed)), Value.MapEntry("failed", .int(run.failed)),
                    Value.MapEntry("inStep", .int(run.inStep)), Value.MapEntry("failures", .list(run.failures.map(Value.string))),
                ]))
            },
            .audit: { request, _ in
                let limit = HubAPI.limit(request)
                return HubAPI.json(200, try await HubAPI.operation { () async throws(OperationError) in try await operations.audit(limit: limit) })
            },
        ]
    }
}
