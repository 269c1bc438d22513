import Foundation
import HubStore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PolicyCore
import PostgresNIO

/// The hub's state in PostgreSQL (`state: postgres://...`): the same `HubStore` as the SQLite file, passing the
/// same contract suite, for several daemons on one database. Its calls are synchronous as the protocol is:
/// each one takes a connection of a small pool, runs its statements in one transaction on postgres-nio's own
/// event loop, and waits for it (never on an event loop, so it cannot block one). Revision writes are
/// serialised by the database: a transaction-scoped advisory lock per environment, then the compare and swap
/// on its desired revision. A connection the server closed (a restart) is replaced on the next call. The
/// password never appears in a message: the location is always shown without it.
public final class PostgresHubStore: HubStore, DatabaseLocking, WorkSharing, @unchecked Sendable {
    /// The database's location without its password, for messages.
    public let location: String
    let configuration: PostgresConnection.Configuration
    let group: MultiThreadedEventLoopGroup
    let logger: Logger
    private let lock = NSLock()
    private var idle: [PostgresConnection] = []
    private var nextID = 1
    private let processLocks = InProcessLocks()
    /// Connections kept open between calls.
    let keep = 8

    /// Connects to the database `url` names and brings its schema up to date. `password`: from a file or the
    /// environment, never from the URL's own text when avoidable (see `PostgresLocation`).
    public init(_ location: PostgresLocation) throws(HubStoreError) {
        self.location = location.display
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var logger = Logger(label: "policyhub.postgres")
        logger.logLevel = .critical
        self.logger = logger
        do {
            self.configuration = try location.configuration()
        } catch {
            try? group.syncShutdownGracefully()
            throw .cannotOpen(path: location.display, reason: PostgresHubStore.reason(error))
        }
        do {
            try migrate()
        } catch {
            shutdown()
            if case .failed(_, _, let reason) = error { throw .cannotOpen(path: location.display, reason: reason) }
            throw error
        }
    }

    deinit { shutdown() }

    /// Closes every connection and stops the event loop.
    public func shutdown() {
        let connections = lock.withLock { () -> [PostgresConnection] in
            defer { idle = [] }
            return idle
        }
        for connection in connections { _ = try? connection.close().wait() }
        try? group.syncShutdownGracefully()
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return message + (error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            return "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
        }
        if let error = error as? HubStoreError { return error.description }
        return "\(error)"
    }

    // MARK: - Connections and transactions

