import Foundation
import PolicyHubTesting
import Testing

/// `--state postgres://...` (issue 16): the CLI's commands on PostgreSQL as on the SQLite file, with the
/// password from PGPASSWORD or a file and never in a message; a throwaway server (`TestPostgres`).
@Suite struct PostgresStateTests {
    typealias CLI = CommandLineTests

    static var password: String { ProcessInfo.processInfo.environment["PGPASSWORD"] ?? "" }

    @Test func applyStatusPromoteAndHistoryKeepTheirStateInPostgreSQL() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let url = try TestPostgres.freshDatabase()
            let apply = try CLI.run(["apply", "--repo", folder, "--state", url])
            #expect(apply.status == 0, "\(apply.stderr)")
            #expect(apply.stderr.contains("recorded revision 1 of staging"))
            #expect(!FileManager.default.fileExists(atPath: folder + "/.policyhub/state.sqlite"), "no SQLite file beside a postgres state")
            let again = try CLI.run(["apply", "--repo", folder, "--state", url])
            #expect(again.status == 0 && again.stderr.contains("0 pushed") && again.stderr.contains("1 in step"), "\(again.stderr)")
            let promote = try CLI.run(["promote", "--repo", folder, "--state", url, "--to", "production", "--all", "--push",
                                       "--force", "--reason", "test on postgres"])
            #expect(promote.status == 0, "\(promote.stderr)")
            let status = try CLI.run(["status", "--repo", folder, "--state", url, "--output", "json"])
            #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
            let history = try CLI.run(["history", "--repo", folder, "--state", url])
            #expect(history.stdout.contains("r2  production (desired)  promote from staging r1: --all (forced past: requireNoDrift, minimumSoak; reason: test on postgres)"), "\(history.stdout)")
            // the same database read by a second process sees the same state
            let drift = try CLI.run(["drift", "--repo", folder, "--state", url])
            #expect(drift.status == 0, "\(drift.stdout)\(drift.stderr)")
        }
    }

    @Test func thePasswordComesFromAFileOrTheEnvironmentAndIsNeverShown() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let url = try TestPostgres.freshDatabase()
            var environment = ProcessInfo.processInfo.environment
            environment["PGPASSWORD"] = nil
            // from a file named in the URL
            let file = folder + "/db-password"
            try (Self.password + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let fromFile = try CLI.runProcess(CLI.binary, ["apply", "--repo", folder, "--state", url + "?passwordFile=" + file], environment: environment)
            #expect(fromFile.status == 0, "\(fromFile.stderr)")
            // a wrong password written into the URL: refused by the server, and not repeated
            let secret = "NotThePassword-7731"
            let inline = url.replacingOccurrences(of: "postgres://hub@", with: "postgres://hub:\(secret)@")
            let refused = try CLI.runProcess(CLI.binary, ["status", "--repo", folder, "--state", inline], environment: environment)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("cannot open the state database postgres://hub@127.0.0.1:"), "\(refused.stderr)")
            #expect(refused.stderr.contains("password authentication failed for user \"hub\""), "\(refused.stderr)")
            #expect(!refused.stderr.contains(secret) && !refused.stdout.contains(secret))
            // a bad URL is a clear error
            let bad = try CLI.run(["status", "--repo", folder, "--state", "postgres://127.0.0.1/x"])
            #expect(bad.status == 1 && bad.stderr.contains("names no user"), "\(bad.stderr)")
            let mode = try CLI.run(["status", "--repo", folder, "--state", url + "?sslmode=prefer"])
            #expect(mode.status == 1 && mode.stderr.contains("sslmode 'prefer'"), "\(mode.stderr)")
            // sslmode=require against a server without TLS: refused, not silently sent in the clear
            let tls = try CLI.run(["status", "--repo", folder, "--state", url + "?sslmode=require"])
            #expect(tls.status == 1, "\(tls.stderr)")
        }
    }
}
