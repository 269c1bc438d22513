import Foundation
import HubStore
import HubStorePostgres
import HubTransport
import Members
import PolicyCore
import PolicyYAML

/// The hub's engine: one policy repository, one store, one clock and where events go. The CLI's commands
/// and the daemon's API are both thin adapters over it: they parse, call an operation of a `HubSession`
/// it opens, and print or encode the typed result.
public struct HubEngine: Sendable {
    /// Where the state comes from: a SQLite file (opened for every session, as separate processes share
    /// it) or one store shared by every session of this process.
    public enum StoreSource: Sendable {
        case sqlite(path: String)
        case shared(any HubStore)
    }

    /// The default state file, relative to the repository.
    public static let defaultStatePath = ".policyhub/state.sqlite"

    /// The repository's absolute path.
    public let root: String
    public let storeSource: StoreSource
    /// Every time the engine reads (revision times, pushes, the soak gate, drift reports).
    public let clock: any HubClock
    public let log: EngineLog
    /// What the operator allows exec credential plugins (never the repository).
    public let exec: ExecSettings
    /// The keys the operator trusts to sign policy commits (never the repository's).
    public let trustedKeys: TrustedKeys
    /// What each member being pushed or read is waiting for (progress lines, `--timeout`'s report).
    public let activity: ActivityBoard
    /// This engine's name among the replicas sharing its store (the owner of its claims).
    public let replica: String
    /// The member limits every session starts with (the daemon's hub.yaml; a command sets its own).
    public var limits = MemberLimits()
    /// Seconds a claim on a cluster lasts unless renewed (`Replica.ttl`, `POLICYHUB_CLAIM_TTL`, unless set).
    public var claimTTL = Replica.ttl

    public init(root: String, store: StoreSource, clock: any HubClock = SystemClock(), log: EngineLog = .silent,
                exec: ExecSettings = ExecSettings(), trustedKeys: TrustedKeys = TrustedKeys(), activity: ActivityBoard = ActivityBoard(),
                replica: String = Replica.id) {
        self.replica = replica
        self.root = root
        self.storeSource = store
        self.clock = clock
        self.log = log
        self.exec = exec
        self.trustedKeys = trustedKeys
        self.activity = activity
    }

    /// An engine on the SQLite state file `statePath` (relative to the repository unless absolute; nil for
    /// the default).
    public init(root: String, statePath: String?, clock: any HubClock = SystemClock(), log: EngineLog = .silent,
                exec: ExecSettings = ExecSettings(), trustedKeys: TrustedKeys = TrustedKeys(), activity: ActivityBoard = ActivityBoard()) {
        self.init(root: root, store: .sqlite(path: HubEngine.resolve(statePath ?? HubEngine.defaultStatePath, root: root)),
                  clock: clock, log: log, exec: exec, trustedKeys: trustedKeys, activity: activity)
    }

    /// `path` made absolute against `root`.
    public static func resolve(_ path: String, root: String) -> String {
        path.hasPrefix("/") ? path : (root as NSString).appendingPathComponent(path)
    }

    /// The same engine, its events sent elsewhere.
    public func logging(to log: EngineLog) -> HubEngine {
        var settings = exec
        settings.log = { line in log.note(line) }
        var engine = HubEngine(root: root, store: storeSource, clock: clock, log: log, exec: settings, trustedKeys: trustedKeys, activity: activity,
                               replica: replica)
        engine.limits = limits
        engine.claimTTL = claimTTL
        return engine
    }

    /// The SQLite state file's path, when the state is in one.
    public var statePath: String? {
        if case .sqlite(let path) = storeSource { return path }
        return nil
    }

