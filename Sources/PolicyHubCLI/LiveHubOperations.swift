import ArgumentParser
import Foundation
import HubService
import HubStore
import PolicyCore
import PolicyYAML

/// The daemon's operations on a policy repository and state file: the CLI's own commands and session,
/// run in-process with their output captured (the same validation, gates, pushes and drift comparison).
final class LiveHubOperations: HubOperations, @unchecked Sendable {
    let root: String
    let statePath: String
    let pushConcurrency: Int
    private let lock = NSLock()
    private var cachedSession: (session: HubSession, loadedAt: Double)?
    /// A reload in progress: other requests keep using the previous session meanwhile.
    private var reloading = false
    /// Encoded objects and hash of each placement class's effective policy, by revision.
    private var policies: [PolicyKey: (objects: [UInt8], hash: String)] = [:]

    struct PolicyKey: Hashable {
        var revision: Int64
        var placement: Renderer.PlacementClass
    }
    private var renderers: [Int64: Renderer] = [:]
    /// The state file for audit lines written outside a session (refused requests).
    private var auditStore: SQLiteHubStore?
    /// The last session that read: served while the repository does not (SEMANTICS §8).
    private var lastValid: HubSession?
    /// What is wrong with the repository now, for /readyz.
    private var treeProblem: String?
    /// How long a read repository is reused before it is read again (writes through the API drop it at once).
    let sessionLifetime: Double

    init(root: String, statePath: String, pushConcurrency: Int = 16, sessionLifetime: Double = 5) {
        self.root = root
        self.statePath = statePath
        self.pushConcurrency = pushConcurrency
        self.sessionLifetime = sessionLifetime
    }

    // MARK: - Running the CLI's code

    /// Runs `body` with printed errors and output captured; a failure becomes an `OperationError` of the
    /// kind the command gave (404, 409, 412, 422) with its messages.
    func captured<T>(_ body: () async throws -> T) async throws(OperationError) -> (T, CommandCapture) {
        let capture = CommandCapture()
        do {
            let value = try await CommandCapture.$current.withValue(capture) { try await body() }
            return (value, capture)
        } catch {
            if !(error is ExitCode) && capture.kind == nil {
                // the request's words did not make a valid command (a value the parser refuses): the caller's
                // mistake, in the parser's words, never a dump of an internal type
                throw OperationError(.invalid, PolicyHubCommand.message(for: error))
            }
            var lines = capture.errors.filter { !$0.hasPrefix("[") }
            if lines.isEmpty { lines = ["the operation failed"] }
            let diagnostics = lines.filter { $0.contains(": error: ") || $0.contains(": warning: ") }
            let message = lines.filter { !diagnostics.contains($0) && !$0.hasSuffix("warnings") && !$0.hasSuffix("warning") }
                .map { $0.hasPrefix("policyhub: ") ? String($0.dropFirst(11)) : $0 }.joined(separator: "; ")
            throw OperationError(capture.kind ?? .failure, message.isEmpty ? "the operation failed" : message,
                                 diagnostics: diagnostics, currentRevision: capture.currentRevision)
        }
    }

    /// Runs a CLI command with `arguments` (plus --repo and --state) in this process.
    func command<C: AsyncParsableCommand>(_ type: C.Type, _ arguments: [String], allowExit2: Bool = false)
        async throws(OperationError) -> CommandCapture
    {
        let (_, capture) = try await captured {
            var command = try type.parse(["--repo", root, "--state", statePath] + arguments)
            do {
                try await command.run()
            } catch let exit as ExitCode where allowExit2 && exit.rawValue == 2 {
                // "changes found" or "drift found": a result
            }
        }
        return capture
    }

    func session() async throws(OperationError) -> HubSession {
        let lifetime = sessionLifetime
        // fresh: use it; stale while another request reloads: use the stale one (one reload at a time)
        let (cached, mustLoad) = lock.withLock { () -> (HubSession?, Bool) in
            if let cached = cachedSession, now() - cached.loadedAt < lifetime || reloading { return (cached.session, false) }
            reloading = true
            return (nil, true)
        }
        if let cached, !mustLoad { return cached }
        do {
            // an invalid policies/ is named and worked around (stored revisions); an invalid clusters/ is not
            let (session, capture) = try await captured {
                try HubSession.open(repository: RepositoryOptions.at(root), statePath: statePath, workingTree: .optional)
            }
            let problem = session.policy == nil
                ? capture.errors.first { $0.contains("policies/ is invalid") }.map { String($0.dropFirst("policyhub: warning: ".count)) }
                : nil
            lock.withLock {
                cachedSession = (session, now())
                lastValid = session
                policies = [:]
                renderers = [:]
                reloading = false
            }
            note(problem)
            return session
        } catch {
            // the repository stopped reading: the last valid session goes on serving, and says why
            let fallback = lock.withLock { () -> HubSession? in
                reloading = false
                if let lastValid { cachedSession = (lastValid, now()) }
                return lastValid
            }
            note("the repository does not read (\(error.message)); serving the last valid state")
            if let fallback { return fallback }
            throw OperationError(.unavailable, "the repository has not read valid since the daemon started: \(error.message)",
                                 diagnostics: error.diagnostics)
        }
    }

