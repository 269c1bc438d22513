import Foundation
import HubEngine
import HubStore
import Logging

/// The replicas present on a shared store, and which of them watches which cluster (docs/replicas.md): each
/// replica marks itself present (a lease of its own, renewed every third of its lifetime) and reads who else
/// is; a cluster is watched by the replica that ranks highest for it by rendezvous hashing over those present.
/// Every replica computes the same division from the same list, without talking to the others; when one
/// joins or goes (its presence expires), only the clusters it gains or loses move. During such a change two
/// replicas may both watch a cluster for a moment, which costs a watch and nothing else: a repair is a push,
/// and a push is claimed cluster by cluster.
public final class ReplicaRoster: @unchecked Sendable {
    let store: any WorkSharing
    public let owner: String
    public let ttl: Double
    let logger: Logger
    private let lock = NSLock()
    private var present: [String]

    public init(store: any WorkSharing, owner: String = Replica.id, ttl: Double = Replica.ttl, logger: Logger) {
        self.store = store
        self.owner = owner
        self.ttl = ttl
        self.logger = logger
        present = [owner]
    }

    /// The replicas present at the last refresh (this one always among them).
    public var replicas: [String] { lock.withLock { present } }

    /// Renews this replica's presence and reads the others'; true when the list changed. A store that does not
    /// answer leaves the last list in place (this replica keeps watching what it watched).
    @discardableResult
    public func refresh() -> Bool {
        let found: [String]
        do throws(HubStoreError) {
            found = try store.presentReplicas(owner: owner, ttl: ttl)
        } catch {
            logger.warning("the replicas present could not be read: \(error); the watches stay as they are")
            return false
        }
        let next = Array(Set(found + [owner])).sorted()
        return lock.withLock {
            defer { present = next }
            return present != next
        }
    }

    /// Whether this replica watches `cluster`.
    public func watches(_ cluster: String) -> Bool {
        ReplicaRoster.watcher(of: cluster, among: replicas) == owner
    }

    /// The replica of `replicas` that watches `cluster`: the highest hash of the pair, ties broken by name.
    public static func watcher(of cluster: String, among replicas: [String]) -> String? {
        replicas.max { (rank(cluster, $0), $0) < (rank(cluster, $1), $1) }
    }

    /// FNV-1a of the cluster and the replica: the same in every process (Swift's own hash is seeded per process).
    static func rank(_ cluster: String, _ replica: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array(cluster.utf8) + [0] + Array(replica.utf8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        // FNV's last bytes move its high bits little: mix them so that similar names spread
        hash ^= hash >> 33
        hash = hash &* 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        return hash
    }

    /// Ends this replica's presence (a replica shutting down: the others take its watches at once).
    public func leave() {
        try? store.leaveReplicas(owner: owner)
    }
}