    /// Opens the store (creating a state file and its folder when needed).
    public func openStore() throws(EngineError) -> any HubStore {
        switch storeSource {
        case .shared(let store): return store
        case .sqlite(let path):
            do {
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                        withIntermediateDirectories: true)
            } catch {
                throw .failure("cannot create the folder of the state file \(path): \(error.localizedDescription)")
            }
            return try stored { () throws(HubStoreError) -> any HubStore in try SQLiteHubStore(path: path) }
        }
    }

    /// Whether the store is shared by replicas that divide the pushes between them by claims.
    public var sharesWork: Bool {
        if case .shared(let store) = storeSource { return store is any WorkSharing }
        return false
    }

    /// Takes the state lock (`.state`, around reading and recording) or the push lock (`.push`, around a
    /// run's pushes), waiting up to `timeout` seconds for another holder.
    public func lock(_ purpose: StateLock.Purpose, timeout: Double = 300) throws(EngineError) -> StateLock {
        switch storeSource {
        case .sqlite(let path): return try StateLock(file: path, purpose: purpose, timeout: timeout, log: log)
        case .shared(let store):
            if let base = store.lockBase { return try StateLock(file: base, purpose: purpose, timeout: timeout, log: log) }
            // replicas that share a store push side by side, each cluster claimed by one of them at a time
            // (`ClaimBook`): their push lock is this process's only
            if purpose == .push, store is any WorkSharing {
                return try StateLock(inProcess: store.inProcessLock(purpose.rawValue), purpose: purpose, timeout: timeout)
            }
            if let locking = store as? any DatabaseLocking {
                return try StateLock(database: locking, purpose: purpose, timeout: timeout, log: log)
            }
            return try StateLock(inProcess: store.inProcessLock(purpose.rawValue), purpose: purpose, timeout: timeout)
        }
    }

    /// Reads the repository and opens the store. Throws `.invalid` with every problem when clusters/ is
    /// invalid, or policies/ is and the operation needs it (`.required`); with `.optional` an invalid
    /// policies/ is named in the log and the session works from stored revisions (SEMANTICS §8).
    public func open(workingTree: HubSession.WorkingTree = .required) throws(EngineError) -> HubSession {
        // read whole: never while a sync has a commit it has not accepted yet checked out
        let workspace = try CheckoutLock.exclusive(root) { () throws(EngineError) in Workspace.open(root: root, exec: exec) }
        guard let fleet = workspace.fleet, !workspace.diagnostics.contains(where: { $0.isError && $0.location.file.hasPrefix("clusters/") }),
              workspace.policy != nil || workingTree == .optional else {
            throw .invalid("the policy repository is invalid; nothing was recorded or pushed", diagnostics: workspace.diagnostics)
        }
        let policy = workspace.isValid ? workspace.policy : nil
        if policy == nil {
            log.note("policyhub: warning: \(HubSession.treeProblem(workspace.policyErrors)); working from the stored revisions, nothing is recorded from policies/ until it validates (policyhub validate lists every error)")
        } else {
            for diagnostic in workspace.diagnostics { log.send(.diagnostic(diagnostic)) }
        }
        let store = try openStore()
        let working = policy?.documents.map(StoredDocument.init) ?? []
        var session = HubSession(engine: self, workspace: workspace, policy: policy, fleet: fleet, store: store, workingDocuments: working,
                                 workingTreeHash: policy == nil ? "invalid working tree" : StoredDocument.treeHash(working))
        session.limits = limits
        return session
    }
}

/// A validated repository, the store and the members: what every operation works with.
public struct HubSession: Sendable {
    /// What an operation needs of the working tree `policies/`.
    public enum WorkingTree: Sendable {
        /// It records or previews the working tree (apply, plan): an invalid tree stops it.
        case required
        /// It works from stored revisions (drift, promote, rollback, the daemon): an invalid tree is named
        /// and the operation goes on without it (SEMANTICS §8).
        case optional
    }

    public let engine: HubEngine
    public let workspace: Workspace
    /// The validated working tree; nil when it is invalid and the session works from stored revisions.
    public let policy: ValidatedPolicySet?
    public let fleet: ValidatedFleet
    public let store: any HubStore
    /// One libcurl transport for every Kubernetes member of this run, started on first use.
    public let transports = TransportHolder()
    /// Kubeconfig servers read for `targetKey`, once per file and context.
    public let targets = TargetCache()
    /// How long each member may take and how much a push may delete (commands set it from their options).
    public var limits = MemberLimits()
    /// The documents of the working tree, as a revision would hold them.
    public let workingDocuments: [StoredDocument]
    /// The tree hash a revision of the working tree has (computed once: it serializes every document).
    public let workingTreeHash: String

    public var root: String { engine.root }
    public var log: EngineLog { engine.log }

    /// Now, on the engine's clock.
    public func now() -> Double { engine.clock.now() }

    /// What is wrong with policies/, in one sentence, when it does not validate.
    public var treeProblem: String? { policy == nil ? HubSession.treeProblem(workspace.policyErrors) : nil }

    static func treeProblem(_ errors: [Diagnostic]) -> String {
        "policies/ is invalid (\(errors.count) error\(errors.count == 1 ? "" : "s"), first: \(errors.first?.description ?? "?"))"
    }