    /// Keeps what is wrong with the repository for /readyz, and logs each new problem once.
    func note(_ problem: String?) {
        let changed = lock.withLock { () -> Bool in
            defer { treeProblem = problem }
            return treeProblem != problem
        }
        if changed, let problem { FileHandle.standardError.write(Data("policyhub: \(problem)\n".utf8)) }
    }

    /// Forgets the cached repository and renders (after an API write changed a repository file). Revisions,
    /// cluster states and reports are read from the store on every request; renders are keyed by revision.
    func invalidate() {
        lock.withLock {
            cachedSession = nil
            policies = [:]
            renderers = [:]
        }
    }

    func store<T>(_ body: () throws -> T) throws(OperationError) -> T {
        do {
            return try body()
        } catch let error as HubStoreError {
            if case .conflict(_, _, let current) = error {
                throw OperationError(.conflict, "\(error)", currentRevision: current)
            }
            throw OperationError(.failure, "\(error)")
        } catch {
            throw OperationError(.failure, "\(error)")
        }
    }

    static func revisionValue(_ revision: Revision?) -> Value {
        revision.map { HistoryCommand.fields(of: $0) { .string("r\($0)") }.value } ?? .null
    }

    // MARK: - Reading

    func clusters() async throws(OperationError) -> Value {
        let session = try await session()
        let rows = try store { try StatusCommand.rows(fleet: session.fleet, store: session.store).rows }
        return .map([Value.MapEntry("clusters", .list(rows))])
    }

    func cluster(named name: String) async throws(OperationError) -> Value {
        let session = try await session()
        guard session.fleet.cluster(named: name) != nil else { throw OperationError(.notFound, "unknown cluster '\(name)'") }
        let rows = try store { try StatusCommand.rows(fleet: session.fleet, store: session.store, only: name).rows }
        return rows.first ?? .null
    }

    func effectivePolicy(cluster name: String) async throws(OperationError) -> [UInt8] {
        let session = try await session()
        guard let cluster = session.fleet.cluster(named: name) else { throw OperationError(.notFound, "unknown cluster '\(name)'") }
        guard let revision = try store({ try session.store.desiredRevision(environment: cluster.environment) }) else {
            throw OperationError(.notFound, "environment \(cluster.environment) of \(name) has no desired revision yet (no promotion)")
        }
        let key = PolicyKey(revision: revision.id, placement: Renderer.PlacementClass(environment: cluster.environment,
                                                                                     labels: cluster.placementLabels))
        var rendered = lock.withLock { policies[key] }
        if rendered == nil {
            let renderer: Renderer
            if let known = lock.withLock({ renderers[revision.id] }) {
                renderer = known
            } else {
                renderer = try await captured { try session.renderer(for: revision) }.0
                lock.withLock { renderers[revision.id] = renderer }
            }
            let policy = renderer.render(cluster: cluster)
            let made = (objects: JSONWriter.compactBytes(.list(policy.objects.map(\.value))), hash: policy.contentHash)
            lock.withLock { policies[key] = made }
            rendered = made
        }
        guard let rendered else { throw OperationError(.failure, "no policy for \(name)") }
        // the cluster's own fields around the class's encoded objects
        var head = JSONWriter.compactBytes(.map([
            Value.MapEntry("cluster", .string(name)), Value.MapEntry("environment", .string(cluster.environment)),
            Value.MapEntry("revision", .string("r\(revision.id)")), Value.MapEntry("hash", .string(rendered.hash)),
            Value.MapEntry("objects", .null),
        ]))
        head.removeLast("null}".utf8.count)
        return head + rendered.objects + [UInt8(ascii: "}")]
    }

