import Foundation
import HubService
import HubTransport
import PolicyCore
import Testing

/// Tokens are created, listed, expire and are revoked; the running daemon follows the file without a restart.
@Suite struct TokenLifecycleTests {
    typealias CLI = CommandLineTests

    @Test func createListRevoke() throws {
        try Repo.withTemporaryFolder { folder in
            let file = folder + "/tokens.yaml"
            let made = try CLI.run(["token", "create", "--file", file, "--name", "ci", "--role", "viewer", "--expires", "90d"])
            #expect(made.status == 0, "\(made.stderr)")
            let token = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(token.hasPrefix("phub_"))
            #expect(made.stderr.contains("expires 20"))
            #expect(try CLI.run(["token", "create", "--file", file, "--name", "team", "--role", "namespace-owner",
                                 "--namespace", "payments"]).status == 0)
            let list = try CLI.run(["token", "list", "--file", file])
            #expect(list.status == 0)
            let lines = list.stdout.split(separator: "\n").map(String.init)
            #expect(lines.count == 2)
            #expect(lines[0].hasPrefix("ci  viewer  created 20") && lines[0].contains(", expires 20"), "\(lines)")
            #expect(lines[1].hasPrefix("team  namespace-owner [payments]  created 20") && lines[1].hasSuffix(", no expiry"))
            // never a hash or a token
            let text = try String(contentsOfFile: file, encoding: .utf8)
            let digest = try #require(text.split(separator: "\n").first { $0.contains("sha256:") }?.split(separator: " ").last)
            #expect(!list.stdout.contains(String(digest)) && !list.stdout.contains(token))
            let json = try CLI.run(["token", "list", "--file", file, "--output", "json"])
            #expect(json.stdout.contains(#""state": "active""#), "\(json.stdout)")
            #expect(try CLI.run(["token", "create", "--file", file, "--name", "x", "--role", "viewer", "--expires", "soon"]).status == 64)

            let revoked = try CLI.run(["token", "revoke", "--file", file, "ci"])
            #expect(revoked.status == 0, "\(revoked.stderr)")
            #expect(try CLI.run(["token", "list", "--file", file]).stdout.split(separator: "\n").count == 1)
            let unknown = try CLI.run(["token", "revoke", "--file", file, "nobody"])
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains("no token is named 'nobody' (known: team)"))
        }
    }

    /// A tokens file that cannot be read as text is never replaced by one holding only the new token.
    @Test func anUnreadableTokensFileIsLeftAlone() throws {
        try Repo.withTemporaryFolder { folder in
            let file = folder + "/tokens.yaml"
            let bytes: [UInt8] = Array("tokens:\n- name: a\n".utf8) + [0xff, 0xfe] + Array("\n".utf8)
            FileManager.default.createFile(atPath: file, contents: Data(bytes))
            let made = try CLI.run(["token", "create", "--file", file, "--name", "ci", "--role", "viewer"])
            #expect(made.status == 1)
            #expect(made.stdout.isEmpty, "a token was printed although it was not stored")
            #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: file))) == bytes)
        }
    }

    @Test func expiredTokensAreRefused() throws {
        try Repo.withTemporaryFolder { folder in
            let made = TokenFile.newToken()
            try TokenFile.append(path: folder + "/t.yaml", name: "ci", role: .viewer, namespaces: [], sha256: made.sha256,
                                 created: 1_000_000_000, expires: 1_000_003_600)
            let file = try TokenFile.load(path: folder + "/t.yaml")
            #expect(file.entries.first?.expires == 1_000_003_600)
            #expect(file.principal(token: made.token, at: 1_000_003_599)?.name == "ci")
            #expect(file.principal(token: made.token, at: 1_000_003_600) == nil)
            #expect(try String(contentsOfFile: folder + "/t.yaml", encoding: .utf8).contains("expires: 2001-09-09T02:46:40Z"))
        }
    }

    /// The daemon refuses a revoked token and accepts a new one without a restart, audits each refusal with
    /// its principal and route, and survives SIGHUP.
    @Test func theDaemonFollowsTheTokensFile() async throws {
        try await Repo.withTemporaryFolderAsync { folder in
            try PromoteTests.example(gates: "{}", in: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let file = folder + "/tokens.yaml"
            let first = try CLI.run(["token", "create", "--file", file, "--name", "first", "--role", "viewer"])
            let firstToken = first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            try "listen: 127.0.0.1:0\ntokens: tokens.yaml\nschedules: {reconcileInterval: 1h}\n"
                .write(toFile: folder + "/hub.yaml", atomically: true, encoding: .utf8)
            let daemon = try ServeTests.ServeProcess(config: folder + "/hub.yaml")
            let port = try await daemon.port()
            var settings = TransportSettings()
            settings.maxAttempts = 1
            let client = CurlTransport(settings: settings)
            defer { client.shutdown() }
            func get(_ path: String, _ token: String?) async -> Int {
                let headers = token.map { [HTTPHeader("Authorization", "Bearer \($0)")] } ?? []
                let answer = await client.send(Call(method: "GET", url: "http://127.0.0.1:\(port)\(path)", headers: headers), tls: TLSSettings())
                return (try? answer.get().status) ?? -1
            }
            #expect(await get("/v1/clusters", firstToken) == 200)
            let second = try CLI.run(["token", "create", "--file", file, "--name", "second", "--role", "security-admin"])
            let secondToken = second.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(await get("/v1/clusters", secondToken) == 200)
            #expect(try CLI.run(["token", "revoke", "--file", file, "first"]).status == 0)
            #expect(await get("/v1/clusters", firstToken) == 401)
            #expect(await get("/v1/clusters", nil) == 401)

            // SIGHUP reads hub.yaml again: the schedule applies, a new listen address is named as needing a restart
            try "listen: 127.0.0.1:1\ntokens: tokens.yaml\nschedules: {reconcileInterval: 2h}\n"
                .write(toFile: folder + "/hub.yaml", atomically: true, encoding: .utf8)
            kill(daemon.process.processIdentifier, SIGHUP)
            try await ServeTests.waitFor { daemon.log.contains("hub.yaml read again; schedules:") }
            #expect(daemon.process.isRunning, "SIGHUP ended the daemon: \(daemon.log)")
            #expect(daemon.log.contains("reconcile every 7200 s"), "\(daemon.log)")
            #expect(daemon.log.contains("SIGHUP: listen changed in"), "\(daemon.log)")
            #expect(await get("/v1/clusters", secondToken) == 200)
            // a hub.yaml that does not read keeps the running configuration
            try "listen: [\n".write(toFile: folder + "/hub.yaml", atomically: true, encoding: .utf8)
            kill(daemon.process.processIdentifier, SIGHUP)
            try await ServeTests.waitFor { daemon.log.contains("was not read again, the running configuration stays") }
            #expect(daemon.process.isRunning)
            #expect(await get("/v1/clusters", secondToken) == 200)

            let auditAnswer = await client.send(Call(method: "GET", url: "http://127.0.0.1:\(port)/v1/audit?limit=20",
                                                     headers: [HTTPHeader("Authorization", "Bearer \(secondToken)")]), tls: TLSSettings())
            let audit = (try? auditAnswer.get().bodyText) ?? ""
            #expect(audit.contains(#""actor":"anonymous","action":"denied","detail":"401 GET /v1/clusters (/v1/clusters)""#), "\(audit)")
            #expect(!audit.contains(firstToken) && !daemon.log.contains(firstToken) && !daemon.log.contains(secondToken))
            #expect(daemon.terminate() == 0, "\(daemon.log)")
        }
    }
}