    /// The root environment's revision for policies/ as it is now: the desired one when the tree is
    /// unchanged (`isNew` false), otherwise the revision an apply would record (not stored).
    public func rootRevisionForWorkingTree(author: String) throws(EngineError) -> (revision: Revision, isNew: Bool)? {
        guard let root = fleet.root, policy != nil else { return nil }
        let current = try stored { () throws(HubStoreError) in try store.desiredRevision(environment: root.name) }
        if let current, current.treeHash == workingTreeHash { return (current, false) }
        let next = try stored { () throws(HubStoreError) in try store.revisions(environment: nil).first?.id ?? 0 } + 1
        return (Revision(id: next, environment: root.name, parent: current?.id, author: author, createdAt: now(),
                         cause: "apply", treeHash: workingTreeHash, documentCount: workingDocuments.count), true)
    }

    /// The member a cluster is pushed to.
    public func member(for cluster: MemberCluster) -> Result<any Member, MemberError> {
        switch cluster.target {
        case .directory(let path):
            return .success(DirectoryMember(cluster: cluster.name, root: HubEngine.resolve(path, root: root)))
        case .kubernetes(let kubeconfig, let context):
            return endpoint(cluster.name, kubeconfig: kubeconfig, context: context).map { endpoint in
                // a member's deadline is transport time, on the system clock
                KubernetesMember(cluster: cluster.name, endpoint: endpoint,
                                 transport: transports.transport(inFlight: limits.connections, board: engine.activity),
                                 deadline: limits.deadline(from: Date().timeIntervalSince1970),
                                 maxDeletions: limits.maxDeletions, exec: engine.exec, settle: limits.settle, activity: engine.activity)
            }
        }
    }

    /// The member a cluster is watched through: a Kubernetes member on `transport` with no deadline (a watch
    /// stays open), or the directory member; the session's own transport is not started for it.
    public func watchedMember(for cluster: MemberCluster, transport: any HTTPTransport) -> Result<any Member, MemberError> {
        guard case .kubernetes(let kubeconfig, let context) = cluster.target else { return member(for: cluster) }
        return endpoint(cluster.name, kubeconfig: kubeconfig, context: context).map { endpoint in
            KubernetesMember(cluster: cluster.name, endpoint: endpoint, transport: transport, exec: engine.exec)
        }
    }

    /// A Kubernetes cluster's endpoint from its kubeconfig (relative to the repository).
    func endpoint(_ cluster: String, kubeconfig: String, context: String?) -> Result<KubernetesEndpoint, MemberError> {
        do throws(KubeconfigError) {
            return .success(try Kubeconfig.endpoint(path: KubeconfigCheck.resolve(kubeconfig, root: root), context: context))
        } catch {
            return .failure(MemberError(cluster: cluster, message: error.description))
        }
    }

    /// Where a cluster's policy goes, as recorded with what was applied (SEMANTICS §5): the folder's absolute
    /// path, or the kubeconfig's server and context. A cluster whose target changed is pushed again.
    public func targetKey(for cluster: MemberCluster) -> String { HubSession.targetKey(for: cluster, root: root, servers: targets) }

    /// `targetKey` without a session (`status`), kubeconfig servers read through `servers`.
    public static func targetKey(for cluster: MemberCluster, root: String, servers: TargetCache) -> String {
        switch cluster.target {
        case .directory(let path):
            return "directory " + (HubEngine.resolve(path, root: root) as NSString).standardizingPath
        case .kubernetes(let kubeconfig, let context):
            let path = KubeconfigCheck.resolve(kubeconfig, root: root)
            let server = servers.server(path: path, context: context)
            return "kubernetes \(server ?? path) context \(context ?? "(current)")"
        }
    }

}

extension HubSession {
    /// A renderer for a stored revision: the working tree when the revision holds exactly it, otherwise the
    /// revision's own documents, validated again.
    public func renderer(for revision: Revision) throws(EngineError) -> Renderer {
        let id = "r\(revision.id)"
        if let policy, revision.treeHash == workingTreeHash {
            return Renderer(policy: policy, fleet: fleet, revision: id)
        }
        let documents = try stored { () throws(HubStoreError) in try store.documents(revision: revision.id) }
        let validated = HubSession.validate(HubSession.objects(of: documents))
        guard let valid = validated.value else {
            throw .invalid("revision \(revision.id) of \(revision.environment) no longer validates", diagnostics: validated.diagnostics)
        }
        return Renderer(policy: valid, fleet: fleet, revision: id)
    }

    /// The objects of stored documents, decoded on all cores, in document order.
    public static func objects(of documents: [StoredDocument]) -> [PolicyObject] {
        let slots = ResultSlots<[PolicyObject]>(count: documents.count)
        ParallelFor.dispatch.run(documents.count) { index in
            slots.set(index, PolicyDecoder.decodeFile(Array(documents[index].body.utf8), file: documents[index].source).objects)
        }
        return slots.values.flatMap { $0 }
    }