    func environments() async throws(OperationError) -> Value {
        let session = try await session()
        var out: [Value] = []
        for environment in session.fleet.environments {
            let desired = try store { try session.store.desiredRevision(environment: environment.name) }
            var gates = ValueMapBuilder()
            gates.set("requireInSync", .bool(environment.gates.requireInSync))
            gates.set("requireNoDrift", .bool(environment.gates.requireNoDrift))
            gates.set("minimumSoakSeconds", environment.gates.minimumSoakSeconds.map { .int($0) } ?? .null)
            var map = ValueMapBuilder()
            map.set("name", .string(environment.name))
            map.set("promotesFrom", environment.promotesFrom.map(Value.string) ?? .null)
            map.set("desiredRevision", LiveHubOperations.revisionValue(desired))
            map.set("gates", gates.value)
            out.append(map.value)
        }
        return .map([Value.MapEntry("environments", .list(out))])
    }

    func revisions(environment: String, limit: Int) async throws(OperationError) -> Value {
        let session = try await session()
        guard session.fleet.environment(named: environment) != nil else {
            throw OperationError(.notFound, "unknown environment '\(environment)'")
        }
        let revisions = try store { try session.store.revisions(environment: environment) }
        return .map([Value.MapEntry("revisions", .list(revisions.prefix(limit).map(LiveHubOperations.revisionValue)))])
    }

    /// The root environment's desired revision and its documents.
    func rootDocuments(_ session: HubSession) throws(OperationError) -> (Revision?, [StoredDocument]) {
        guard let root = session.fleet.root else { throw OperationError(.failure, "the fleet has no root environment") }
        let revision = try store { try session.store.desiredRevision(environment: root.name) }
        guard let revision else { return (nil, []) }
        return (revision, try store { try session.store.documents(revision: revision.id) })
    }

    func documents() async throws(OperationError) -> Value {
        let session = try await session()
        let (revision, documents) = try rootDocuments(session)
        return .map([
            Value.MapEntry("revision", revision.map { .string("r\($0.id)") } ?? .null),
            Value.MapEntry("documents", .list(documents.sorted { $0.identity < $1.identity }.map { document in
                .map([Value.MapEntry("kind", .string(document.identity.kind.rawValue)),
                      Value.MapEntry("namespace", .string(document.identity.namespace)),
                      Value.MapEntry("name", .string(document.identity.name)),
                      Value.MapEntry("source", .string(document.source)), Value.MapEntry("hash", .string(document.hash))])
            })),
        ])
    }

    func document(_ identity: ObjectIdentity) async throws(OperationError) -> Value {
        let session = try await session()
        let (revision, documents) = try rootDocuments(session)
        guard let document = documents.first(where: { $0.identity == identity }) else {
            throw OperationError(.notFound, "\(identity) is not in the root environment's revision")
        }
        let object = (try? JSONReader.parse(Array(document.body.utf8))) ?? .null
        return .map([Value.MapEntry("revision", revision.map { .string("r\($0.id)") } ?? .null),
                     Value.MapEntry("source", .string(document.source)), Value.MapEntry("hash", .string(document.hash)),
                     Value.MapEntry("object", object), Value.MapEntry("yaml", .string(YAMLWriter.document(object)))])
    }

    // MARK: - Writing

