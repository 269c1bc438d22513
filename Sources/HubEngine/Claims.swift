import Foundation
import HubStore
import HubTransport

/// This process among the replicas that share a store (docs/replicas.md).
public enum Replica {
    /// Host, process id and a random part: unique across restarts and machines.
    public static let id: String = {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0 ? String(cString: name) : "host"
        return "\(host)/\(getpid())/\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
    }()

    /// The User-Agent of every request this process sends to a member: which replica sent it, for a member's
    /// audit log (and the replica tests).
    public static let userAgent = TransportSettings().userAgent + " (replica \(id))"

    /// Seconds a claim or lease lasts unless renewed (renewed every third of it). A replica that stops
    /// (killed, paused, cut off from the database) loses its clusters and leadership after this long.
    /// `POLICYHUB_CLAIM_TTL` sets it (2 to 300 s).
    public static let ttl: Double = {
        if let text = ProcessInfo.processInfo.environment["POLICYHUB_CLAIM_TTL"], let seconds = Double(text), seconds >= 2, seconds <= 300 {
            return seconds
        }
        return 6
    }()

    /// What is wrong with `POLICYHUB_CLAIM_TTL` when it is set and not used (the daemon says so at start).
    public static var ttlProblem: String? {
        guard let text = ProcessInfo.processInfo.environment["POLICYHUB_CLAIM_TTL"] else { return nil }
        if let seconds = Double(text), seconds >= 2, seconds <= 300 { return nil }
        return "POLICYHUB_CLAIM_TTL=\(text) is not a number of seconds from 2 to 300; claims and leases last \(Int(ttl)) s"
    }

    /// Seconds on a monotonic clock (never moved by NTP).
    static func monotonic() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}

/// The claims of one push run on a shared store: taken in batches before their clusters are pushed,
/// renewed in the background every third of their lifetime, given up once the push is recorded. A claim
/// is trusted locally only until its last renewal plus its lifetime less a margin: a replica cut off from
/// the database starts no push once that has passed, and its records are fenced out by the store.
final class ClaimBook: @unchecked Sendable {
    let store: any WorkSharing
    let owner: String
    let ttl: Double
    private let lock = NSLock()
    private var held: [String: Int64] = [:]
    /// Claims found gone at a renewal (another replica has them).
    private var lapsed: [String: Int64] = [:]
    private var finished: [String] = []
    private var validUntil = 0.0
    private var renewer: Task<Void, Never>?
    /// Why the claims could not be renewed, the last time that failed.
    private(set) var renewalError: String?

    init(store: any WorkSharing, owner: String = Replica.id, ttl: Double = Replica.ttl) {
        self.store = store
        self.owner = owner
        self.ttl = ttl
    }

    var margin: Double { ttl / 6 }

    /// Claims what it can of `clusters` (and gives up the claims of clusters recorded since the last call).
    func claim(_ clusters: [String]) throws(HubStoreError) -> [String: ClusterClaim] {
        flush()
        let started = Replica.monotonic()
        let claims = try store.claimClusters(clusters, owner: owner, ttl: ttl)
        lock.withLock {
            if held.isEmpty { validUntil = started + ttl - margin }
            for claim in claims { held[claim.cluster] = claim.token }
        }
        startRenewing()
        return Dictionary(claims.map { ($0.cluster, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The fence of `cluster`'s record, when it is held and not known to have lapsed.
    func fence(_ cluster: String) -> StoreFence? {
        lock.withLock { held[cluster].map { StoreFence.claim(cluster: cluster, owner: owner, token: $0) } }
    }

    /// Why nothing more may be sent to `cluster`: it was claimed by this book and the claims lapsed (could not
    /// be renewed in time, or another replica took it over); nil otherwise.
    func refusal(_ cluster: String) -> String? {
        lock.withLock {
            guard let token = held[cluster] ?? lapsed[cluster] else { return nil }
            if lapsed[cluster] != nil || Replica.monotonic() >= validUntil {
                return "not sent: this replica's claim on \(cluster) (token \(token)) lapsed (\(renewalError ?? "taken over by another replica")); another replica pushes it"
            }
            return nil
        }
    }

    /// Whether the claims held can still be trusted (renewed recently enough).
    var isValid: Bool { lock.withLock { held.isEmpty || Replica.monotonic() < validUntil } }

    /// `cluster` is recorded (or given up): its claim is released with the next batch.
    func done(_ cluster: String) {
        lock.withLock {
            if held.removeValue(forKey: cluster) != nil { finished.append(cluster) }
        }
    }

    /// Releases the claims of finished clusters.
    func flush() {
        let names = lock.withLock { () -> [String] in
            defer { finished = [] }
            return finished
        }
        try? store.releaseClaims(names, owner: owner)
    }

    /// Stops renewing and releases every claim.
    func close() {
        renewer?.cancel()
        let names = lock.withLock { () -> [String] in
            defer { held = [:]; finished = [] }
            return Array(held.keys) + finished
        }
        try? store.releaseClaims(names, owner: owner)
    }

    private func startRenewing() {
        lock.withLock {
            if renewer == nil { renewer = Task.detached { [weak self] in await self?.renewLoop() } }
        }
    }

    private func renewLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(ttl / 3 * 1e9))
            if Task.isCancelled { return }
            let names = lock.withLock { Array(held.keys) }
            guard !names.isEmpty else { continue }
            let started = Replica.monotonic()
            do throws(HubStoreError) {
                let kept = try store.renewClaims(names, owner: owner, ttl: ttl)
                lock.withLock {
                    for name in names where !kept.contains(name) { lapsed[name] = held.removeValue(forKey: name) }
                    validUntil = started + ttl - margin
                    renewalError = nil
                }
            } catch {
                lock.withLock { renewalError = error.description }
            }
        }
    }
}

/// The clusters of a push in the order they start. Without a shared store, the plan's order. With one, the
/// next clusters are claimed a batch at a time; a claimed cluster whose state shows a push since the plan
/// was made (another replica's) and that is now in step is not pushed again; one another replica holds is
/// set aside in `elsewhere`.
struct ClaimQueue {
    private var pending: ArraySlice<PushPlan.Item>
    private var ready: [PushPlan.Item] = []
    private(set) var elsewhere: [PushPlan.Item] = []
    let book: ClaimBook?
    let batch: Int
    private var claimedBefore = false
    private var lastElsewhereTry = Replica.monotonic()