    /// Validates a tree of stored objects on all cores.
    public static func validate(_ objects: [PolicyObject]) -> Validation<ValidatedPolicySet> {
        PolicyValidator.validate(PolicyTree(objects: objects), parallel: .dispatch)
    }

    /// Clusters by name, or all, with a clear error for an unknown one.
    public func clusters(named names: [String]) throws(EngineError) -> [MemberCluster] {
        if names.isEmpty { return fleet.clusters }
        for name in names where fleet.cluster(named: name) == nil {
            throw .notFound(EditDistance.unknown("cluster", name, known: fleet.clusters.map(\.name)))
        }
        return fleet.clusters.filter { names.contains($0.name) }
    }

    /// An environment by name, with the known ones named when it is unknown.
    public func environment(named name: String) throws(EngineError) -> Environment {
        guard let environment = fleet.environment(named: name) else {
            throw .notFound(EditDistance.unknown("environment", name, known: fleet.environments.map(\.name)))
        }
        return environment
    }

    /// A stored revision, or `.notFound` naming the newest one.
    public func storedRevision(_ id: Int64) throws(EngineError) -> Revision {
        do throws(HubStoreError) {
            return try store.revision(id: id)
        } catch {
            let newest = (try? store.revisions(environment: nil).first?.id).flatMap { $0 }
            throw .notFound("there is no revision r\(id)\(newest.map { " (the newest is r\($0))" } ?? " (none is recorded yet)")")
        }
    }

    /// What an environment holds: its desired revision, or `.notFound` saying how it gets one.
    public func desiredRevision(of name: String) throws(EngineError) -> Revision {
        _ = try environment(named: name)
        guard let desired = try stored({ () throws(HubStoreError) in try store.desiredRevision(environment: name) }) else {
            throw .notFound("\(name) has no desired revision yet (it gets one by \(fleet.root?.name == name ? "policyhub apply" : "its first promotion")); it holds nothing the hub pushed")
        }
        return desired
    }

    /// Each cluster's state by name.
    public func clusterStates() throws(EngineError) -> [String: ClusterState] {
        Dictionary(try stored { () throws(HubStoreError) in try store.clusterStates() }.map { ($0.cluster, $0) },
                   uniquingKeysWith: { a, _ in a })
    }
}

/// Bounds on the work one member may cause: how long it may take, and how much a push may delete.
public struct MemberLimits: Sendable {
    /// Seconds one cluster's whole exchange may take, retries included.
    public var clusterTimeout: Double
    /// Managed objects one push may delete from one cluster.
    public var maxDeletions: Int
    /// Seconds a Kubernetes push waits after its last apply before reading back what NeuVector kept.
    public var settle: Double
    /// Requests in flight at once over every Kubernetes member of the run (libcurl's connections).
    public var connections: Int
    /// When the whole command must be over (`--timeout`, seconds since 1970): no cluster's deadline is later.
    public var commandDeadline: Double?

    public init(clusterTimeout: Double = 120, maxDeletions: Int = KubernetesMember.defaultMaxDeletions,
                settle: Double = KubernetesMember.defaultSettle, connections: Int = TransportSettings().maxInFlight,
                commandDeadline: Double? = nil) {
        self.clusterTimeout = clusterTimeout
        self.maxDeletions = maxDeletions
        self.settle = settle
        self.connections = connections
        self.commandDeadline = commandDeadline
    }

    /// The deadline of a cluster whose work starts at `start`.
    public func deadline(from start: Double) -> Double {
        min(start + clusterTimeout, commandDeadline ?? .infinity)
    }
}

/// The server of each kubeconfig file and context, read once per session.
public final class TargetCache: @unchecked Sendable {
    private let lock = NSLock()
    private var servers: [String: String?] = [:]

    public init() {}

    func server(path: String, context: String?) -> String? {
        let key = path + "\u{0}" + (context ?? "")
        lock.lock()
        if let known = servers[key] {
            lock.unlock()
            return known
        }
        lock.unlock()
        let server = try? Kubeconfig.endpoint(path: path, context: context).server
        lock.lock()
        servers[key] = server
        lock.unlock()
        return server
    }
}

/// Starts the libcurl transport (and its thread) only when a Kubernetes member needs it, and stops it
/// before the process exits, so that no transfer thread outlives the command.
public final class TransportHolder: @unchecked Sendable {
    private let lock = NSLock()
    private var started: CurlTransport?

    public init() {}

    deinit {
        shutdown()
    }

    public var transport: CurlTransport { transport(inFlight: TransportSettings().maxInFlight) }