    func writeDocument(_ identity: ObjectIdentity, yaml: [UInt8]?, precondition: DocumentPrecondition?, author: String)
        async throws(OperationError) -> Value
    {
        let session = try await session()  // the documents come from the store; the session gives the fleet
        guard let root = session.fleet.root else { throw OperationError(.failure, "the fleet has no root environment") }
        guard session.policy != nil, lock.withLock({ treeProblem }) == nil else {
            // a write records the root environment and its file: never on top of a tree that does not validate
            let problems = session.workspace.policyErrors
            throw OperationError(.conflict, "policies/ in the repository is invalid (\(problems.count) error\(problems.count == 1 ? "" : "s")); fix it before writing through the API",
                                 diagnostics: problems.prefix(50).map(\.description))
        }
        // the repository file and the revision change together under the state lock, which `apply` holds
        // while it reads policies/ and records it: an apply never records a tree read between the two
        let statePath = self.statePath
        let (lock, _) = try await captured { try StateLock(statePath: statePath, timeout: 30) }
        defer { withExtendedLifetime(lock) {} }
        let (current, documents) = try rootDocuments(session)
        var kept = documents.filter { $0.identity != identity }
        let existing = documents.first { $0.identity == identity }
        if let precondition {
            // per document: a change of another document since is no conflict
            let expected: String?
            switch precondition {
            case .etag(let tag):
                expected = tag == "absent" ? nil : tag
            case .revision(let id):
                let then: [StoredDocument]
                do {
                    then = try session.store.documents(revision: id)
                } catch {
                    throw OperationError(.conflict, "If-Match names r\(id), which is not a revision of \(root.name)", currentRevision: current?.id)
                }
                expected = then.first { $0.identity == identity }?.hash
            }
            if expected != existing?.hash {
                throw OperationError(.conflict, "\(identity) changed since \(precondition.description) (its ETag is now \"\(DocumentPrecondition.etag(ofHash: existing?.hash))\"); another change landed first",
                                     currentRevision: current?.id)
            }
        }
        let source = existing?.source ?? (identity.kind.isNamespaced
            ? "policies/namespaces/\(identity.namespace)/\(identity.name).yaml" : "policies/global/\(identity.name).yaml")
        if let yaml {
            // the submitted document on its own: syntax, model and identity, located in the body
            let decoded = PolicyDecoder.decodeFile(yaml, file: "body")
            if decoded.diagnostics.contains(where: \.isError) {
                throw OperationError(.invalid, "the document is not valid", diagnostics: decoded.diagnostics.map(\.description))
            }
            guard decoded.objects.count == 1, let object = decoded.objects.first else {
                throw OperationError(.invalid, "the body must hold exactly one document (it holds \(decoded.objects.count))")
            }
            if object.identity != identity {
                throw OperationError(.invalid, "the body is \(object.identity), but the path names \(identity) (kind, metadata.namespace and metadata.name must match the path)")
            }
            let placed = PolicyDecoder.decodeFile(yaml, file: source).objects
            let validated = HubSession.validate(HubSession.objects(of: kept) + placed)
            guard let policy = validated.value else {
                // the submitted document's problems point at its own lines ("body:LINE:COL"); others name their files
                let located = validated.diagnostics.filter(\.isError).map { diagnostic -> String in
                    var moved = diagnostic
                    if moved.location.file == source { moved.location.file = "body" }
                    return moved.description
                }
                throw OperationError(.invalid, "the tree with this document does not validate", diagnostics: located)
            }
            guard let document = policy.documents.first(where: { $0.object.identity == identity }) else {
                throw OperationError(.failure, "the validated tree lost \(identity)")
            }
            let stored = StoredDocument(document)
            if let existing, existing.hash == stored.hash {
                // the same document again: nothing to record, the revision as it is
                return .map([Value.MapEntry("revision", LiveHubOperations.revisionValue(current)),
                             Value.MapEntry("source", .string(source)), Value.MapEntry("hash", .string(existing.hash)),
                             Value.MapEntry("unchanged", .bool(true))])
            }
            kept.append(stored)
        } else if existing == nil {
            throw OperationError(.notFound, "\(identity) is not in the root environment's revision")
        }
        let cause = yaml == nil ? "api: remove \(identity)" : (existing == nil ? "api: add \(identity)" : "api: change \(identity)")
        let previous = try writeSource(source, documents: kept.filter { $0.source == source })
        let revision: Revision
        do {
            revision = try store {
                try session.store.recordRevision(environment: root.name, documents: kept, author: author, cause: cause, at: now(),
                                                 expectedParent: .mustBe(current?.id))
            }
        } catch {
            restoreSource(source, previous)  // one outcome: no revision, so the file as it was
            throw error
        }
        invalidate()
        let written = kept.first { $0.identity == identity }?.hash
        return .map([Value.MapEntry("revision", LiveHubOperations.revisionValue(revision)),
                     Value.MapEntry("source", .string(source)), Value.MapEntry("hash", written.map(Value.string) ?? .null),
                     Value.MapEntry("unchanged", .bool(false))])
    }

    /// Keeps the repository in step with the recorded revision: the source file holds its documents again
    /// (removed when none is left), so that git and the next `policyhub apply` see the edit.
    /// Returns the file's previous bytes (nil: there was none); throws when the file could not be changed.
    func writeSource(_ source: String, documents: [StoredDocument]) throws(OperationError) -> Data? {
        let path = (root as NSString).appendingPathComponent(source)
        let previous = FileManager.default.contents(atPath: path)
        if documents.isEmpty {
            if previous != nil && unlink(path) != 0 {
                throw OperationError(.failure, "cannot remove \(source): \(String(cString: strerror(errno))); nothing was recorded")
            }
            return previous
        }
        var values: [Value] = []
        for document in documents.sorted(by: { $0.identity < $1.identity }) {
            guard let value = try? JSONReader.parse(Array(document.body.utf8)) else {
                throw OperationError(.failure, "the stored form of \(document.identity) cannot be read back; nothing was recorded")
            }
            values.append(value)
        }
        try write(Data(YAMLWriter.documents(values).utf8), to: path, naming: source)
        return previous
    }

