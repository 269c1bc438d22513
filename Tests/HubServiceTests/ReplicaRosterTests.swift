import Foundation
import HubService
import Testing

/// How the watches are divided over the replicas present (`ReplicaRoster`, docs/replicas.md): the same
/// division in every process, every replica given a share, and a replica that joins or goes moving only the
/// clusters it gains or loses.
@Suite struct ReplicaRosterTests {
    static let clusters = (0..<3000).map { "prod-eu-\($0)" }
    static let replicas = ["hub-0/17/a1b2c3d4", "hub-1/17/9f8e7d6c", "hub-2/17/0badf00d"]

    static func division(_ replicas: [String]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: clusters.map { ($0, ReplicaRoster.watcher(of: $0, among: replicas) ?? "") })
    }

    @Test func everyReplicaGetsAShareOfAboutAThird() {
        let division = Self.division(Self.replicas)
        let shares = Dictionary(grouping: Self.clusters, by: { division[$0]! }).mapValues(\.count)
        #expect(Set(shares.keys) == Set(Self.replicas))
        for (replica, count) in shares { #expect(count > 800 && count < 1200, "\(replica): \(count) of 3000") }
    }

    @Test func theDivisionDoesNotDependOnTheOrderOfTheList() {
        #expect(Self.division(Self.replicas) == Self.division(Self.replicas.reversed()))
        // fixed values (worked out apart from this code, FNV-1a 64 and a final mix): the division is the same in
        // every process, where Swift's own hash is seeded per process
        let expected = ["prod-eu-0": "hub-1/17/9f8e7d6c", "prod-eu-1": "hub-0/17/a1b2c3d4", "prod-eu-2": "hub-2/17/0badf00d",
                        "prod-eu-3": "hub-1/17/9f8e7d6c"]
        for (cluster, replica) in expected { #expect(ReplicaRoster.watcher(of: cluster, among: Self.replicas) == replica, "\(cluster)") }
    }

    @Test func aReplicaThatGoesMovesOnlyItsOwnClusters() {
        let before = Self.division(Self.replicas)
        let after = Self.division(Array(Self.replicas.dropLast()))
        for cluster in Self.clusters where before[cluster] != Self.replicas.last {
            #expect(after[cluster] == before[cluster], "\(cluster) stayed with its replica")
        }
        #expect(!after.values.contains(Self.replicas.last!))
        // one that joins takes about a quarter, each from the one that had it
        let joined = Self.division(Self.replicas + ["hub-3/18/55aa55aa"])
        let moved = Self.clusters.filter { joined[$0] != before[$0] }
        #expect(moved.allSatisfy { joined[$0] == "hub-3/18/55aa55aa" })
        #expect(moved.count > 550 && moved.count < 950, "\(moved.count) of 3000 moved")
    }

    @Test func noReplicasWatchNothing() {
        #expect(ReplicaRoster.watcher(of: "c", among: []) == nil)
    }
}
