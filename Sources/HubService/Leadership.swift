import Foundation
import HubEngine
import HubStore
import Logging
import ServiceLifecycle

/// Which replica runs the scheduled jobs (drift reports, scheduled self-heal turns; the watches are divided
/// by `ReplicaRoster`) when several share a store (docs/replicas.md): the holder of the `scheduler` lease,
/// taken when it is free or expired and renewed every third of its lifetime. Each term has a number that only grows; a job runs with that term
/// as its fence (`StoreFence.lease`), so a leader that was paused or cut off past its lease writes nothing
/// once another replica has taken over. The lease is trusted locally only until its last renewal plus its
/// lifetime less a margin, so a leader that cannot reach the database stops starting jobs before the lease
/// can pass to another replica.
public final class Leadership: @unchecked Sendable {
    public static let leaseName = "scheduler"
    let store: any WorkSharing
    let owner: String
    let ttl: Double
    let logger: Logger
    private let lock = NSLock()
    private var term: Int64?
    private var validUntil = 0.0
    private var terms = 0

    public init(store: any WorkSharing, owner: String = Replica.id, ttl: Double = Replica.ttl, logger: Logger) {
        self.store = store
        self.owner = owner
        self.ttl = ttl
        self.logger = logger
    }

    /// The fence of the current term, when this replica leads and its lease is known to be held.
    public var fence: StoreFence? {
        lock.withLock {
            guard let term, Double(DispatchTime.now().uptimeNanoseconds) / 1e9 < validUntil else { return nil }
            return .lease(name: Leadership.leaseName, owner: owner, term: term)
        }
    }

    /// How many terms this replica has begun (a new one means a catch-up of missed jobs).
    public var termsBegun: Int { lock.withLock { terms } }

    /// One attempt to take or renew the lease.
    public func renew() {
        let started = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
        let previous = lock.withLock { term }
        let taken: Int64?
        do throws(HubStoreError) {
            taken = try store.acquireLease(Leadership.leaseName, owner: owner, ttl: ttl)
        } catch {
            if previous != nil { logger.warning("the scheduler lease could not be renewed: \(error)") }
            return  // the term lapses locally when validUntil passes
        }
        lock.withLock {
            term = taken
            if let taken {
                validUntil = started + ttl - ttl / 6
                if taken != previous { terms += 1 }
            }
        }
        if let taken, taken != previous {
            logger.notice("this replica (\(owner)) leads the scheduled jobs (term \(taken))")
        } else if taken == nil, let previous {
            logger.notice("this replica no longer leads the scheduled jobs (term \(previous) ended)")
        }
    }

    /// Renews the lease every third of its lifetime until cancelled, then gives it up.
    public func run() async {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            renew()
            try? await Task.sleep(nanoseconds: UInt64(ttl / 3 * 1e9))
        }
        resign()
    }

    /// Gives the lease up (a replica shutting down: another takes over at once).
    public func resign() {
        let held = lock.withLock { () -> Bool in
            defer { term = nil }
            return term != nil
        }
        if held { try? store.releaseLease(Leadership.leaseName, owner: owner) }
    }
}