    /// Puts a source file back as it was before `writeSource` (best effort: the revision was not recorded).
    func restoreSource(_ source: String, _ previous: Data?) {
        let path = (root as NSString).appendingPathComponent(source)
        guard let previous else {
            unlink(path)
            return
        }
        do throws(OperationError) {
            try write(previous, to: path, naming: source)
        } catch {
            FileHandle.standardError.write(Data("policyhub: \(error.message)\n".utf8))
        }
    }

    /// Writes `data` to `path` atomically (a temporary file beside it, then rename).
    func write(_ data: Data, to path: String, naming source: String) throws(OperationError) {
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        } catch {
            throw OperationError(.failure, "cannot create the folder of \(source): \(error.localizedDescription); nothing was recorded")
        }
        let temporary = path + ".policyhub-tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else {
            throw OperationError(.failure, "cannot write \(source) (\(temporary)); nothing was recorded")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw OperationError(.failure, "cannot replace \(source): \(reason); nothing was recorded")
        }
    }

    func promote(_ request: PromotionRequest, author: String) async throws(OperationError) -> Value {
        var arguments = ["--to", request.to, "--author", author]
        arguments += request.namespaces.flatMap { ["--namespace", $0] } + request.globals.flatMap { ["--global", $0] }
        arguments += request.documents.flatMap { ["--document", $0] }
        if request.all { arguments.append("--all") }
        if request.force { arguments.append("--force") }
        if request.dryRun { arguments.append("--dry-run") }
        if let base = request.baseRevision { arguments += ["--base-revision", String(base)] }
        let capture = try await command(PromoteCommand.self, arguments)
        let session = try await session()
        let revision = try answerRevision(capture, environment: request.to, session: session)
        return .map([
            Value.MapEntry("dryRun", .bool(request.dryRun)),
            Value.MapEntry("revision", LiveHubOperations.revisionValue(revision)),
            Value.MapEntry("gateFailures", .list(capture.errors.filter { $0.hasPrefix("gate ") }.map { .string(String($0.dropFirst(5))) })),
            Value.MapEntry("output", .string(capture.text)),
        ])
    }

    func rollback(environment: String, to: Int64, author: String) async throws(OperationError) -> Value {
        let capture = try await command(RollbackCommand.self, ["--env", environment, "--to", "r\(to)", "--author", author])
        let session = try await session()
        let revision = try answerRevision(capture, environment: environment, session: session)
        return .map([Value.MapEntry("revision", LiveHubOperations.revisionValue(revision))])
    }

    /// The revision a command recorded (never whatever another request made desired by the time it is read),
    /// or, when it recorded none, what `environment` holds.
    func answerRevision(_ capture: CommandCapture, environment: String, session: HubSession) throws(OperationError) -> Revision? {
        if let id = capture.recordedRevision { return try store { try session.store.revision(id: id) } }
        return try store { try session.store.desiredRevision(environment: environment) }
    }

    // MARK: - Drift and reconcile

    func runDriftReport(author: String) async throws(OperationError) -> DriftRun {
        let capture = try await command(DriftCommand.self, ["--output", "json"], allowExit2: true)
        guard let report = try? JSONReader.parse(Array(capture.text.utf8)) else {
            throw OperationError(.failure, "the drift report could not be read back")
        }
        var drift = 0
        var new = 0
        var byCluster: [String: Int] = [:]
        if let session = try? await session() {
            for cluster in session.fleet.clusters { byCluster[cluster.name] = 0 }
        }
        if case .list(let findings)? = report["findings"] {
            for finding in findings where finding["class"]?.stringValue != "unmanaged" {
                drift += 1
                if finding["new"] == .bool(true) { new += 1 }
                if let cluster = finding["cluster"]?.stringValue { byCluster[cluster, default: 0] += 1 }
            }
        }
        return DriftRun(report: report, driftFindings: drift, newFindings: new, findingsByCluster: byCluster)
    }

    func latestDriftReport() async throws(OperationError) -> Value {
        let session = try await session()
        guard let latest = try store({ try session.store.driftReports(limit: 1) }).first else {
            throw OperationError(.notFound, "no drift report has been run yet (POST /v1/drift/reports runs one)")
        }
        var report = (try? JSONReader.parse(Array(latest.json.utf8))) ?? .null
        if case .map(var entries) = report {
            entries.insert(Value.MapEntry("id", .int(Int(latest.id))), at: 0)
            report = .map(entries)
        }
        return report
    }

    func driftReports(limit: Int) async throws(OperationError) -> Value {
        let session = try await session()
        let reports = try store { try session.store.driftReports(limit: limit) }
        return .map([Value.MapEntry("reports", .list(reports.map { report in
            .map([Value.MapEntry("id", .int(Int(report.id))), Value.MapEntry("at", .string(timestamp(report.at))),
                  Value.MapEntry("findings", .int(report.findings))])
        }))])
    }

    func lastDriftReportTime() async throws(OperationError) -> Double? {
        let session = try await session()
        return try store { try session.store.driftReports(limit: 1) }.first?.at
    }

    func reconcile(author: String) async throws(OperationError) -> ReconcileRun {
        let concurrency = pushConcurrency
        let statePath = self.statePath
        let root = self.root
        let (summary, _) = try await captured { () async throws -> PushRun.Summary in
            // pushes take turns with other runs; the state lock is held while the plan is made, never across
            // the members' network time (API writes wait for it)
            let pushing = try StateLock(statePath: statePath, timeout: 600, purpose: .push)
            defer { withExtendedLifetime(pushing) {} }
            let (session, plan) = try { () throws -> (HubSession, PushPlan) in
                let lock = try StateLock(statePath: statePath, timeout: 600)
                defer { withExtendedLifetime(lock) {} }
                let session = try HubSession.open(repository: RepositoryOptions.at(root), statePath: statePath, workingTree: .optional)
                let rootRevision = try session.fleet.root.flatMap { environment in
                    try storeCall { try session.store.desiredRevision(environment: environment.name) }
                }
                return (session, try PushPlan.make(session: session, clusters: session.fleet.clusters, rootRevision: rootRevision))
            }()
            if plan.toPush.isEmpty && plan.inStep.allSatisfy({ $0.appliedRevision == $0.revision.id }) {
                return PushRun.Summary(pushed: 0, inStep: plan.inStep.count, failures: [])
            }
            return try await PushRun.push(session: session, plan: plan, concurrency: concurrency,
                                          clusterCount: session.fleet.clusters.count)
        }
        return ReconcileRun(pushed: summary.pushed, failed: summary.failures.count, inStep: summary.inStep,
                            failures: summary.failures, outcomes: summary.outcomes)
    }

    func audit(limit: Int) async throws(OperationError) -> Value {
        let session = try await session()
        let entries = try store { try session.store.auditLog(limit: limit) }
        return .map([Value.MapEntry("entries", .list(entries.map { entry in
            .map([Value.MapEntry("id", .int(Int(entry.id))), Value.MapEntry("at", .string(timestamp(entry.at))),
                  Value.MapEntry("actor", .string(entry.actor)), Value.MapEntry("action", .string(entry.action)),
                  Value.MapEntry("detail", .string(entry.detail))])
        }))])
    }

    func auditDenied(principal: String, method: String, route: String, path: String, status: Int) async {
        let statePath = self.statePath
        do {
            // the state file alone: a refusal is audited even while the repository does not read
            let store = try lock.withLock { () throws -> SQLiteHubStore in
                if let auditStore { return auditStore }
                let opened = try SQLiteHubStore(path: statePath)
                auditStore = opened
                return opened
            }
            let shown = path.unicodeScalars.prefix(200).map { $0.value < 0x20 ? "?" : String($0) }.joined()
            try store.audit(actor: principal, action: "denied", detail: "\(status) \(method) \(route) (\(shown))", at: now())
        } catch {
            FileHandle.standardError.write(Data("policyhub: cannot audit a refused request: \(error)\n".utf8))
        }
    }

    func readiness() async -> Readiness {
        do throws(OperationError) {
            let session = try await session()
            _ = try store { try session.store.clusterStates() }
            if let problem = lock.withLock({ treeProblem }) { return .degraded(problem) }
            return .ready
        } catch {
            return .notReady(error.message)
        }
    }
}

extension RepositoryOptions {
    /// Options naming `root`, for commands run by the daemon.
    static func at(_ root: String) -> RepositoryOptions {
        var options = RepositoryOptions()
        options.repo = root
        return options
    }
}
