import Foundation
import HubStore
import HubStorePostgres
import PolicyHubTesting
import Testing

/// The state and push locks of a PostgreSQL state live in the database (issue 16): processes and machines on
/// one database take turns, and a holder that dies holds nothing.
@Suite struct PostgresLockTests {
    @Test func twoStoresOnOneDatabaseTakeTurnsAndADeadHolderHoldsNothing() throws {
        let url = try TestPostgres.freshDatabase()
        let first = try PostgresHubStore(url: url)
        let second = try PostgresHubStore(url: url)
        defer { first.shutdown(); second.shutdown() }
        let held = try #require(try first.tryDatabaseLock("push"))
        #expect(try second.tryDatabaseLock("push") == nil, "the push lock is taken once across stores")
        let other = try #require(try second.tryDatabaseLock("state"), "another purpose is another lock")
        other.release()
        held.release()
        let again = try #require(try second.tryDatabaseLock("push"), "released: the other store takes it")
        again.release()

        // a holder killed with SIGKILL: the database ends its session, and the lock with it
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        holder.arguments = ["-q", url]
        let input = Pipe()
        holder.standardInput = input
        holder.standardOutput = FileHandle.nullDevice
        try holder.run()
        input.fileHandleForWriting.write(Data("SELECT pg_advisory_lock(\(0x7068), hashtext('policyhub:push'));\n".utf8))
        var taken = false
        for _ in 0..<100 where !taken {
            if let lock = try first.tryDatabaseLock("push") { lock.release() } else { taken = true }
            if !taken { usleep(50_000) }
        }
        #expect(taken, "psql took the push lock")
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        var freed: (any DatabaseLock)?
        for _ in 0..<100 where freed == nil {
            freed = try first.tryDatabaseLock("push")
            if freed == nil { usleep(50_000) }
        }
        #expect(freed != nil, "the killed holder's lock was released by the database")
        freed?.release()
    }
}
