import Foundation
import HubTransport
import PolicyCore
import Testing

/// SEMANTICS §8: an invalid working tree blocks only what would record it.
@Suite struct BrokenTreeTests {
    typealias CLI = CommandLineTests

    static func breakTree(_ folder: String) throws {
        try "apiVersion: neuvector.com/v1\nkind: [broken\n".write(toFile: folder + "/policies/global/broken.yaml", atomically: true, encoding: .utf8)
    }

    @Test func storedRevisionsKeepWorkingOnTheCommandLine() throws {
        try Repo.withTemporaryFolder { folder in
            try PromoteTests.example(gates: "{}", in: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            try Self.breakTree(folder)
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("policies/global/broken.yaml:3:1: error:"), "\(apply.stderr)")
            #expect(try CLI.run(["validate", "--repo", folder]).status == 1)
            for (arguments, wanted) in [(["status"], Int32(0)), (["history"], 0), (["drift"], 0),
                                        (["promote", "--to", "production", "--all", "--force", "--reason", "override in a test"], 0),
                                        (["rollback", "--env", "production", "--to", "r2", "--reason", "test"], 0)] {
                let run = try CLI.run(arguments + ["--repo", folder])
                #expect(run.status == wanted, "\(arguments): \(run.stderr)")
                if arguments[0] != "status" && arguments[0] != "history" {
                    #expect(run.stderr.contains("policies/ is invalid (1 error"), "\(arguments): \(run.stderr)")
                }
            }
        }
    }

    @Test func aDaemonOnABrokenTreeServesTheLastValidRevision() async throws {
        try await ServeTests.withHub { hub in
            let admin = hub.tokens["security-admin"]
            try Self.breakTree(hub.folder)
            try await Task.sleep(nanoseconds: 5_200_000_000)  // past the daemon's 5 s repository cache
            let ready = await hub.request("GET", "/readyz")
            #expect(ready.status == 200, "\(ready.bodyText)")
            #expect(hub.json(ready)["status"] == .string("degraded"))
            #expect(ready.bodyText.contains("policies/ is invalid"), "\(ready.bodyText)")
            for path in ["/v1/clusters", "/v1/documents", "/v1/environments", "/v1/audit", "/v1/clusters/staging-eu-1/policy"] {
                let read = await hub.request("GET", path, token: hub.tokens["viewer"])
                #expect(read.status == 200, "\(path): \(read.bodyText.prefix(300))")
            }
            let put = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/late", token: admin, body: ServeTests.globalRule("late"))
            #expect(put.status == 409, "\(put.bodyText)")
            #expect(put.bodyText.contains("broken.yaml:3:1"), "\(put.bodyText)")
            let drift = await hub.request("POST", "/v1/drift/reports", token: admin)
            #expect(drift.status == 201, "\(drift.bodyText.prefix(300))")
            // a request value the command line would refuse is the caller's mistake, in words, never a 500
            let odd = await hub.request("POST", "/v1/promotions", token: admin, body: #"{"to":"--all","all":true}"#)
            #expect(odd.status == 422 || odd.status == 404, "\(odd.bodyText)")
            #expect(!odd.bodyText.contains("CommandError"), "\(odd.bodyText)")
            // fixed: ready again
            try FileManager.default.removeItem(atPath: hub.folder + "/policies/global/broken.yaml")
            try await Task.sleep(nanoseconds: 5_200_000_000)
            #expect(hub.json(await hub.request("GET", "/readyz"))["status"] == .string("ready"))
        }
    }
}