    private func connection() throws -> PostgresConnection {
        let reused = lock.withLock { () -> PostgresConnection? in
            while let connection = idle.popLast() {
                if !connection.isClosed { return connection }
            }
            return nil
        }
        if let reused { return reused }
        let id = lock.withLock { () -> Int in
            defer { nextID += 1 }
            return nextID
        }
        return try PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: logger).wait()
    }

    private func release(_ connection: PostgresConnection) {
        let extra = lock.withLock { () -> PostgresConnection? in
            guard !connection.isClosed else { return nil }
            if idle.count < keep {
                idle.append(connection)
                return nil
            }
            return connection
        }
        if let extra { _ = try? extra.close().wait() }
    }

    /// How long one statement may go unanswered before its connection is closed and the statement fails.
    static let statementTimeout = 15

    /// A statement the database did not answer in time.
    struct Unanswered: Error, CustomStringConvertible {
        let seconds: Int
        var description: String { "no answer from the database in \(seconds) s; the connection was closed" }
    }

    /// The statements of one transaction.
    struct Transaction {
        let connection: PostgresConnection
        let logger: Logger

        @discardableResult
        func query(_ query: PostgresQuery) throws -> [PostgresRandomAccessRow] {
            // never a wait without end: a statement the database has not answered in time closes the connection,
            // which fails it (a replica once waited for ever after a database restart, and then ignored SIGTERM)
            let answer = connection.query(query, logger: logger)
            let connection = self.connection
            let fired = NIOLockedValueBox(false)
            let timeout = connection.eventLoop.scheduleTask(in: .seconds(Int64(PostgresHubStore.statementTimeout))) {
                fired.withLockedValue { $0 = true }
                let closing: EventLoopFuture<Void> = connection.close()
                _ = closing
            }
            defer { timeout.cancel() }
            do {
                return try answer.wait().rows.map { $0.makeRandomAccess() }
            } catch {
                if fired.withLockedValue({ $0 }) { throw Unanswered(seconds: PostgresHubStore.statementTimeout) }
                throw error
            }
        }

        func one(_ query: PostgresQuery) throws -> PostgresRandomAccessRow? { try self.query(query).first }
    }

    /// Runs `body` in one transaction (committed when it returns, rolled back when it throws). A connection
    /// found closed before anything was sent (the server restarted) is replaced once.
    func transaction<T>(_ operation: String, _ body: (Transaction) throws -> T) throws(HubStoreError) -> T {
        var attempt = 0
        while true {
            attempt += 1
            let connection: PostgresConnection
            do {
                connection = try self.connection()
            } catch {
                throw .failed(path: location, operation: operation, reason: "cannot connect: " + PostgresHubStore.reason(error))
            }
            let transaction = Transaction(connection: connection, logger: logger)
            var begun = false
            do {
                try transaction.query("BEGIN")
                begun = true
                try checkFences(transaction)
                let result = try body(transaction)
                try transaction.query("COMMIT")
                release(connection)
                return result
            } catch {
                if begun && !connection.isClosed { _ = try? transaction.query("ROLLBACK") }
                let closed = connection.isClosed
                if !closed { release(connection) } else { _ = try? connection.close().wait() }
                // a pooled connection the server dropped while idle: try once on a new one
                if !begun && closed && attempt == 1 { continue }
                if let error = error as? HubStoreError { throw error }
                throw .failed(path: location, operation: operation, reason: PostgresHubStore.reason(error))
            }
        }
    }

    // MARK: - Schema

    /// The schema versions, in order. Appending one is how the schema changes; each runs once, in its own
    /// transaction, under an advisory lock so that replicas starting together apply it once.
    static let migrations: [(name: String, sql: [String])] = [
        ("v1-state", [
            """
            CREATE TABLE document (
                hash TEXT PRIMARY KEY, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                source TEXT NOT NULL, body TEXT NOT NULL)
            """,
            """
            CREATE TABLE revision (
                id BIGSERIAL PRIMARY KEY, environment TEXT NOT NULL, parent BIGINT REFERENCES revision(id),
                author TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, cause TEXT NOT NULL,
                tree_hash TEXT NOT NULL, document_count INTEGER NOT NULL)
            """,
            "CREATE INDEX revision_environment ON revision(environment, id)",
            """
            CREATE TABLE revision_document (
                revision BIGINT NOT NULL REFERENCES revision(id), document TEXT NOT NULL REFERENCES document(hash),
                PRIMARY KEY (revision, document))
            """,
            """
            CREATE TABLE revision_commit (
                revision BIGINT PRIMARY KEY REFERENCES revision(id), commit_id TEXT NOT NULL, commit_author TEXT NOT NULL,
                committer TEXT NOT NULL, committed_at DOUBLE PRECISION NOT NULL, subject TEXT NOT NULL, signature TEXT NOT NULL,
                signer TEXT, signing_key TEXT, dirty BOOLEAN NOT NULL, signature_required BOOLEAN NOT NULL)
            """,
            """
            CREATE TABLE environment_state (
                environment TEXT PRIMARY KEY, desired_revision BIGINT NOT NULL REFERENCES revision(id))
            """,
            """
            CREATE TABLE cluster_state (
                cluster TEXT PRIMARY KEY, environment TEXT NOT NULL, applied_revision BIGINT REFERENCES revision(id),
                applied_hash TEXT, applied_at DOUBLE PRECISION, last_push_at DOUBLE PRECISION, last_result TEXT,
                last_error TEXT, applied_target TEXT, out_of_step TEXT)
            """,
            """
            CREATE TABLE push (
                id BIGSERIAL PRIMARY KEY, cluster TEXT NOT NULL, environment TEXT NOT NULL,
                revision BIGINT NOT NULL REFERENCES revision(id), desired_hash TEXT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION NOT NULL,
                created INTEGER NOT NULL, updated INTEGER NOT NULL, deleted INTEGER NOT NULL, error TEXT)
            """,
            "CREATE INDEX push_cluster_revision ON push(cluster, revision)",
            """
            CREATE TABLE applied_object (
                cluster TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                hash TEXT NOT NULL, revision BIGINT NOT NULL, PRIMARY KEY (cluster, kind, namespace, name))
            """,
            """
            CREATE TABLE drift_check (
                id BIGSERIAL PRIMARY KEY, environment TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, findings INTEGER NOT NULL)
            """,
            "CREATE INDEX drift_check_environment ON drift_check(environment, id)",
            """
            CREATE TABLE drift_report (
                id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, findings INTEGER NOT NULL, report TEXT NOT NULL)
            """,
            """
            CREATE TABLE audit (
                id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                detail TEXT NOT NULL)
            """,
        ]),
        ("v2-sharing", [
            // claims divide push work per cluster between replicas; a lease elects the scheduler's leader
            "CREATE SEQUENCE claim_token",
            """
            CREATE TABLE cluster_claim (
                cluster TEXT PRIMARY KEY, owner TEXT NOT NULL, token BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)
            """,
            """
            CREATE TABLE hub_lease (
                name TEXT PRIMARY KEY, owner TEXT NOT NULL, term BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)
            """,
        ]),
    ]

    /// The advisory lock key of migrations (any constant the hub alone uses).
    static let migrationLock: Int64 = 0x706f_6c69_6379_0001

    private func migrate() throws(HubStoreError) {
        try transaction("prepare the schema") { tx in
            try tx.query("SELECT pg_advisory_xact_lock(\(PostgresHubStore.migrationLock))")
            try tx.query("CREATE TABLE IF NOT EXISTS schema_migration (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        }
        for migration in PostgresHubStore.migrations {
            try transaction("apply the schema version \(migration.name)") { tx in
                try tx.query("SELECT pg_advisory_xact_lock(\(PostgresHubStore.migrationLock))")
                guard try tx.one("SELECT 1 FROM schema_migration WHERE name = \(migration.name)") == nil else { return }
                for statement in migration.sql { try tx.query(PostgresQuery(unsafeSQL: statement)) }
                try tx.query("INSERT INTO schema_migration (name, applied_at) VALUES (\(migration.name), \(Date().timeIntervalSince1970))")
            }
        }
    }

    /// The applied migrations, oldest first.
    public func schemaVersions() throws(HubStoreError) -> [String] {
        try transaction("read the schema version") { tx in
            try tx.query("SELECT name FROM schema_migration ORDER BY applied_at, name").map { try $0["name"].decode(String.self) }
        }
    }

    // MARK: - Locks

    /// The state and push locks are the database's (`DatabaseLocking`): every process and machine on this
    /// database takes turns.
    public var lockBase: String? { nil }

    public func inProcessLock(_ purpose: String) -> InProcessLock { processLocks.lock(purpose) }

    /// The first key of the hub's advisory locks (the second is the hash of the purpose's name).
    static let lockClass: Int32 = 0x7068

    /// A session-level advisory lock on a connection of its own, kept until `release()` (or until the
    /// connection ends, when the holder dies).
    final class AdvisoryLock: DatabaseLock, @unchecked Sendable {
        let connection: PostgresConnection
        let purpose: String
        let logger: Logger
        private let released = NSLock()
        private var done = false

        init(connection: PostgresConnection, purpose: String, logger: Logger) {
            self.connection = connection
            self.purpose = purpose
            self.logger = logger
        }

        func release() {
            let first = released.withLock { () -> Bool in
                defer { done = true }
                return !done
            }
            guard first else { return }
            // closing the connection ends its session, and with it the lock
            _ = try? connection.close().wait()
        }

        deinit { release() }
    }

    public func tryDatabaseLock(_ purpose: String) throws(HubStoreError) -> (any DatabaseLock)? {
        let connection: PostgresConnection
        do {
            connection = try PostgresConnection.connect(on: group.next(), configuration: configuration, id: lock.withLock {
                defer { nextID += 1 }
                return nextID
            }, logger: logger).wait()
        } catch {
            throw .failed(path: location, operation: "take the \(purpose) lock", reason: "cannot connect: " + PostgresHubStore.reason(error))
        }
        do {
            let name = "policyhub:" + purpose
            let rows = try connection.query("SELECT pg_try_advisory_lock(\(PostgresHubStore.lockClass), hashtext(\(name))) AS taken",
                                            logger: logger).wait().rows
            if try rows.first?.makeRandomAccess()["taken"].decode(Bool.self) == true {
                return AdvisoryLock(connection: connection, purpose: purpose, logger: logger)
            }
            _ = try? connection.close().wait()
            return nil
        } catch {
            _ = try? connection.close().wait()
            throw .failed(path: location, operation: "take the \(purpose) lock", reason: PostgresHubStore.reason(error))
        }
    }

    // MARK: - Revisions

    public func recordRevision(environment: String, documents: [StoredDocument], author: String, cause: String,
                               at: Double, expectedParent: ExpectedParent = .any, commit: CommitProvenance? = nil) throws(HubStoreError) -> Revision {
        try transaction("record a revision of \(environment)") { tx in
            // one writer of an environment at a time, whichever replica it runs on
            try tx.query("SELECT pg_advisory_xact_lock(hashtext(\("revision:" + environment)))")
            let parent = try tx.one("SELECT desired_revision FROM environment_state WHERE environment = \(environment)")?["desired_revision"]
                .decode(Int64.self)
            if case .mustBe(let expected) = expectedParent, expected != parent {
                throw HubStoreError.conflict(environment: environment, expected: expected, current: parent)
            }
            for document in documents {
                try tx.query("""
                    INSERT INTO document (hash, kind, namespace, name, source, body)
                    VALUES (\(document.hash), \(document.identity.kind.rawValue), \(document.identity.namespace),
                            \(document.identity.name), \(document.source), \(document.body))
                    ON CONFLICT (hash) DO NOTHING
                    """)
            }
            let treeHash = StoredDocument.treeHash(documents)
            guard let id = try tx.one("""
                INSERT INTO revision (environment, parent, author, created_at, cause, tree_hash, document_count)
                VALUES (\(environment), \(parent), \(author), \(at), \(cause), \(treeHash), \(documents.count))
                RETURNING id
                """)?["id"].decode(Int64.self) else {
                throw HubStoreError.failed(path: location, operation: "record a revision", reason: "no id returned")
            }
            for hash in Set(documents.map(\.hash)).sorted() {
                try tx.query("INSERT INTO revision_document (revision, document) VALUES (\(id), \(hash))")
            }
            if let commit {
                try tx.query("""
                    INSERT INTO revision_commit (revision, commit_id, commit_author, committer, committed_at, subject, signature,
                                                 signer, signing_key, dirty, signature_required)
                    VALUES (\(id), \(commit.commit), \(commit.author), \(commit.committer), \(commit.committedAt), \(commit.subject),
                            \(commit.signature.rawValue), \(commit.signer), \(commit.signingKey), \(commit.dirty), \(commit.signatureRequired))
                    """)
            }
            try tx.query("""
                INSERT INTO environment_state (environment, desired_revision) VALUES (\(environment), \(id))
                ON CONFLICT (environment) DO UPDATE SET desired_revision = excluded.desired_revision
                """)
            let revision = Revision(id: id, environment: environment, parent: parent, author: author, createdAt: at, cause: cause,
                                    treeHash: treeHash, documentCount: documents.count, commit: commit)
            try tx.query("""
                INSERT INTO audit (at, actor, action, detail) VALUES (\(at), \(author), 'revision', \(Self.revisionAuditDetail(revision)))
                """)
            return revision
        }
    }

    static let revisionSelect = """
        SELECT revision.id, revision.environment, revision.parent, revision.author, revision.created_at, revision.cause,
               revision.tree_hash, revision.document_count, c.commit_id, c.commit_author, c.committer, c.committed_at, c.subject,
               c.signature, c.signer, c.signing_key, c.dirty, c.signature_required
        FROM revision LEFT JOIN revision_commit c ON c.revision = revision.id
        """

    static func revision(_ row: PostgresRandomAccessRow) throws -> Revision {
        var commit: CommitProvenance?
        if let id = try row["commit_id"].decode(String?.self) {
            commit = CommitProvenance(commit: id, author: try row["commit_author"].decode(String.self),
                                      committer: try row["committer"].decode(String.self),
                                      committedAt: try row["committed_at"].decode(Double.self), subject: try row["subject"].decode(String.self),
                                      signature: SignatureStatus(rawValue: try row["signature"].decode(String.self)) ?? .unknownKey,
                                      signer: try row["signer"].decode(String?.self), signingKey: try row["signing_key"].decode(String?.self),
                                      dirty: try row["dirty"].decode(Bool.self), signatureRequired: try row["signature_required"].decode(Bool.self))
        }
        return Revision(id: try row["id"].decode(Int64.self), environment: try row["environment"].decode(String.self),
                        parent: try row["parent"].decode(Int64?.self), author: try row["author"].decode(String.self),
                        createdAt: try row["created_at"].decode(Double.self), cause: try row["cause"].decode(String.self),
                        treeHash: try row["tree_hash"].decode(String.self), documentCount: try row["document_count"].decode(Int.self),
                        commit: commit)
    }

    public func desiredRevision(environment: String) throws(HubStoreError) -> Revision? {
        try transaction("read the desired revision of \(environment)") { tx in
            try tx.one(PostgresQuery(unsafeSQL: Self.revisionSelect + """
                 JOIN environment_state ON revision.id = environment_state.desired_revision WHERE environment_state.environment = $1
                """, binds: Self.binds(environment))).map(Self.revision)
        }
    }

    public func revision(id: Int64) throws(HubStoreError) -> Revision {
        let found = try transaction("read revision \(id)") { tx in
            try tx.one(PostgresQuery(unsafeSQL: Self.revisionSelect + " WHERE revision.id = $1", binds: Self.binds(id))).map(Self.revision)
        }
        guard let found else { throw .unknownRevision(id) }
        return found
    }

    public func documents(revision: Int64) throws(HubStoreError) -> [StoredDocument] {
        _ = try self.revision(id: revision)
        return try transaction("read the documents of revision \(revision)") { tx in
            try tx.query("""
                SELECT d.hash, d.kind, d.namespace, d.name, d.source, d.body
                FROM revision_document rd JOIN document d ON d.hash = rd.document
                WHERE rd.revision = \(revision) ORDER BY d.kind, d.namespace, d.name
                """).compactMap { row -> StoredDocument? in
                guard let kind = ObjectKind(rawValue: try row["kind"].decode(String.self)) else { return nil }
                return StoredDocument(hash: try row["hash"].decode(String.self),
                                      identity: ObjectIdentity(kind: kind, namespace: try row["namespace"].decode(String.self),
                                                               name: try row["name"].decode(String.self)),
                                      source: try row["source"].decode(String.self), body: try row["body"].decode(String.self))
            }
        }
    }

    public func revisions(environment: String?) throws(HubStoreError) -> [Revision] {
        try transaction("list revisions") { tx in
            if let environment {
                return try tx.query(PostgresQuery(unsafeSQL: Self.revisionSelect + " WHERE revision.environment = $1 ORDER BY revision.id DESC",
                                                  binds: Self.binds(environment))).map(Self.revision)
            }
            return try tx.query(PostgresQuery(unsafeSQL: Self.revisionSelect + " ORDER BY revision.id DESC")).map(Self.revision)
        }
    }

    static func binds<Value: PostgresDynamicTypeEncodable>(_ value: Value) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(value)
        return binds
    }

    // MARK: - Clusters and pushes

    static let clusterColumns = """
        cluster, environment, applied_revision, applied_hash, applied_at, last_push_at, last_result, last_error, applied_target, out_of_step
        """

    static func clusterState(_ row: PostgresRandomAccessRow) throws -> ClusterState {
        ClusterState(cluster: try row["cluster"].decode(String.self), environment: try row["environment"].decode(String.self),
                     appliedRevision: try row["applied_revision"].decode(Int64?.self), appliedHash: try row["applied_hash"].decode(String?.self),
                     appliedAt: try row["applied_at"].decode(Double?.self), lastPushAt: try row["last_push_at"].decode(Double?.self),
                     lastResult: try row["last_result"].decode(String?.self), lastError: try row["last_error"].decode(String?.self),
                     appliedTarget: try row["applied_target"].decode(String?.self), outOfStep: try row["out_of_step"].decode(String?.self))
    }

    public func clusterStates() throws(HubStoreError) -> [ClusterState] {
        try transaction("read cluster state") { tx in
            try tx.query(PostgresQuery(unsafeSQL: "SELECT \(Self.clusterColumns) FROM cluster_state ORDER BY cluster")).map(Self.clusterState)
        }
    }

    public func clusterState(named cluster: String) throws(HubStoreError) -> ClusterState? {
        try transaction("read the state of \(cluster)") { tx in
            try tx.one(PostgresQuery(unsafeSQL: "SELECT \(Self.clusterColumns) FROM cluster_state WHERE cluster = $1",
                                     binds: Self.binds(cluster))).map(Self.clusterState)
        }
    }

    public func recordPush(_ push: PushRecord) throws(HubStoreError) {
        try transaction("record the push of \(push.cluster)") { tx in
            guard try tx.one("SELECT 1 FROM revision WHERE id = \(push.revision)") != nil else {
                throw HubStoreError.unknownRevision(push.revision)
            }
            try tx.query("""
                INSERT INTO push (cluster, environment, revision, desired_hash, started_at, finished_at, created, updated, deleted, error)
                VALUES (\(push.cluster), \(push.environment), \(push.revision), \(push.desiredHash), \(push.startedAt), \(push.finishedAt),
                        \(push.created), \(push.updated), \(push.deleted), \(push.error))
                """)
            if push.error == nil {
                try tx.query("""
                    INSERT INTO cluster_state (cluster, environment, applied_revision, applied_hash, applied_at, last_push_at,
                                               last_result, last_error, applied_target, out_of_step)
                    VALUES (\(push.cluster), \(push.environment), \(push.revision), \(push.desiredHash), \(push.finishedAt),
                            \(push.finishedAt), 'ok', NULL, \(push.target), NULL)
                    ON CONFLICT (cluster) DO UPDATE SET environment = excluded.environment,
                        applied_at = CASE WHEN cluster_state.applied_revision IS NOT DISTINCT FROM excluded.applied_revision
                                          THEN cluster_state.applied_at ELSE excluded.applied_at END,
                        applied_revision = excluded.applied_revision, applied_hash = excluded.applied_hash,
                        last_push_at = excluded.last_push_at, last_result = 'ok', last_error = NULL,
                        applied_target = excluded.applied_target, out_of_step = NULL
                    """)
            } else {
                try tx.query("""
                    INSERT INTO cluster_state (cluster, environment, last_push_at, last_result, last_error, out_of_step)
                    VALUES (\(push.cluster), \(push.environment), \(push.finishedAt), 'failed', \(push.error), \(push.error))
                    ON CONFLICT (cluster) DO UPDATE SET environment = excluded.environment,
                        last_push_at = excluded.last_push_at, last_result = 'failed', last_error = excluded.last_error,
                        out_of_step = excluded.out_of_step
                    """)
            }
            var rows = push.objects
            if push.error == nil, let changes = push.objectChanges {
                for identity in changes.remove {
                    try tx.query("""
                        DELETE FROM applied_object WHERE cluster = \(push.cluster) AND kind = \(identity.kind.rawValue)
                            AND namespace = \(identity.namespace) AND name = \(identity.name)
                        """)
                }
                rows = changes.write
            } else if push.objects != nil {
                try tx.query("DELETE FROM applied_object WHERE cluster = \(push.cluster)")
            }
            if let objects = rows, !objects.isEmpty {
                // one statement per 500 objects, not one per object
                for chunk in stride(from: 0, to: objects.count, by: 500).map({ objects[$0..<min($0 + 500, objects.count)] }) {
                    var sql = "INSERT INTO applied_object (cluster, kind, namespace, name, hash, revision) VALUES "
                    var binds = PostgresBindings(capacity: chunk.count * 6)
                    for (index, object) in chunk.enumerated() {
                        let base = index * 6
                        sql += (index == 0 ? "" : ", ") + "($\(base + 1), $\(base + 2), $\(base + 3), $\(base + 4), $\(base + 5), $\(base + 6))"
                        binds.append(push.cluster)
                        binds.append(object.identity.kind.rawValue)
                        binds.append(object.identity.namespace)
                        binds.append(object.identity.name)
                        binds.append(object.hash)
                        binds.append(object.revision)
                    }
                    sql += " ON CONFLICT (cluster, kind, namespace, name) DO UPDATE SET hash = excluded.hash, revision = excluded.revision"
                    try tx.query(PostgresQuery(unsafeSQL: sql, binds: binds))
                }
            }
        }
    }

    public func firstSuccessfulPush(cluster: String, environment: String, revisions first: Int64, through last: Int64) throws(HubStoreError) -> Double? {
        try transaction("read the pushes of \(cluster)") { tx in
            try tx.one("""
                SELECT MIN(finished_at) AS first FROM push
                WHERE cluster = \(cluster) AND environment = \(environment) AND error IS NULL AND revision BETWEEN \(first) AND \(last)
                """)?["first"].decode(Double?.self)
        }
    }

    public func markApplied(cluster: String, environment: String, revision: Int64, hash: String, at: Double) throws(HubStoreError) {
        try transaction("mark \(cluster) applied") { tx in
            try tx.query("""
                INSERT INTO cluster_state (cluster, environment, applied_revision, applied_hash, applied_at)
                VALUES (\(cluster), \(environment), \(revision), \(hash), \(at))
                ON CONFLICT (cluster) DO UPDATE SET environment = excluded.environment,
                    applied_at = CASE WHEN cluster_state.applied_revision IS NOT DISTINCT FROM excluded.applied_revision
                                      THEN cluster_state.applied_at ELSE excluded.applied_at END,
                    applied_revision = excluded.applied_revision, applied_hash = excluded.applied_hash
                """)
        }
    }

    public func appliedObjects(cluster: String) throws(HubStoreError) -> [ObjectIdentity: AppliedObject] {
        try transaction("read the objects applied to \(cluster)") { tx in
            var out: [ObjectIdentity: AppliedObject] = [:]
            for row in try tx.query("SELECT kind, namespace, name, hash, revision FROM applied_object WHERE cluster = \(cluster)") {
                guard let kind = ObjectKind(rawValue: try row["kind"].decode(String.self)) else { continue }
                let identity = ObjectIdentity(kind: kind, namespace: try row["namespace"].decode(String.self), name: try row["name"].decode(String.self))
                out[identity] = AppliedObject(identity: identity, hash: try row["hash"].decode(String.self), revision: try row["revision"].decode(Int64.self))
            }
            return out
        }
    }

    public func markOutOfStep(cluster: String, environment: String, reason: String?) throws(HubStoreError) {
        try transaction("mark \(cluster) out of step") { tx in
            try tx.query("""
                INSERT INTO cluster_state (cluster, environment, out_of_step) VALUES (\(cluster), \(environment), \(reason))
                ON CONFLICT (cluster) DO UPDATE SET out_of_step = excluded.out_of_step
                """)
        }
    }

    // MARK: - Drift

    public func recordDriftReport(json: String, findings: Int, byEnvironment: [String: Int], at: Double) throws(HubStoreError) -> Int64 {
        try transaction("record a drift report") { tx in
            guard let id = try tx.one("INSERT INTO drift_report (at, findings, report) VALUES (\(at), \(findings), \(json)) RETURNING id")?["id"]
                .decode(Int64.self) else {
                throw HubStoreError.failed(path: location, operation: "record a drift report", reason: "no id returned")
            }
            for (environment, count) in byEnvironment.sorted(by: { $0.key < $1.key }) {
                try tx.query("INSERT INTO drift_check (environment, at, findings) VALUES (\(environment), \(at), \(count))")
            }
            return id
        }
    }

    public func driftReports(limit: Int) throws(HubStoreError) -> [StoredDriftReport] {
        try transaction("read drift reports") { tx in
            try tx.query("SELECT id, at, findings, report FROM drift_report ORDER BY id DESC LIMIT \(limit)").map { row in
                StoredDriftReport(id: try row["id"].decode(Int64.self), at: try row["at"].decode(Double.self),
                                  findings: try row["findings"].decode(Int.self), json: try row["report"].decode(String.self))
            }
        }
    }

    public func recordDriftCheck(environment: String, findings: Int, at: Double) throws(HubStoreError) {
        try transaction("record a drift check") { tx in
            try tx.query("INSERT INTO drift_check (environment, at, findings) VALUES (\(environment), \(at), \(findings))")
        }
    }

    public func latestDriftCheck(environment: String) throws(HubStoreError) -> (at: Double, findings: Int)? {
        try transaction("read the latest drift check") { tx in
            try tx.one("SELECT at, findings FROM drift_check WHERE environment = \(environment) ORDER BY id DESC LIMIT 1").map { row in
                (at: try row["at"].decode(Double.self), findings: try row["findings"].decode(Int.self))
            }
        }
    }

    // MARK: - Audit

    public func audit(actor: String, action: String, detail: String, at: Double) throws(HubStoreError) {
        try transaction("append to the audit log") { tx in
            try tx.query("INSERT INTO audit (at, actor, action, detail) VALUES (\(at), \(actor), \(action), \(detail))")
        }
    }

    public func auditLog(limit: Int) throws(HubStoreError) -> [AuditEntry] {
        try transaction("read the audit log") { tx in
            try tx.query("SELECT id, at, actor, action, detail FROM audit ORDER BY id DESC LIMIT \(limit)").map { row in
                AuditEntry(id: try row["id"].decode(Int64.self), at: try row["at"].decode(Double.self), actor: try row["actor"].decode(String.self),
                           action: try row["action"].decode(String.self), detail: try row["detail"].decode(String.self))
            }
        }
    }
}
