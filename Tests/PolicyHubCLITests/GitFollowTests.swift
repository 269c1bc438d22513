import Crypto
import Foundation
import HubService
import HubTransport
import PolicyCore
import Testing

/// The daemon following a branch of a bare repository made here (issue 15): through its poll, through a
/// signed push event (a bad signature refused, a replay harmless), and a commit that does not validate
/// rejected with the fleet left on the last good commit.
@Suite(.serialized) struct GitFollowTests {
    typealias CLI = CommandLineTests
    static let secret = "s3cret-for-push-events"

    /// `upstream.git` (bare), `work` (a clone people commit in), `hub/` (hub.yaml, tokens, the state file and
    /// the daemon's checkout).
    struct Remote {
        let folder: String
        var upstream: String { folder + "/upstream.git" }
        var work: String { folder + "/work" }
        var hub: String { folder + "/hub" }

        @discardableResult
        func git(_ arguments: [String], in directory: String? = nil) throws -> String {
            let run = try CommandLineTests.runProcess("/usr/bin/git", ["-c", "user.name=Alice Dev", "-c", "user.email=alice@example.com",
                                                                       "-c", "init.defaultBranch=main"] + arguments,
                                                      in: directory ?? work,
                                                      environment: ["PATH": "/usr/bin:/bin", "HOME": folder, "GIT_CONFIG_NOSYSTEM": "1",
                                                                    "GIT_CONFIG_GLOBAL": "/dev/null"])
            try #require(run.status == 0, "git \(arguments.joined(separator: " ")): \(run.stderr)")
            return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        static func make(in folder: String) throws -> Remote {
            let remote = Remote(folder: folder)
            for path in [remote.work, remote.hub] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
            try remote.git(["init", "-q", "--bare", remote.upstream], in: folder)
            try remote.git(["init", "-q"])
            try Repo.copyExample(to: remote.work)
            try ".policyhub/\n".write(toFile: remote.work + "/.gitignore", atomically: true, encoding: .utf8)
            try remote.git(["add", "-A"])
            try remote.git(["commit", "-q", "-m", "initial policy"])
            try remote.git(["remote", "add", "origin", remote.upstream])
            try remote.git(["push", "-q", "origin", "HEAD:main"])
            return remote
        }

        /// Changes the SSH egress rule's priority, commits and pushes; the new commit id.
        func pushChange(priority: Int, _ message: String) throws -> String {
            let file = work + "/policies/global/egress-ssh.yaml"
            let text = try String(contentsOfFile: file, encoding: .utf8)
            try text.replacingOccurrences(of: #"priority: \d+"#, with: "priority: \(priority)", options: .regularExpression)
                .write(toFile: file, atomically: true, encoding: .utf8)
            return try commitAndPush(message)
        }

        func commitAndPush(_ message: String) throws -> String {
            try git(["commit", "-q", "-a", "-m", message])
            try git(["push", "-q", "origin", "HEAD:main"])
            return try git(["rev-parse", "HEAD"])
        }

        func writeConfig(pollInterval: String) throws {
            try """
                listen: 127.0.0.1:0
                tokens: tokens.yaml
                state: state.sqlite
                repository: {url: ../upstream.git, branch: main, pollInterval: \(pollInterval), webhookSecretFromEnv: POLICYHUB_TEST_GIT_SECRET, checkout: checkout}
                schedules: {reconcileInterval: 1h}
                watch: false
                """.write(toFile: hub + "/hub.yaml", atomically: true, encoding: .utf8)
        }

        /// The commits of the recorded revisions, newest first.
        func recordedCommits() throws -> [String] {
            let run = try CLI.run(["history", "--repo", hub + "/checkout", "--state", hub + "/state.sqlite", "--output", "json"])
            guard run.status == 0, case .list(let items) = try JSONReader.parse(Array(run.stdout.utf8)) else { return [] }
            return items.compactMap { $0["commit"]?["id"]?.stringValue }
        }

        /// Waits up to 20 s for `condition`.
        func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
            for _ in 0..<200 {
                if try await condition() { return }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            Issue.record("timed out waiting for \(what)")
        }
    }

    static func send(_ port: Int, body: String, headers: [HTTPHeader]) async throws -> Reply {
        var settings = TransportSettings()
        settings.maxAttempts = 1
        let client = CurlTransport(settings: settings)
        defer { client.shutdown() }
        return try await client.send(Call(method: "POST", url: "http://127.0.0.1:\(port)/v1/hooks/git",
                                          headers: [HTTPHeader("Content-Type", "application/json")] + headers,
                                          body: Array(body.utf8)), tls: TLSSettings()).get()
    }

    static func signature(_ body: String, secret: String = GitFollowTests.secret) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(body.utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    @Test func theDaemonFollowsTheBranchByPollAndByPushEvent() async throws {
        try await Repo.withTemporaryFolderAsync { folder in
            let remote = try Remote.make(in: folder)
            let initial = try remote.git(["rev-parse", "HEAD"])
            let admin = TokenFile.newToken()
            try TokenFile.append(path: remote.hub + "/tokens.yaml", name: "admin", role: .securityAdmin, namespaces: [], sha256: admin.sha256)

            // 1. the poll: the first commit is taken at start, the next within the poll interval
            try remote.writeConfig(pollInterval: "1s")
            let polling = try ServeTests.ServeProcess(config: remote.hub + "/hub.yaml", environment: ["POLICYHUB_TEST_GIT_SECRET": Self.secret])
            _ = try await polling.port()
            #expect(try remote.recordedCommits() == [initial], "\(polling.log)")
            let second = try remote.pushChange(priority: 90, "lower the ssh priority")
            try await remote.eventually("the polled commit") { try remote.recordedCommits().first == second }
            let gitops = remote.hub + "/checkout/.policyhub/gitops/staging-eu-1"
            try await remote.eventually("the push") {
                (try? String(contentsOfFile: gitops + "/cluster/nvclustersecurityrules/deny-ssh-to-external.yaml", encoding: .utf8))?
                    .contains("policyhub.dev/revision: r2") == true
            }
            #expect(polling.terminate() == 0, "\(polling.log)")

            // 2. push events: the poll is an hour now
            try remote.writeConfig(pollInterval: "1h")
            let hooked = try ServeTests.ServeProcess(config: remote.hub + "/hub.yaml", environment: ["POLICYHUB_TEST_GIT_SECRET": Self.secret])
            let port = try await hooked.port()
            let third = try remote.pushChange(priority: 80, "lower it again")
            let push = #"{"ref":"refs/heads/main","after":"\#(third)","repository":{"full_name":"sec/policy"}}"#
            let forged = try await Self.send(port, body: push, headers: [HTTPHeader("X-Hub-Signature-256", Self.signature(push, secret: "wrong")),
                                                                         HTTPHeader("X-GitHub-Event", "push")])
            #expect(forged.status == 401)
            let unsigned = try await Self.send(port, body: push, headers: [HTTPHeader("X-GitHub-Event", "push")])
            #expect(unsigned.status == 401)
            try await Task.sleep(nanoseconds: 1_500_000_000)
            #expect(try remote.recordedCommits().first == second, "a refused event fetched nothing")
            let accepted = try await Self.send(port, body: push, headers: [HTTPHeader("X-Hub-Signature-256", Self.signature(push)),
                                                                           HTTPHeader("X-GitHub-Event", "push"),
                                                                           HTTPHeader("X-GitHub-Delivery", "d-1")])
            #expect(accepted.status == 202 && accepted.bodyText.contains("fetching"), "\(accepted.bodyText)")
            try await remote.eventually("the pushed commit") { try remote.recordedCommits().first == third }
            // a replay of the same delivery records nothing new
            let replay = try await Self.send(port, body: push, headers: [HTTPHeader("X-Hub-Signature-256", Self.signature(push)),
                                                                         HTTPHeader("X-GitHub-Delivery", "d-1")])
            #expect(replay.status == 202)
            try await Task.sleep(nanoseconds: 1_000_000_000)
            #expect(try remote.recordedCommits() == [third, second, initial])
            // another branch is ignored
            let other = #"{"ref":"refs/heads/feature","after":"\#(third)"}"#
            let ignored = try await Self.send(port, body: other, headers: [HTTPHeader("X-Hub-Signature-256", Self.signature(other))])
            #expect(ignored.status == 202 && ignored.bodyText.contains("ignored"))

            // 3. a commit that does not validate is rejected; the fleet stays on the last good commit
            try "kind: [".write(toFile: remote.work + "/policies/global/broken.yaml", atomically: true, encoding: .utf8)
            try remote.git(["add", "policies/global/broken.yaml"])
            let broken = try remote.commitAndPush("a broken file")
            let gitlab = #"{"object_kind":"push","ref":"refs/heads/main","after":"\#(broken)","checkout_sha":"\#(broken)"}"#
            let event = try await Self.send(port, body: gitlab, headers: [HTTPHeader("X-Gitlab-Token", Self.secret),
                                                                          HTTPHeader("X-Gitlab-Event", "Push Hook")])
            #expect(event.status == 202)
            var settings = TransportSettings()
            settings.maxAttempts = 1
            let client = CurlTransport(settings: settings)
            defer { client.shutdown() }
            try await remote.eventually("the rejection in the audit log") {
                let answer = await client.send(Call(method: "GET", url: "http://127.0.0.1:\(port)/v1/audit",
                                                    headers: [HTTPHeader("Authorization", "Bearer \(admin.token)")]), tls: TLSSettings())
                let text = (try? answer.get().bodyText) ?? ""
                return text.contains("commit-rejected") && text.contains(String(broken.prefix(12)))
            }
            #expect(try remote.recordedCommits().first == third)
            #expect(try remote.git(["rev-parse", "HEAD"], in: remote.hub + "/checkout") == third, "the checkout is back on the last good commit")
            let status = try CLI.run(["status", "--repo", remote.hub + "/checkout", "--state", remote.hub + "/state.sqlite"])
            #expect(status.stdout.contains("staging-eu-1  staging  desired r3"), "\(status.stdout)")
            let gitlabForged = try await Self.send(port, body: gitlab, headers: [HTTPHeader("X-Gitlab-Token", "nope")])
            #expect(gitlabForged.status == 401)

            // 4. an API write is a commit on the branch: refused with 409 while the branch holds a commit the hub
            // has not taken (the broken one), then, once a fix is followed, committed as the token's name
            let nginx = try String(contentsOfFile: Repo.root + "/policies/namespaces/demo/nginx.yaml", encoding: .utf8)
            let body = nginx.split(separator: "\n", omittingEmptySubsequences: false).drop { $0.hasPrefix("#") }
                .joined(separator: "\n").replacingOccurrences(of: "ports: tcp/80\n", with: "ports: tcp/8080  # changed through the API\n")
            let documentURL = "http://127.0.0.1:\(port)/v1/namespaces/demo/documents/NvSecurityRule/nv.nginx-pod.demo"
            func put() async -> Reply? {
                try? await client.send(Call(method: "PUT", url: documentURL, headers: [HTTPHeader("Authorization", "Bearer \(admin.token)"),
                                                                                    HTTPHeader("Content-Type", "application/yaml")],
                                            body: Array(body.utf8)), tls: TLSSettings()).get()
            }
            // while the sync that rejected the broken commit is still putting the checkout back, the daemon may have
            // read the broken tree (a 409 of its own); once it has read the good one again, the write meets the branch
            var raced = await put()
            try await remote.eventually("the write to meet the moved branch") {
                if raced?.bodyText.contains("main moved to") == true { return true }
                raced = await put()
                return raced?.bodyText.contains("main moved to") == true
            }
            #expect(raced?.status == 409, "\(raced?.bodyText ?? "no answer")")
            #expect(raced?.bodyText.contains("main moved to \(broken.prefix(12))") == true, "\(raced?.bodyText ?? "")")
            try FileManager.default.removeItem(atPath: remote.work + "/policies/global/broken.yaml")
            try remote.git(["add", "-A"])
            let fixed = try remote.commitAndPush("remove the broken file")
            let fix = #"{"ref":"refs/heads/main","after":"\#(fixed)"}"#
            _ = try await Self.send(port, body: fix, headers: [HTTPHeader("X-Hub-Signature-256", Self.signature(fix))])
            // the fix holds what r3 holds: no new revision, the checkout moves on
            try await remote.eventually("the fix") { (try? remote.git(["rev-parse", "HEAD"], in: remote.hub + "/checkout")) == fixed }
            let written = await put()
            #expect(written?.status == 200 || written?.status == 201, "\(written?.bodyText ?? "no answer")")
            try remote.git(["pull", "-q", "origin", "main"])
            let log = try remote.git(["log", "-1", "--format=%an|%cn|%s"])
            #expect(log.hasPrefix("admin|PolicyHub|PUT /v1/namespaces/demo/documents/NvSecurityRule/nv.nginx-pod.demo: r"), "\(log)")
            let file = try String(contentsOfFile: remote.work + "/policies/namespaces/demo/nginx.yaml", encoding: .utf8)
            #expect(file.hasPrefix("# The demo application of NeuVector's docs"), "the file's own comments stay: \(file.prefix(300))")
            #expect(file.contains("ports: tcp/8080  # changed through the API"))
            let diff = try remote.git(["diff", "--stat", "HEAD~1", "HEAD"])
            #expect(diff.contains("1 file changed, 1 insertion(+), 1 deletion(-)"), "\(diff)")
            #expect(try remote.recordedCommits().first == (try remote.git(["rev-parse", "HEAD"])))
            #expect(hooked.terminate() == 0)
            #expect(!hooked.log.contains(Self.secret))
        }
    }
}
