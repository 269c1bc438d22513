import Foundation
import HubStore
import HubStorePostgres
import PolicyCore
import PolicyHubTesting
import Testing

/// Claims and leases of replicas on one PostgreSQL database (issue 16, docs/replicas.md): a cluster is claimed by
/// one owner at a time, an expired claim passes to another with a new token, a write fenced by a lapsed claim
/// or lease writes nothing, and a lease's term grows with every new holder.
@Suite struct PostgresSharingTests {
    static func record(_ store: PostgresHubStore, cluster: String, revision: Int64) -> PushRecord {
        PushRecord(cluster: cluster, environment: "staging", revision: revision, desiredHash: "h-\(cluster)", startedAt: 1,
                   finishedAt: 2, created: 1, updated: 0, deleted: 0, error: nil, target: "t")
    }

    @Test func aClusterIsClaimedByOneReplicaAtATimeAndPassesOnWhenItsClaimExpires() throws {
        let url = try TestPostgres.freshDatabase()
        let first = try PostgresHubStore(url: url)
        let second = try PostgresHubStore(url: url)
        defer { first.shutdown(); second.shutdown() }
        let a = try first.claimClusters(["c1", "c2", "c3"], owner: "replica-a", ttl: 2)
        #expect(Set(a.map(\.cluster)) == ["c1", "c2", "c3"])
        let b = try second.claimClusters(["c3", "c4"], owner: "replica-b", ttl: 30)
        #expect(b.map(\.cluster) == ["c4"], "c3 is replica-a's")
        // claiming again what one holds keeps its token (a renewal); renewing extends only one's own
        let again = try first.claimClusters(["c1"], owner: "replica-a", ttl: 2)
        #expect(again.first?.token == a.first { $0.cluster == "c1" }?.token)
        #expect(try second.renewClaims(["c1", "c4"], owner: "replica-b", ttl: 30) == ["c4"])
        #expect(try first.claims()["c2"] == "replica-a")
        // released: taken at once by the other; expired: taken after its lifetime, with a new token
        try first.releaseClaims(["c1"], owner: "replica-a")
        #expect(try second.claimClusters(["c1"], owner: "replica-b", ttl: 30).map(\.cluster) == ["c1"])
        #expect(try second.claimClusters(["c2"], owner: "replica-b", ttl: 30).isEmpty)
        usleep(2_200_000)
        let taken = try second.claimClusters(["c2"], owner: "replica-b", ttl: 30)
        #expect(taken.map(\.cluster) == ["c2"], "an expired claim passes on")
        let oldToken = try #require(a.first { $0.cluster == "c2" }?.token)
        #expect(try #require(taken.first).token > oldToken)
        #expect(try first.renewClaims(["c2", "c3"], owner: "replica-a", ttl: 2).isEmpty, "a lapsed claim is not renewed")
    }

    @Test func aRecordFencedByALapsedClaimWritesNothing() throws {
        let url = try TestPostgres.freshDatabase()
        let first = try PostgresHubStore(url: url)
        let second = try PostgresHubStore(url: url)
        defer { first.shutdown(); second.shutdown() }
        let revision = try first.recordRevision(environment: "staging", documents: [], author: "t", cause: "test", at: 1)
        let claim = try #require(try first.claimClusters(["c1"], owner: "replica-a", ttl: 2).first)
        // the claim held: the record lands, with the state the claim reads next time
        try StoreFence.with(.claim(cluster: "c1", owner: "replica-a", token: claim.token)) { () throws(HubStoreError) in
            try first.recordPush(Self.record(first, cluster: "c1", revision: revision.id))
        }
        #expect(try first.clusterState(named: "c1")?.appliedHash == "h-c1")
        usleep(2_200_000)
        let taken = try #require(try second.claimClusters(["c1"], owner: "replica-b", ttl: 30).first)
        #expect(taken.state?.appliedHash == "h-c1", "a claim reads the cluster's state with it")
        // replica-a wakes up after its claim passed on: its record is refused and changes nothing
        var late = Self.record(first, cluster: "c1", revision: revision.id)
        late.desiredHash = "stale"
        #expect {
            try StoreFence.with(.claim(cluster: "c1", owner: "replica-a", token: claim.token)) { () throws(HubStoreError) in
                try first.recordPush(late)
            }
        } throws: { error in
            guard let error = error as? HubStoreError, case .fenced = error else { return false }
            return error.description.contains("no longer holds the claim on c1")
        }
        #expect(try first.clusterState(named: "c1")?.appliedHash == "h-c1")
    }

    @Test func aLeaseHasOneHolderAndATermThatGrowsWithEveryNewOne() throws {
        let url = try TestPostgres.freshDatabase()
        let first = try PostgresHubStore(url: url)
        let second = try PostgresHubStore(url: url)
        defer { first.shutdown(); second.shutdown() }
        let term = try #require(try first.acquireLease("scheduler", owner: "replica-a", ttl: 2))
        #expect(try second.acquireLease("scheduler", owner: "replica-b", ttl: 2) == nil)
        #expect(try first.acquireLease("scheduler", owner: "replica-a", ttl: 2) == term, "renewed: the same term")
        let fence = StoreFence.lease(name: "scheduler", owner: "replica-a", term: term)
        _ = try StoreFence.with(fence) { () throws(HubStoreError) in
            try first.recordDriftReport(json: "{}", findings: 0, byEnvironment: [:], at: 1)
        }
        usleep(2_200_000)
        let next = try #require(try second.acquireLease("scheduler", owner: "replica-b", ttl: 30))
        #expect(next > term)
        // the old leader's report after the takeover is refused: one report stored, not two
        #expect(throws: HubStoreError.self) {
            try StoreFence.with(fence) { () throws(HubStoreError) in
                _ = try first.recordDriftReport(json: "{}", findings: 0, byEnvironment: [:], at: 2)
            }
        }
        #expect(try first.driftReports(limit: 10).count == 1)
        // given up: the other side takes it at once
        try second.releaseLease("scheduler", owner: "replica-b")
        #expect(try first.acquireLease("scheduler", owner: "replica-a", ttl: 2) ?? 0 > next)
    }

    @Test func theReplicasPresentAreThoseWhosePresenceHasNotExpired() throws {
        let url = try TestPostgres.freshDatabase()
        let first = try PostgresHubStore(url: url)
        let second = try PostgresHubStore(url: url)
        defer { first.shutdown(); second.shutdown() }
        #expect(try first.presentReplicas(owner: "replica-a", ttl: 2) == ["replica-a"])
        #expect(try second.presentReplicas(owner: "replica-b", ttl: 30) == ["replica-a", "replica-b"])
        // presence is not a lease of the scheduler: the leader can still be elected
        #expect(try first.acquireLease("scheduler", owner: "replica-a", ttl: 30) != nil)
        usleep(2_200_000)
        #expect(try second.presentReplicas(owner: "replica-b", ttl: 30) == ["replica-b"], "replica-a's presence expired")
        #expect(try first.presentReplicas(owner: "replica-a", ttl: 30) == ["replica-a", "replica-b"], "and comes back when renewed")
        try second.leaveReplicas(owner: "replica-b")
        #expect(try first.presentReplicas(owner: "replica-a", ttl: 30) == ["replica-a"], "a replica that left is gone at once")
    }
}

