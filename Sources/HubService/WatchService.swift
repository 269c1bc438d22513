import Foundation
import HubEngine
import HubStore
import HubTransport
import Logging
import Members
import PolicyCore
import ServiceLifecycle

/// The daemon's watches (SEMANTICS §6): a Kubernetes watch on each NeuVector kind a cluster holds (listed first,
/// resumed from its resourceVersion, listed again on 410 Gone, reconnected with a backoff) and a poll of each
/// directory member's folder. A change that departs from the desired state marks its cluster, and the marked
/// clusters get a self-heal turn at once: reported, and put back on `selfHeal` environments. The hub's own pushes
/// come back as events equal to the desired objects and are let through. Replicas on one store divide the
/// clusters between them (`ReplicaRoster`).
public actor WatchService: Service {
    public struct Settings: Sendable {
        /// `timeoutSeconds` of each watch request: the server closes it then and the watch resumes.
        public var watchTimeout = 300
        /// Seconds between two polls of a directory member's folder.
        public var directoryInterval = 1.0
        /// Seconds a marked cluster waits for more changes before its turn (one turn for a burst of events).
        public var debounce = 0.05
        /// Seconds before a turn skipped because a push held the push lock is tried again.
        public var retry = 0.5
        /// Seconds between two looks at the environments' desired revisions (and, with replicas, at who is
        /// present): a new revision can bring clusters or kinds to watch.
        public var followInterval = 1.0
        /// Seconds between two full reloads of the targets whatever changed (an environment added to the fleet,
        /// a cluster file edited).
        public var fullReload = 60.0

        public init() {}
    }

    let operations: any HubOperations
    let metrics: HubMetrics
    let logger: Logger
    let settings: Settings
    let afterDriftReport: @Sendable (DriftRun, String) async -> Void
    /// The watches' own libcurl transport: every watch holds a transfer open, apart from the pushes' transfers.
    let transport: CurlTransport
    var targets: [String: WatchTarget] = [:]
    var watching: [String: [Task<Void, Never>]] = [:]
    var marked: Set<String> = []
    var wake: CheckedContinuation<Void, Never>?
    /// Watch streams open now.
    var streams = 0
    /// Self-heal turns run by watches (tests read it).
    public private(set) var turns = 0

    /// With replicas on one store: the clusters are divided over the replicas present, each watches (and
    /// repairs) its share.
    let roster: ReplicaRoster?

    public init(operations: any HubOperations, metrics: HubMetrics, logger: Logger, settings: Settings = Settings(),
                roster: ReplicaRoster? = nil, afterDriftReport: @escaping @Sendable (DriftRun, String) async -> Void) {
        self.roster = roster
        self.operations = operations
        self.metrics = metrics
        self.logger = logger
        self.settings = settings
        self.afterDriftReport = afterDriftReport
        var transportSettings = TransportSettings()
        transportSettings.maxInFlight = 100_000  // a watch per cluster and kind stays open; nothing waits for a slot
        transportSettings.userAgent = Replica.userAgent
        transport = CurlTransport(settings: transportSettings)
    }

    public func run() async throws {
        roster?.refresh()
        await reloadIfChanged(force: true)
        // a new desired revision (a first one, or one with other kinds) and, with replicas, who is present are
        // looked at again every `followInterval`; the watches follow
        let following = Task {
            var lastRoster = Date()
            var lastFull = Date()
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(settings.followInterval * 1e9))
                if Task.isCancelled { break }
                var force = Date().timeIntervalSince(lastFull) >= settings.fullReload
                if let roster, Date().timeIntervalSince(lastRoster) >= roster.ttl / 3 {
                    lastRoster = Date()
                    if roster.refresh() { force = true }
                }
                if force { lastFull = Date() }
                await self.reloadIfChanged(force: force)
            }
        }
        // ends on graceful shutdown and on cancellation alike (a daemon run without signal handling is cancelled)
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await healMarked()
            } onGracefulShutdown: {
                Task { await self.stop() }
            }
        } onCancel: {
            Task { await self.stop() }
        }
        following.cancel()
        await following.value
        roster?.leave()
        for tasks in watching.values { for task in tasks { task.cancel() } }
        for tasks in watching.values { for task in tasks { await task.value } }
        transport.shutdown()
    }

    /// Says what this daemon watches (and, with replicas, its share of the fleet).
    func announce() {
        let counted = targets.values.reduce(0) { $0 + (isKubernetes($1) ? $1.kinds.count : 0) }
        let folders = targets.count - targets.values.filter(isKubernetes).count
        var share = ""
        if let roster {
            let others = roster.replicas.count - 1
            share = ", its share of \(roster.replicas.count) replicas present (\(others) other\(others == 1 ? "" : "s") watch the rest)"
        }
        let line = "watching \(targets.count) cluster\(targets.count == 1 ? "" : "s")\(share) (\(counted) Kubernetes watch\(counted == 1 ? "" : "es"), \(folders) folder\(folders == 1 ? "" : "s") polled)"
        // said when it changes, not at every reload
        if line != announced { logger.info("\(line)") }
        announced = line
    }

    var announced = ""

    /// The environments' desired revisions the watches were last loaded for.
    var followed: [String: Int64]?

    /// Loads every target again when an environment's desired revision changed since the last load (or when
    /// `force`: the replicas present changed, or a minute passed), and says what it watches now.
    func reloadIfChanged(force: Bool) async {
        let now: [String: Int64]
        do throws(OperationError) {
            now = try await operations.desiredRevisions()
        } catch {
            if force || followed == nil { await load(nil) }
            return
        }
        guard force || now != followed else { return }
        followed = now
        await load(nil)
        announce()
    }

    var stopping = false

    func stop() {
        stopping = true
        wake?.resume()
        wake = nil
    }

    func isKubernetes(_ target: WatchTarget) -> Bool {
        if case .kubernetes = target.source { return true }
        return false
    }

    /// Reads the targets (all, or those of `clusters`) and (re)starts the watches of those whose kinds changed.
    func load(_ clusters: Set<String>?) async {
        let found: (targets: [WatchTarget], problems: [String])
        var owned: (@Sendable (String) -> Bool)?
        if let roster = self.roster { owned = { roster.watches($0) } }
        do throws(OperationError) {
            found = try await operations.watchTargets(clusters: clusters, owned: owned, transport: transport)
        } catch {
            logger.error("watches: the clusters could not be read: \(error.message)")
            return
        }
        for problem in found.problems { logger.warning("watches: \(problem); not watched") }
        var seen = Set<String>()
        for target in found.targets {
            seen.insert(target.cluster)
            let old = targets[target.cluster]
            targets[target.cluster] = target
            if old == nil || old?.kinds != target.kinds || watching[target.cluster] == nil { restart(target) }
        }
        // clusters gone from the fleet (or, for a full load, no longer watched; or now another replica's)
        for name in Array(targets.keys) where !seen.contains(name) && (clusters?.contains(name) ?? true) {
            targets[name] = nil
            for task in watching.removeValue(forKey: name) ?? [] { task.cancel() }
        }
        metrics.set("policyhub_watched_clusters", Double(targets.count))
    }

    func restart(_ target: WatchTarget) {
        for task in watching.removeValue(forKey: target.cluster) ?? [] { task.cancel() }
        switch target.source {
        case .kubernetes(let member):
            watching[target.cluster] = target.kinds.map { kind in
                Task { await self.follow(member, kind: kind) }
            }
        case .directory(let member):
            watching[target.cluster] = [Task { await self.poll(member) }]
        }
    }

    // MARK: - Kubernetes watches

    /// One kind of one cluster, for as long as the task runs: the cycle's actions executed.
    nonisolated func follow(_ member: KubernetesMember, kind: ObjectKind) async {
        let cluster = member.cluster
        var cycle = WatchCycle(jitter: Double(abs((cluster + kind.rawValue).hashValue) % 1000) / 1000)
        while !Task.isCancelled {
            switch cycle.next() {
            case .list:
                do throws(MemberError) {
                    let listing = try await member.watchListing(kind)
                    cycle.listed(resourceVersion: listing.resourceVersion)
                    if await target(cluster)?.departs(listing: listing.objects, kind: kind) == true {
                        await mark(cluster, "\(kind.plural) listed differ from the desired objects")
                    }
                } catch {
                    cycle.listFailed()
                    if !Task.isCancelled { await failed(cluster, kind, error.message, attempt: cycle.failures) }
                }
            case .watch(let version):
                let started = Date()
                await opened(+1)
                let (end, delivered) = await member.watch(kind, from: version, timeoutSeconds: settings.watchTimeout) { event in
                    await self.observe(cluster, event)
                }
                await opened(-1)
                if Task.isCancelled { return }
                cycle.ended(end, from: version, lasted: Date().timeIntervalSince(started), delivered: delivered)
                switch end {
                case .closed: break
                case .expired(let message):
                    logger.info("watch \(cluster) \(kind.plural): \(message); listing again")
                    metrics.increment("policyhub_watch_relists_total")
                case .failed(let error):
                    await failed(cluster, kind, error.message, attempt: cycle.failures)
                }
            case .wait(let seconds):
                try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            }
        }
    }

    func opened(_ change: Int) {
        streams += change
        metrics.set("policyhub_watches", Double(streams))
    }

    func failed(_ cluster: String, _ kind: ObjectKind, _ message: String, attempt: Int) {
        metrics.increment("policyhub_watch_failures_total")
        // the first failure in a row and then every tenth: a member that is down does not flood the log
        if attempt <= 1 || attempt % 10 == 0 {
            logger.warning("watch \(cluster) \(kind.plural): \(message) (attempt \(attempt), retrying with backoff)")
        }
    }

    func target(_ cluster: String) -> WatchTarget? { targets[cluster] }

    func observe(_ cluster: String, _ event: WatchEvent) {
        metrics.increment("policyhub_watch_events_total")
        guard let target = targets[cluster], target.departs(event) else { return }
        mark(cluster, "\(event.change.rawValue.lowercased()) \(event.identity)")
    }

    // MARK: - Directory members

    nonisolated func poll(_ member: DirectoryMember) async {
        var last: [UInt8]?
        while !Task.isCancelled {
            do throws(MemberError) {
                let stamp = try member.stamp()
                if let last, last != stamp {
                    let held = try await member.managedObjects()
                    if await target(member.cluster)?.departs(held: held) == true {
                        await mark(member.cluster, "the folder changed")
                    }
                }
                last = stamp
            } catch {
                last = nil
                await failed(member.cluster, .securityRule, error.message, attempt: 1)
            }
            try? await Task.sleep(nanoseconds: UInt64(settings.directoryInterval * 1e9))
        }
    }

    // MARK: - Self-heal turns

    func mark(_ cluster: String, _ why: String) {
        logger.info("watch \(cluster): \(why)")
        marked.insert(cluster)
        wake?.resume()
        wake = nil
    }

    /// Runs a self-heal turn for the marked clusters whenever there are some, until the service stops.
    func healMarked() async {
        while !stopping {
            if marked.isEmpty {
                await withCheckedContinuation { wake = $0 }
                continue
            }
            try? await Task.sleep(nanoseconds: UInt64(settings.debounce * 1e9))
            let batch = marked
            marked = []
            // with replicas, the repair's push claims each cluster like any other push: a cluster another
            // replica is pushing is left to it
            let run: SelfHealRun
            do throws(OperationError) {
                run = try await operations.heal(author: "self-heal", clusters: batch)
            } catch {
                logger.error("self-heal of \(batch.sorted().joined(separator: ", ")) failed: \(error.message)")
                continue
            }
            if run.skipped {
                // a push is running: its own events follow, and these clusters get their turn after it
                marked.formUnion(batch)
                try? await Task.sleep(nanoseconds: UInt64(settings.retry * 1e9))
                continue
            }
            turns += 1
            await run.announce(metrics: metrics, logger: logger, after: afterDriftReport)
            // what the store now wants of them (a new revision may have been pushed since they were read)
            await load(batch)
        }
    }
}
