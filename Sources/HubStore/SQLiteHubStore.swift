import GRDB
import PolicyCore

/// `HubStore` in a SQLite file (the system SQLite through GRDB): WAL journal, foreign keys, versioned
/// migrations. Every change is one transaction, so a killed process leaves the previous state whole.
///
/// Commits of revisions and audit entries are flushed to disk before they return (`synchronous = FULL`);
/// push records, cluster marks and drift reports are not (`NORMAL`, SQLite's advice for WAL): a killed
/// process keeps them all, and a power loss may forget the last ones, which the next push finds out again by
/// comparing the member. One flush per cluster cost a push to 1,000 clusters about a second.
public final class SQLiteHubStore: HubStore {
    public let path: String
    private let pool: DatabasePool

    /// The schema versions, in order. Appending one is how the schema changes.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-revisions-pushes-audit") { db in
            try db.execute(sql: """
                CREATE TABLE document (
                    hash TEXT PRIMARY KEY,
                    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                    source TEXT NOT NULL, body TEXT NOT NULL);
                CREATE TABLE revision (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    environment TEXT NOT NULL,
                    parent INTEGER REFERENCES revision(id),
                    author TEXT NOT NULL, created_at REAL NOT NULL, cause TEXT NOT NULL,
                    tree_hash TEXT NOT NULL, document_count INTEGER NOT NULL);
                CREATE INDEX revision_environment ON revision(environment, id);
                CREATE TABLE revision_document (
                    revision INTEGER NOT NULL REFERENCES revision(id),
                    document TEXT NOT NULL REFERENCES document(hash),
                    PRIMARY KEY (revision, document)) WITHOUT ROWID;
                CREATE TABLE environment_state (
                    environment TEXT PRIMARY KEY,
                    desired_revision INTEGER NOT NULL REFERENCES revision(id));
                CREATE TABLE cluster_state (
                    cluster TEXT PRIMARY KEY, environment TEXT NOT NULL,
                    applied_revision INTEGER REFERENCES revision(id), applied_hash TEXT,
                    last_push_at REAL, last_result TEXT, last_error TEXT);
                CREATE TABLE push (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    cluster TEXT NOT NULL, environment TEXT NOT NULL,
                    revision INTEGER NOT NULL REFERENCES revision(id), desired_hash TEXT NOT NULL,
                    started_at REAL NOT NULL, finished_at REAL NOT NULL,
                    created INTEGER NOT NULL, updated INTEGER NOT NULL, deleted INTEGER NOT NULL, error TEXT);
                CREATE TABLE audit (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);
                """)
        }
        migrator.registerMigration("v2-applied-at-drift-checks") { db in
            try db.execute(sql: """
                ALTER TABLE cluster_state ADD COLUMN applied_at REAL;
                CREATE TABLE drift_check (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    environment TEXT NOT NULL, at REAL NOT NULL, findings INTEGER NOT NULL);
                """)
        }
        migrator.registerMigration("v3-drift-reports") { db in
            try db.execute(sql: """
                CREATE TABLE drift_report (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    at REAL NOT NULL, findings INTEGER NOT NULL, report TEXT NOT NULL);
                """)
        }
        migrator.registerMigration("v4-applied-objects-target-out-of-step") { db in
            try db.execute(sql: """
                ALTER TABLE cluster_state ADD COLUMN applied_target TEXT;
                ALTER TABLE cluster_state ADD COLUMN out_of_step TEXT;
                CREATE TABLE applied_object (
                    cluster TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                    hash TEXT NOT NULL, revision INTEGER NOT NULL,
                    PRIMARY KEY (cluster, kind, namespace, name)) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v5-revision-commits") { db in
            try db.execute(sql: """
                CREATE TABLE revision_commit (
                    revision INTEGER PRIMARY KEY REFERENCES revision(id),
                    commit_id TEXT NOT NULL, commit_author TEXT NOT NULL, committer TEXT NOT NULL,
                    committed_at REAL NOT NULL, subject TEXT NOT NULL, signature TEXT NOT NULL,
                    signer TEXT, signing_key TEXT, dirty INTEGER NOT NULL, signature_required INTEGER NOT NULL);
                """)
        }
        // the soak of one promoted document reads the first successful push of a range of revisions per cluster
        migrator.registerMigration("v6-push-by-cluster") { db in
            try db.execute(sql: "CREATE INDEX push_cluster_revision ON push(cluster, revision)")
        }
        return migrator
    }

    /// Revisions with the commit each came from.
    static let revisionSelect = "SELECT revision.*, revision_commit.* FROM revision LEFT JOIN revision_commit ON revision_commit.revision = revision.id"

    /// Opens (creating when needed) the state file at `path` and brings its schema up to date.
    public init(path: String) throws(HubStoreError) {
        self.path = path
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(30)
        configuration.label = "policyhub-state"
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try SQLiteHubStore.migrator.migrate(pool)
        } catch {
            throw .cannotOpen(path: path, reason: SQLiteHubStore.reason(error))
        }
    }

    /// The applied migrations, oldest first.
    public func schemaVersions() throws(HubStoreError) -> [String] {
        try read("read the schema version") { db in try SQLiteHubStore.migrator.appliedMigrations(db) }
    }

    /// `PRAGMA integrity_check`: "ok" for a sound file.
    public func integrityCheck() throws(HubStoreError) -> String {
        try read("check integrity") { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "" }
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "\(error.resultCode)" }
        return "\(error)"
    }

    private func read<T>(_ operation: String, _ body: (Database) throws -> T) throws(HubStoreError) -> T {
        do {
            return try pool.read(body)
        } catch {
            throw .failed(path: path, operation: operation, reason: SQLiteHubStore.reason(error))
        }
    }

    /// One transaction; a `durable` one is on disk when this returns.
    private func write<T>(_ operation: String, durable: Bool = false, _ body: (Database) throws -> T) throws(HubStoreError) -> T {
        do {
            guard durable else { return try pool.write(body) }
            return try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                defer { try? db.execute(sql: "PRAGMA synchronous = NORMAL") }
                var result: T?
                try db.inTransaction {
                    result = try body(db)
                    return .commit
                }
                guard let result else { throw HubStoreError.failed(path: path, operation: operation, reason: "the transaction returned nothing") }
                return result
            }
        } catch let error as HubStoreError {
            throw error
        } catch {
            throw .failed(path: path, operation: operation, reason: SQLiteHubStore.reason(error))
        }
    }

    // MARK: - Revisions

    /// The tree hash a revision of these documents gets.
    public static func treeHash(_ documents: [StoredDocument]) -> String { StoredDocument.treeHash(documents) }

    /// The lock files sit beside the state file.
    public var lockBase: String? { path }

    public func inProcessLock(_ purpose: String) -> InProcessLock { InProcessLock() }

    public func recordRevision(environment: String, documents: [StoredDocument], author: String, cause: String,
                               at: Double, expectedParent: ExpectedParent = .any, commit: CommitProvenance? = nil) throws(HubStoreError) -> Revision {
        try write("record a revision of \(environment)", durable: true) { db in
            let parent = try Int64.fetchOne(db, sql: "SELECT desired_revision FROM environment_state WHERE environment = ?",
                                            arguments: [environment])
            if case .mustBe(let expected) = expectedParent, expected != parent {
                throw HubStoreError.conflict(environment: environment, expected: expected, current: parent)
            }
            for document in documents {
                try db.execute(sql: """
                    INSERT OR IGNORE INTO document (hash, kind, namespace, name, source, body) VALUES (?, ?, ?, ?, ?, ?)
                    """, arguments: [document.hash, document.identity.kind.rawValue, document.identity.namespace,
                                     document.identity.name, document.source, document.body])
            }
            let treeHash = SQLiteHubStore.treeHash(documents)
            try db.execute(sql: """
                INSERT INTO revision (environment, parent, author, created_at, cause, tree_hash, document_count)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [environment, parent, author, at, cause, treeHash, documents.count])
            let id = db.lastInsertedRowID
            for hash in Set(documents.map(\.hash)) {
                try db.execute(sql: "INSERT INTO revision_document (revision, document) VALUES (?, ?)", arguments: [id, hash])
            }
            if let commit {
                try db.execute(sql: """
                    INSERT INTO revision_commit (revision, commit_id, commit_author, committer, committed_at, subject, signature,
                                                 signer, signing_key, dirty, signature_required)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [id, commit.commit, commit.author, commit.committer, commit.committedAt, commit.subject,
                                     commit.signature.rawValue, commit.signer, commit.signingKey, commit.dirty,
                                     commit.signatureRequired])
            }
            try db.execute(sql: """
                INSERT INTO environment_state (environment, desired_revision) VALUES (?, ?)
                ON CONFLICT(environment) DO UPDATE SET desired_revision = excluded.desired_revision
                """, arguments: [environment, id])
            let revision = Revision(id: id, environment: environment, parent: parent, author: author, createdAt: at, cause: cause,
                                    treeHash: treeHash, documentCount: documents.count, commit: commit)
            try db.execute(sql: "INSERT INTO audit (at, actor, action, detail) VALUES (?, ?, ?, ?)",
                           arguments: [at, author, "revision", Self.revisionAuditDetail(revision)])
            return revision
        }
    }

    static func revision(_ row: Row) -> Revision {
        var commit: CommitProvenance?
        if let id: String = row["commit_id"] {
            commit = CommitProvenance(commit: id, author: row["commit_author"], committer: row["committer"],
                                      committedAt: row["committed_at"], subject: row["subject"],
                                      signature: SignatureStatus(rawValue: row["signature"]) ?? .unknownKey,
                                      signer: row["signer"], signingKey: row["signing_key"], dirty: row["dirty"],
                                      signatureRequired: row["signature_required"])
        }
        return Revision(id: row["id"], environment: row["environment"], parent: row["parent"], author: row["author"],
                        createdAt: row["created_at"], cause: row["cause"], treeHash: row["tree_hash"],
                        documentCount: row["document_count"], commit: commit)
    }

    public func desiredRevision(environment: String) throws(HubStoreError) -> Revision? {
        try read("read the desired revision of \(environment)") { db in
            try Row.fetchOne(db, sql: """
                \(SQLiteHubStore.revisionSelect) JOIN environment_state ON revision.id = environment_state.desired_revision
                WHERE environment_state.environment = ?
                """, arguments: [environment]).map(SQLiteHubStore.revision)
        }
    }

    public func revision(id: Int64) throws(HubStoreError) -> Revision {
        let found = try read("read revision \(id)") { db in
            try Row.fetchOne(db, sql: "\(SQLiteHubStore.revisionSelect) WHERE revision.id = ?", arguments: [id]).map(SQLiteHubStore.revision)
        }
        guard let found else { throw .unknownRevision(id) }
        return found
    }

    public func documents(revision: Int64) throws(HubStoreError) -> [StoredDocument] {
        _ = try self.revision(id: revision)
        return try read("read the documents of revision \(revision)") { db in
            try Row.fetchAll(db, sql: """
                SELECT document.* FROM revision_document JOIN document ON document.hash = revision_document.document
                WHERE revision_document.revision = ? ORDER BY kind, namespace, name
                """, arguments: [revision]).compactMap { row -> StoredDocument? in
                guard let kind = ObjectKind(rawValue: row["kind"]) else { return nil }
                return StoredDocument(hash: row["hash"], identity: ObjectIdentity(kind: kind, namespace: row["namespace"],
                                                                                  name: row["name"]),
                                      source: row["source"], body: row["body"])
            }
        }
    }

    public func revisions(environment: String?) throws(HubStoreError) -> [Revision] {
        try read("list revisions") { db in
            if let environment {
                return try Row.fetchAll(db, sql: "\(SQLiteHubStore.revisionSelect) WHERE revision.environment = ? ORDER BY revision.id DESC",
                                        arguments: [environment]).map(SQLiteHubStore.revision)
            }
            return try Row.fetchAll(db, sql: "\(SQLiteHubStore.revisionSelect) ORDER BY revision.id DESC").map(SQLiteHubStore.revision)
        }
    }

    // MARK: - Clusters and pushes

    public func clusterStates() throws(HubStoreError) -> [ClusterState] {
        try read("read cluster state") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM cluster_state ORDER BY cluster").map(SQLiteHubStore.clusterState)
        }
    }

    /// One cluster's state, or nil before its first push (one indexed row, for the daemon's status reads).
    public func clusterState(named cluster: String) throws(HubStoreError) -> ClusterState? {
        try read("read the state of \(cluster)") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM cluster_state WHERE cluster = ?", arguments: [cluster])
                .map(SQLiteHubStore.clusterState)
        }
    }

    static func clusterState(_ row: Row) -> ClusterState {
        ClusterState(cluster: row["cluster"], environment: row["environment"],
                     appliedRevision: row["applied_revision"], appliedHash: row["applied_hash"], appliedAt: row["applied_at"],
                     lastPushAt: row["last_push_at"], lastResult: row["last_result"], lastError: row["last_error"],
                     appliedTarget: row["applied_target"], outOfStep: row["out_of_step"])
    }

    public func recordPush(_ push: PushRecord) throws(HubStoreError) {
        try write("record the push of \(push.cluster)") { db in try SQLiteHubStore.insert(push, into: db) }
    }

    /// All in one transaction; when it fails, each push on its own, so that one bad record costs only itself.
    public func recordPushes(_ pushes: [PushRecord]) -> [HubStoreError?] {
        if pushes.count > 1, (try? write("record the pushes of \(pushes.count) clusters", { db -> Bool in
            for push in pushes { try SQLiteHubStore.insert(push, into: db) }
            return true
        })) == true {
            return Array(repeating: nil, count: pushes.count)
        }
        return recordEach(pushes)
    }

    private static func insert(_ push: PushRecord, into db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT INTO push (cluster, environment, revision, desired_hash, started_at, finished_at, created, updated,
                              deleted, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [push.cluster, push.environment, push.revision, push.desiredHash, push.startedAt,
                             push.finishedAt, push.created, push.updated, push.deleted, push.error])
        if push.error == nil {
            try db.cachedStatement(sql: """
                INSERT INTO cluster_state (cluster, environment, applied_revision, applied_hash, applied_at, last_push_at,
                                           last_result, last_error, applied_target, out_of_step)
                VALUES (?, ?, ?, ?, ?, ?, 'ok', NULL, ?, NULL)
                ON CONFLICT(cluster) DO UPDATE SET environment = excluded.environment,
                    applied_at = CASE WHEN cluster_state.applied_revision IS excluded.applied_revision
                                      THEN cluster_state.applied_at ELSE excluded.applied_at END,
                    applied_revision = excluded.applied_revision, applied_hash = excluded.applied_hash,
                    last_push_at = excluded.last_push_at, last_result = 'ok', last_error = NULL,
                    applied_target = excluded.applied_target, out_of_step = NULL
                """).execute(arguments: [push.cluster, push.environment, push.revision, push.desiredHash, push.finishedAt,
                                 push.finishedAt, push.target])
        } else {
            try db.cachedStatement(sql: """
                INSERT INTO cluster_state (cluster, environment, last_push_at, last_result, last_error, out_of_step)
                VALUES (?, ?, ?, 'failed', ?, ?)
                ON CONFLICT(cluster) DO UPDATE SET environment = excluded.environment,
                    last_push_at = excluded.last_push_at, last_result = 'failed', last_error = excluded.last_error,
                    out_of_step = excluded.out_of_step
                """).execute(arguments: [push.cluster, push.environment, push.finishedAt, push.error, push.error])
        }
        if push.error == nil, let changes = push.objectChanges {
            let upsert = try db.cachedStatement(sql: """
                INSERT INTO applied_object (cluster, kind, namespace, name, hash, revision) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (cluster, kind, namespace, name) DO UPDATE SET hash = excluded.hash, revision = excluded.revision
                """)
            for object in changes.write {
                try upsert.execute(arguments: [push.cluster, object.identity.kind.rawValue, object.identity.namespace,
                                               object.identity.name, object.hash, object.revision])
            }
            let delete = try db.cachedStatement(sql: "DELETE FROM applied_object WHERE cluster = ? AND kind = ? AND namespace = ? AND name = ?")
            for identity in changes.remove {
                try delete.execute(arguments: [push.cluster, identity.kind.rawValue, identity.namespace, identity.name])
            }
        } else if let objects = push.objects {
            try db.execute(sql: "DELETE FROM applied_object WHERE cluster = ?", arguments: [push.cluster])
            let insert = try db.cachedStatement(sql: """
                INSERT INTO applied_object (cluster, kind, namespace, name, hash, revision) VALUES (?, ?, ?, ?, ?, ?)
                """)
            for object in objects {
                try insert.execute(arguments: [push.cluster, object.identity.kind.rawValue, object.identity.namespace,
                                               object.identity.name, object.hash, object.revision])
            }
        }
    }

    public func appliedObjects(cluster: String) throws(HubStoreError) -> [ObjectIdentity: AppliedObject] {
        try read("read the objects applied to \(cluster)") { db in
            // columns by position: a lookup by name per value was most of reading a large cluster's set
            var out: [ObjectIdentity: AppliedObject] = [:]
            out.reserveCapacity(256)
            let rows = try db.cachedStatement(sql: "SELECT kind, namespace, name, hash, revision FROM applied_object WHERE cluster = ?")
            let cursor = try Row.fetchCursor(rows, arguments: [cluster])
            while let row = try cursor.next() {
                guard let kind = ObjectKind(rawValue: row[0]) else { continue }
                let identity = ObjectIdentity(kind: kind, namespace: row[1], name: row[2])
                out[identity] = AppliedObject(identity: identity, hash: row[3], revision: row[4])
            }
            return out
        }
    }

    /// Up to 500 clusters a query (SQLite's bound on a statement's parameters is far above).
    public func appliedObjects(clusters: [String]) throws(HubStoreError) -> [String: [ObjectIdentity: AppliedObject]] {
        try read("read the objects applied to \(clusters.count) clusters") { db in
            var out: [String: [ObjectIdentity: AppliedObject]] = [:]
            for cluster in clusters { out[cluster] = [:] }
            var start = clusters.startIndex
            while start < clusters.endIndex {
                let chunk = clusters[start..<min(start + 500, clusters.endIndex)]
                start = chunk.endIndex
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
                let rows = try db.makeStatement(sql: "SELECT cluster, kind, namespace, name, hash, revision FROM applied_object WHERE cluster IN (\(marks))")
                let cursor = try Row.fetchCursor(rows, arguments: StatementArguments(Array(chunk)))
                while let row = try cursor.next() {
                    guard let kind = ObjectKind(rawValue: row[1]) else { continue }
                    let identity = ObjectIdentity(kind: kind, namespace: row[2], name: row[3])
                    out[row[0], default: [:]][identity] = AppliedObject(identity: identity, hash: row[4], revision: row[5])
                }
            }
            return out
        }
    }

    public func markOutOfStep(cluster: String, environment: String, reason: String?) throws(HubStoreError) {
        try write("mark \(cluster) out of step") { db in
            try db.execute(sql: """
                INSERT INTO cluster_state (cluster, environment, out_of_step) VALUES (?, ?, ?)
                ON CONFLICT(cluster) DO UPDATE SET out_of_step = excluded.out_of_step
                """, arguments: [cluster, environment, reason])
        }
    }

    public func firstSuccessfulPush(cluster: String, environment: String, revisions first: Int64, through last: Int64) throws(HubStoreError) -> Double? {
        try read("read the pushes of \(cluster)") { db in
            try Double.fetchOne(db, sql: """
                SELECT MIN(finished_at) FROM push
                WHERE cluster = ? AND environment = ? AND error IS NULL AND revision BETWEEN ? AND ?
                """, arguments: [cluster, environment, first, last])
        }
    }

    public func markApplied(cluster: String, environment: String, revision: Int64, hash: String,
                            at: Double) throws(HubStoreError) {
        try write("mark \(cluster) applied") { db in
            try db.execute(sql: """
                INSERT INTO cluster_state (cluster, environment, applied_revision, applied_hash, applied_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(cluster) DO UPDATE SET environment = excluded.environment,
                    applied_at = CASE WHEN cluster_state.applied_revision IS excluded.applied_revision
                                      THEN cluster_state.applied_at ELSE excluded.applied_at END,
                    applied_revision = excluded.applied_revision, applied_hash = excluded.applied_hash
                """, arguments: [cluster, environment, revision, hash, at])
        }
    }

    /// Stores a drift report (its JSON) and one drift check per environment, in one transaction.
    public func recordDriftReport(json: String, findings: Int, byEnvironment: [String: Int], at: Double) throws(HubStoreError) -> Int64 {
        try write("record a drift report") { db in
            try db.execute(sql: "INSERT INTO drift_report (at, findings, report) VALUES (?, ?, ?)", arguments: [at, findings, json])
            let id = db.lastInsertedRowID
            for (environment, count) in byEnvironment.sorted(by: { $0.key < $1.key }) {
                try db.execute(sql: "INSERT INTO drift_check (environment, at, findings) VALUES (?, ?, ?)",
                               arguments: [environment, at, count])
            }
            return id
        }
    }

    /// Drift reports, newest first: id, time, findings and the report's JSON.
    public func driftReports(limit: Int) throws(HubStoreError) -> [StoredDriftReport] {
        try read("read drift reports") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM drift_report ORDER BY id DESC LIMIT ?", arguments: [limit]).map {
                StoredDriftReport(id: $0["id"], at: $0["at"], findings: $0["findings"], json: $0["report"])
            }
        }
    }

    public func recordDriftCheck(environment: String, findings: Int, at: Double) throws(HubStoreError) {
        try write("record a drift check") { db in
            try db.execute(sql: "INSERT INTO drift_check (environment, at, findings) VALUES (?, ?, ?)",
                           arguments: [environment, at, findings])
        }
    }

    public func latestDriftCheck(environment: String) throws(HubStoreError) -> (at: Double, findings: Int)? {
        try read("read the latest drift check") { db in
            try Row.fetchOne(db, sql: "SELECT at, findings FROM drift_check WHERE environment = ? ORDER BY id DESC LIMIT 1",
                             arguments: [environment]).map { (at: $0["at"], findings: $0["findings"]) }
        }
    }

    // MARK: - Audit

    public func audit(actor: String, action: String, detail: String, at: Double) throws(HubStoreError) {
        try write("append to the audit log", durable: true) { db in
            try db.execute(sql: "INSERT INTO audit (at, actor, action, detail) VALUES (?, ?, ?, ?)",
                           arguments: [at, actor, action, detail])
        }
    }

    public func auditLog(limit: Int) throws(HubStoreError) -> [AuditEntry] {
        try read("read the audit log") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit ORDER BY id DESC LIMIT ?", arguments: [limit]).map { row in
                AuditEntry(id: row["id"], at: row["at"], actor: row["actor"], action: row["action"], detail: row["detail"])
            }
        }
    }
}
