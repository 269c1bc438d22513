/// A condition that every store transaction of a task checks before its own statements (stores that share
/// work between replicas, `WorkSharing`): that this replica still holds what it claimed. A replica that lost
/// its lease or claim (paused past its expiry, cut off from the database) can then write nothing: the
/// fencing token of docs/replicas.md. Stores of one process ignore fences.
public enum StoreFence: Sendable, Hashable, CustomStringConvertible {
    /// The lease `name` (the scheduler's leadership) held by `owner` in `term`.
    case lease(name: String, owner: String, term: Int64)
    /// The claim on `cluster` held by `owner` under `token`.
    case claim(cluster: String, owner: String, token: Int64)

    /// The fences of the running task (inherited by its child tasks).
    @TaskLocal public static var active: [StoreFence] = []

    public var description: String {
        switch self {
        case .lease(let name, let owner, let term): return "the \(name) lease (term \(term)) of \(owner)"
        case .claim(let cluster, let owner, let token): return "the claim on \(cluster) (token \(token)) of \(owner)"
        }
    }

    /// Runs `body` with `fence` added to the task's fences.
    public static func with<T>(_ fence: StoreFence, _ body: () throws(HubStoreError) -> T) throws(HubStoreError) -> T {
        let result: Result<T, HubStoreError> = $active.withValue(active + [fence]) {
            do throws(HubStoreError) { return .success(try body()) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Runs the async `body` with `fence` (when there is one) added to the task's fences.
    public static func with<T: Sendable>(_ fence: StoreFence?, _ body: () async -> T) async -> T {
        guard let fence else { return await body() }
        return await $active.withValue(active + [fence]) { await body() }
    }
}

/// A cluster claimed for a push: the token that fences its record, and the cluster's state as the store held
/// it when the claim was taken (so that a cluster another replica pushed meanwhile is not pushed again).
public struct ClusterClaim: Sendable {
    public var cluster: String
    public var token: Int64
    public var state: ClusterState?

    public init(cluster: String, token: Int64, state: ClusterState?) {
        self.cluster = cluster
        self.token = token
        self.state = state
    }
}

/// Stores that several replicas share (PostgreSQL): claims that divide push work per cluster, and leases
/// that elect one replica for the scheduled jobs. Every expiry is on the database's clock, so the replicas'
/// own clocks never have to agree.
public protocol WorkSharing: HubStore {
    /// Claims each of `clusters` that no other owner holds (free, expired, or already `owner`'s) for `ttl`
    /// seconds; returns those claimed (a new token for each one taken, the same token for one renewed).
    func claimClusters(_ clusters: [String], owner: String, ttl: Double) throws(HubStoreError) -> [ClusterClaim]
    /// Extends `owner`'s unexpired claims on `clusters` by `ttl` seconds; returns the clusters still held.
    func renewClaims(_ clusters: [String], owner: String, ttl: Double) throws(HubStoreError) -> Set<String>
    /// Gives up `owner`'s claims on `clusters`.
    func releaseClaims(_ clusters: [String], owner: String) throws(HubStoreError)
    /// Every unexpired claim: cluster and owner (status, tests).
    func claims() throws(HubStoreError) -> [String: String]
    /// Takes the lease `name` when it is free or expired, or extends it when `owner` holds it, for `ttl`
    /// seconds; returns its term (higher with every new holder), or nil when another owner holds it.
    func acquireLease(_ name: String, owner: String, ttl: Double) throws(HubStoreError) -> Int64?
    /// Gives up the lease when `owner` holds it (another replica takes it at once instead of after its expiry).
    func releaseLease(_ name: String, owner: String) throws(HubStoreError)
    /// Marks `owner` present among the replicas for `ttl` seconds (calling again renews it) and returns every
    /// replica present now, `owner` included, sorted: what the watches are divided over.
    func presentReplicas(owner: String, ttl: Double) throws(HubStoreError) -> [String]
    /// Ends `owner`'s presence at once (a replica shutting down: the others take its watches now).
    func leaveReplicas(owner: String) throws(HubStoreError)
}
