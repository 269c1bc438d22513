import Foundation

/// The PostgreSQL server of a test or benchmark process: the one `POLICYHUB_TEST_POSTGRES` names (scripts/test.sh
/// starts one), or one started here with scripts/postgres.sh and stopped when the process exits. Each
/// test gets a database of its own.
public enum TestPostgres {
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The folder of a server started by this process, stopped at exit.
    nonisolated(unsafe) static var startedHere: String?

    /// The server's URL (its `hub` role's password is in PGPASSWORD).
    public static let server: Result<String, TestPostgresError> = {
        let environment = ProcessInfo.processInfo.environment
        if let url = environment["POLICYHUB_TEST_POSTGRES"], environment["PGPASSWORD"] != nil { return .success(url) }
        // posix_spawn and waitpid on this child alone: Foundation's Process, started from a static initializer
        // while other test threads wait on it, missed this child's exit once and waited forever
        let url: String, password: String, folder: String
        do {
            (url, password, folder) = try startServer()
        } catch {
            return .failure(error as? TestPostgresError ?? TestPostgresError("\(error)"))
        }
        setenv("PGPASSWORD", password, 1)
        startedHere = folder
        atexit {
            guard let folder = TestPostgres.startedHere else { return }
            _ = TestPostgres.run(["/bin/bash", TestPostgres.repository + "/scripts/postgres.sh", "stop", folder])
        }
        return .success(url)
    }()

    /// A server of the caller's own (one a test may restart without disturbing the others), stopped by `stop()`.
    public final class PrivateServer: Sendable {
        /// Its database's URL, the password in `passwordFile` (so that the shared server's PGPASSWORD stays).
        public let url: String
        let folder: String

        init(url: String, folder: String) {
            self.url = url
            self.folder = folder
        }

        /// A fast restart on the same port: every connection is dropped.
        public func restart() throws {
            let status = TestPostgres.run(["/bin/bash", TestPostgres.repository + "/scripts/postgres.sh", "restart", folder])
            guard status == 0 else { throw TestPostgresError("scripts/postgres.sh restart exited \(status)") }
        }

        public func stop() {
            _ = TestPostgres.run(["/bin/bash", TestPostgres.repository + "/scripts/postgres.sh", "stop", folder])
        }
    }

    /// Starts a server of the caller's own with scripts/postgres.sh.
    public static func privateServer() throws -> PrivateServer {
        let (url, password, folder) = try startServer()
        let file = folder + "/hub-password"
        FileManager.default.createFile(atPath: file, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600])
        return PrivateServer(url: url + "?passwordFile=" + file, folder: folder)
    }

    /// Runs scripts/postgres.sh start: the server's URL, the `hub` role's password and the server's folder.
    static func startServer() throws -> (url: String, password: String, folder: String) {
        let output = NSTemporaryDirectory() + "policyhub-pg-start-" + UUID().uuidString
        defer { unlink(output) }
        let status = run(["/bin/bash", "-c", "exec bash \"$0\" start > \"$1\"", repository + "/scripts/postgres.sh", output])
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("export ") {
            let pair = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1).map(String.init)
            if pair.count == 2 { values[pair[0]] = pair[1] }
        }
        guard status == 0, let url = values["POLICYHUB_TEST_POSTGRES"], let password = values["PGPASSWORD"],
              let folder = values["POLICYHUB_TEST_POSTGRES_DIR"] else {
            throw TestPostgresError("scripts/postgres.sh start failed (exit \(status)): \(text)")
        }
        return (url, password, folder)
    }

    /// Runs a program to its end; its exit status (-1 when it could not start).
    static func run(_ arguments: [String]) -> Int32 {
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        guard posix_spawn(&pid, arguments[0], nil, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status >> 8) & 0xff
    }

    /// A new, empty database on the server; its URL.
    public static func freshDatabase() throws -> String {
        let url = try server.get()
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try psql(url, "CREATE DATABASE \(name) OWNER hub")
        return url.replacingOccurrences(of: "/policyhub", with: "/" + name)
    }

    /// Runs one SQL command with psql against `url`.
    public static func psql(_ url: String, _ sql: String) throws {
        let status = run(["/usr/bin/psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        guard status == 0 else { throw TestPostgresError("psql \(sql) exited \(status)") }
    }
}

public struct TestPostgresError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
