import HubStore
import PostgresNIO

/// Claims and leases (`WorkSharing`): rows with an owner, a token and an expiry on the database's clock.
/// A claim or lease is taken with one upsert that only overwrites a row that is the taker's own or expired;
/// two replicas taking the same row at once are ordered by its row lock, and the second sees the first's
/// row. Clusters are claimed in name order so that two batches never wait on each other in a cycle.
extension PostgresHubStore {
    /// The task's fences (`StoreFence.active`), each checked and its row share-locked until the transaction
    /// ends: a takeover waits for this transaction, and a lapsed fence aborts it before it writes.
    func checkFences(_ tx: Transaction) throws {
        for fence in StoreFence.active {
            let held: PostgresRandomAccessRow?
            switch fence {
            case .lease(let name, let owner, let term):
                held = try tx.one("""
                    SELECT 1 FROM hub_lease WHERE name = \(name) AND owner = \(owner) AND term = \(term)
                        AND expires_at > clock_timestamp() FOR SHARE
                    """)
            case .claim(let cluster, let owner, let token):
                held = try tx.one("""
                    SELECT 1 FROM cluster_claim WHERE cluster = \(cluster) AND owner = \(owner) AND token = \(token)
                        AND expires_at > clock_timestamp() FOR SHARE
                    """)
            }
            if held == nil { throw HubStoreError.fenced(fence) }
        }
    }

    public func claimClusters(_ clusters: [String], owner: String, ttl: Double) throws(HubStoreError) -> [ClusterClaim] {
        guard !clusters.isEmpty else { return [] }
        let sorted = clusters.sorted()
        return try transaction("claim \(clusters.count) cluster(s)") { tx in
            let taken = try tx.query("""
                INSERT INTO cluster_claim (cluster, owner, token, expires_at)
                SELECT c, \(owner), nextval('claim_token'), clock_timestamp() + make_interval(secs => \(ttl))
                FROM unnest(\(sorted)::text[]) AS c ORDER BY c
                ON CONFLICT (cluster) DO UPDATE SET
                    token = CASE WHEN cluster_claim.owner = excluded.owner AND cluster_claim.expires_at > clock_timestamp()
                                 THEN cluster_claim.token ELSE excluded.token END,
                    owner = excluded.owner, expires_at = excluded.expires_at
                WHERE cluster_claim.owner = excluded.owner OR cluster_claim.expires_at <= clock_timestamp()
                RETURNING cluster, token
                """).map { (try $0["cluster"].decode(String.self), try $0["token"].decode(Int64.self)) }
            guard !taken.isEmpty else { return [] }
            let names = taken.map(\.0)
            var states: [String: ClusterState] = [:]
            for row in try tx.query(PostgresQuery(unsafeSQL: "SELECT \(Self.clusterColumns) FROM cluster_state WHERE cluster = ANY($1)",
                                                  binds: Self.binds(names))) {
                let state = try Self.clusterState(row)
                states[state.cluster] = state
            }
            return taken.map { ClusterClaim(cluster: $0.0, token: $0.1, state: states[$0.0]) }
        }
    }

    public func renewClaims(_ clusters: [String], owner: String, ttl: Double) throws(HubStoreError) -> Set<String> {
        guard !clusters.isEmpty else { return [] }
        return try transaction("renew \(clusters.count) claim(s)") { tx in
            Set(try tx.query("""
                UPDATE cluster_claim SET expires_at = clock_timestamp() + make_interval(secs => \(ttl))
                WHERE owner = \(owner) AND cluster = ANY(\(clusters.sorted())::text[]) AND expires_at > clock_timestamp()
                RETURNING cluster
                """).map { try $0["cluster"].decode(String.self) })
        }
    }

    public func releaseClaims(_ clusters: [String], owner: String) throws(HubStoreError) {
        guard !clusters.isEmpty else { return }
        try transaction("release \(clusters.count) claim(s)") { tx in
            try tx.query("DELETE FROM cluster_claim WHERE owner = \(owner) AND cluster = ANY(\(clusters.sorted())::text[])")
        }
    }

    public func claims() throws(HubStoreError) -> [String: String] {
        try transaction("read the claims") { tx in
            var held: [String: String] = [:]
            for row in try tx.query("SELECT cluster, owner FROM cluster_claim WHERE expires_at > clock_timestamp()") {
                held[try row["cluster"].decode(String.self)] = try row["owner"].decode(String.self)
            }
            return held
        }
    }

    public func acquireLease(_ name: String, owner: String, ttl: Double) throws(HubStoreError) -> Int64? {
        try transaction("take the \(name) lease") { tx in
            try tx.one("""
                INSERT INTO hub_lease (name, owner, term, expires_at)
                VALUES (\(name), \(owner), 1, clock_timestamp() + make_interval(secs => \(ttl)))
                ON CONFLICT (name) DO UPDATE SET
                    term = CASE WHEN hub_lease.owner = excluded.owner AND hub_lease.expires_at > clock_timestamp()
                                THEN hub_lease.term ELSE hub_lease.term + 1 END,
                    owner = excluded.owner, expires_at = excluded.expires_at
                WHERE hub_lease.owner = excluded.owner OR hub_lease.expires_at <= clock_timestamp()
                RETURNING term
                """).map { try $0["term"].decode(Int64.self) }
        }
    }

    public func releaseLease(_ name: String, owner: String) throws(HubStoreError) {
        try transaction("give up the \(name) lease") { tx in
            // expired now rather than deleted: the term keeps counting up
            try tx.query("UPDATE hub_lease SET expires_at = clock_timestamp() WHERE name = \(name) AND owner = \(owner)")
        }
    }

    /// A replica's presence is a row of `hub_lease` named `replica/OWNER`; rows of replicas gone for more than
    /// an hour are removed as the others renew theirs.
    static let presencePrefix = "replica/"

    public func presentReplicas(owner: String, ttl: Double) throws(HubStoreError) -> [String] {
        try transaction("mark this replica present") { tx in
            let prefix = PostgresHubStore.presencePrefix
            try tx.query("""
                INSERT INTO hub_lease (name, owner, term, expires_at)
                VALUES (\(prefix + owner), \(owner), 1, clock_timestamp() + make_interval(secs => \(ttl)))
                ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at
                """)
            try tx.query("""
                DELETE FROM hub_lease WHERE starts_with(name, \(prefix)) AND expires_at < clock_timestamp() - interval '1 hour'
                """)
            return try tx.query("""
                SELECT owner FROM hub_lease WHERE starts_with(name, \(prefix)) AND expires_at > clock_timestamp() ORDER BY owner
                """).map { try $0["owner"].decode(String.self) }
        }
    }

    public func leaveReplicas(owner: String) throws(HubStoreError) {
        try releaseLease(PostgresHubStore.presencePrefix + owner, owner: owner)
    }
}