    /// The transport, started on first use with at most `inFlight` transfers at once, noting its retries on `board`.
    public func transport(inFlight: Int, board: ActivityBoard? = nil) -> CurlTransport {
        lock.lock()
        defer { lock.unlock() }
        if let started { return started }
        var settings = TransportSettings()
        settings.maxInFlight = inFlight
        settings.userAgent = Replica.userAgent
        let made = CurlTransport(settings: settings, board: board)
        started = made
        return made
    }

    public func shutdown() {
        lock.lock()
        let running = started
        started = nil
        lock.unlock()
        running?.shutdown()
    }
}

/// An exclusive lock of the state. `.state` is held by every writer of a revision while it reads and
/// records, and never across a member's network time; `.push` by a run while it pushes, so that two runs
/// push in turns. For a state file these are `state.sqlite.lock` and `state.sqlite.push.lock` (flock, so
/// separate processes share them); for an in-process store, its in-process locks.
public final class StateLock: @unchecked Sendable {
    public enum Purpose: String, Sendable {
        case state, push
    }

    private enum Held {
        case file(Int32)
        case inProcess(InProcessLock)
        case database(any DatabaseLock)
    }

    private let held: Held
    public let path: String

    /// Takes a lock file beside `base`, waiting up to `timeout` seconds for another holder, saying so once.
    init(file base: String, purpose: Purpose, timeout: Double, log: EngineLog) throws(EngineError) {
        path = base + (purpose == .state ? ".lock" : ".push.lock")
        try? FileManager.default.createDirectory(atPath: (base as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .failure("cannot open the lock file \(path): \(String(cString: strerror(errno)))") }
        var waited = 0.0
        var announced = false
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if !announced {
                let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
                log.note("policyhub: another policyhub run (pid \(holder)) holds \(path); waiting up to \(Int(timeout)) s")
                announced = true
            }
            if waited >= timeout {
                close(fd)
                throw .failure("gave up waiting for \(path) after \(Int(timeout)) s")
            }
            usleep(200_000)
            waited += 0.2
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { write(fd, $0, strlen($0)) }
        held = .file(fd)
    }

    /// Takes an in-process lock, polling up to `timeout` seconds.
    init(inProcess lock: InProcessLock, purpose: Purpose, timeout: Double) throws(EngineError) {
        path = "in-process \(purpose.rawValue) lock"
        guard lock.acquire(timeout: timeout) else { throw .failure("gave up waiting for the \(path) after \(Int(timeout)) s") }
        held = .inProcess(lock)
    }

    /// Takes the database's lock of `purpose` (every process on the database takes turns), polling up to
    /// `timeout` seconds and saying once that it waits.
    init(database store: any DatabaseLocking, purpose: Purpose, timeout: Double, log: EngineLog) throws(EngineError) {
        path = "the database's \(purpose.rawValue) lock"
        var waited = 0.0
        var announced = false
        while true {
            if let lock = try stored({ () throws(HubStoreError) in try store.tryDatabaseLock(purpose.rawValue) }) {
                held = .database(lock)
                return
            }
            if !announced {
                log.note("policyhub: another policyhub run holds \(path); waiting up to \(Int(timeout)) s")
                announced = true
            }
            if waited >= timeout { throw .failure("gave up waiting for \(path) after \(Int(timeout)) s") }
            usleep(200_000)
            waited += 0.2
        }
    }

    deinit {
        switch held {
        case .file(let fd):
            flock(fd, LOCK_UN)
            close(fd)
        case .inProcess(let lock):
            lock.release()
        case .database(let lock):
            lock.release()
        }
    }
}

/// RFC 3339 time in UTC.
public func timestamp(_ seconds: Double) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.timeZone = TimeZone(identifier: "UTC")
    return formatter.string(from: Date(timeIntervalSince1970: seconds))
}

/// Who is acting: an explicit name, else the login name.
public func currentAuthor(_ explicit: String?) -> String {
    explicit ?? ProcessInfo.processInfo.environment["USER"] ?? ProcessInfo.processInfo.environment["LOGNAME"] ?? "unknown"
}

extension HubEngine {
    /// Where `state` says the state is: a `postgres://` URL (one store for this process, `PostgresHubStore`),
    /// or a SQLite file (relative to `root` unless absolute; nil: `.policyhub/state.sqlite`).
    public static func storeSource(_ state: String?, root: String) throws(EngineError) -> StoreSource {
        guard let state, PostgresLocation.isURL(state) else {
            return .sqlite(path: HubEngine.resolve(state ?? HubEngine.defaultStatePath, root: root))
        }
        return .shared(try stored { () throws(HubStoreError) in try PostgresHubStore(url: state) })
    }
}