    init(items: [PushPlan.Item], book: ClaimBook?, batch: Int) {
        self.pending = items[...]
        self.book = book
        self.batch = batch
    }

    /// The next cluster to push, claimed when the store is shared; nil when none is left.
    mutating func next(_ summary: inout PushSummary) -> PushPlan.Item? {
        guard let book else { return pending.popFirst() }
        while true {
            if !ready.isEmpty {
                let item = ready.removeFirst()
                if book.isValid { return item }
                // the claims could not be renewed in time (cut off from the database): nothing more starts
                summary.failures.append("cluster \(item.cluster.name): not pushed: this replica's claims could not be renewed (\(book.renewalError ?? "no answer from the database")); another replica takes the cluster over")
                summary.outcomes.append((item.cluster.name, false))
                book.done(item.cluster.name)
                continue
            }
            let items: [PushPlan.Item]
            if !elsewhere.isEmpty, Replica.monotonic() - lastElsewhereTry >= book.ttl / 6 {
                // clusters another replica held, asked for again (all in one claim) every sixth of a claim's
                // lifetime while this run goes on: those of a replica that died are taken over as soon as their
                // claims expire, not when this run ends
                lastElsewhereTry = Replica.monotonic()
                items = elsewhere
                elsewhere = []
            } else if pending.isEmpty {
                return nil
            } else {
                // a first batch fills every slot; later ones, taken as slots free, are a quarter of that, so that
                // a replica holds little more than it pushes and the others find work
                items = Array(pending.prefix(claimedBefore ? max(1, batch / 4) : batch))
                claimedBefore = true
                pending.removeFirst(items.count)
            }
            let claims: [String: ClusterClaim]
            do throws(HubStoreError) {
                claims = try book.claim(items.map(\.cluster.name))
            } catch {
                for item in items {
                    summary.failures.append("cluster \(item.cluster.name): not pushed: cannot claim it: \(error)")
                    summary.outcomes.append((item.cluster.name, false))
                }
                continue
            }
            for var item in items {
                guard let claim = claims[item.cluster.name] else {
                    elsewhere.append(item)
                    continue
                }
                if claim.state?.lastPushAt != item.plannedPushAt {
                    // pushed by another replica since the plan was made: its record decides
                    let untrusted = PushPlan.untrusted(claim.state, target: item.target)
                    if untrusted == nil && claim.state?.appliedHash == item.desiredHash {
                        summary.inStep += 1
                        summary.pushedElsewhere += 1
                        book.done(item.cluster.name)
                        continue
                    }
                    if let state = claim.state, state.environment == item.cluster.environment,
                       let applied = state.appliedRevision, applied > item.revision.id {
                        // it holds a revision recorded after this plan's: pushing this one would take it back
                        // (the next reconcile plans from the newer one)
                        summary.pushedElsewhere += 1
                        book.done(item.cluster.name)
                        continue
                    }
                    item.untrusted = untrusted
                    item.plannedPushAt = claim.state?.lastPushAt
                }
                ready.append(item)
            }
        }
    }

    /// The clusters set aside because another replica held them, to be claimed again.
    mutating func retryElsewhere() {
        pending = elsewhere[...]
        elsewhere = []
    }
}
