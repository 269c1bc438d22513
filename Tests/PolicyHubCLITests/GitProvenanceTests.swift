import Foundation
import PolicyCore
import Testing

/// Revisions from commits (issue 15): a test git repository made here, commits signed with throwaway
/// OpenPGP and SSH keys, one unsigned, one signed by a key nobody trusts, one forged; what `apply`,
/// `promote` and `history` make of each, with the real git, gpg and ssh-keygen.
@Suite(.serialized) struct GitProvenanceTests {
    /// A copy of the example repository as a git work tree, and keys: `trusted` and `mallory` OpenPGP keys,
    /// `dev` and `stranger` SSH keys. The trusted files (outside the repository): `trusted.asc` and
    /// `allowed_signers`.
    final class Fixture {
        let folder: String
        let repo: String
        let gnupg: String
        let trustedFingerprint: String
        let malloryFingerprint: String
        var priority = 100

        init(folder: String) throws {
            self.folder = folder
            repo = folder + "/repo"
            gnupg = folder + "/gnupg"
            try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: gnupg, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            for identity in ["Sec Team <sec@example.com>", "Mallory <mallory@example.com>"] {
                try Fixture.check(Self.tool("gpg", ["--batch", "--passphrase", "", "--quick-gen-key", identity, "ed25519", "sign", "never"],
                                            gnupg: gnupg))
            }
            trustedFingerprint = try Fixture.fingerprint("sec@example.com", gnupg: gnupg)
            malloryFingerprint = try Fixture.fingerprint("mallory@example.com", gnupg: gnupg)
            let exported = try Self.tool("gpg", ["--batch", "--armor", "--export", "sec@example.com"], gnupg: gnupg)
            try exported.stdout.write(toFile: folder + "/trusted.asc", atomically: true, encoding: .utf8)
            for key in ["dev", "stranger"] {
                try Fixture.check(Self.tool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "\(key)@example.com", "-f", folder + "/" + key],
                                            gnupg: gnupg))
            }
            let devKey = try String(contentsOfFile: folder + "/dev.pub", encoding: .utf8)
            try "dev@example.com \(devKey)".write(toFile: folder + "/allowed_signers", atomically: true, encoding: .utf8)
            try Repo.copyExample(to: repo)
            try git(["init", "-q"])
            try git(["add", "-A"])
            try git(["commit", "-q", "-m", "initial policy"])
        }

        deinit {
            _ = try? Self.tool("gpgconf", ["--kill", "all"], gnupg: gnupg)
        }

        /// The arguments the hub gets in every test: both trusted files, a state file outside the repository.
        var hubOptions: [String] {
            ["--repo", repo, "--state", folder + "/state.sqlite", "--trusted-keys", folder + "/trusted.asc",
             "--trusted-keys", folder + "/allowed_signers"]
        }

        static func tool(_ name: String, _ arguments: [String], gnupg: String, in folder: String? = nil) throws -> CommandLineTests.Run {
            let path = try #require(["/usr/bin/", "/bin/"].map { $0 + name }.first { FileManager.default.isExecutableFile(atPath: $0) },
                                    "\(name) is not installed (bash scripts/setup.sh)")
            return try CommandLineTests.runProcess(path, arguments, in: folder, environment: [
                "PATH": "/usr/bin:/bin", "HOME": (gnupg as NSString).deletingLastPathComponent, "GNUPGHOME": gnupg,
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "LC_ALL": "C",
            ])
        }

        static func check(_ run: CommandLineTests.Run) throws {
            try #require(run.status == 0, "\(run.stdout)\(run.stderr)")
        }

        static func fingerprint(_ email: String, gnupg: String) throws -> String {
            let listing = try tool("gpg", ["--batch", "--with-colons", "--list-keys", email], gnupg: gnupg)
            let line = try #require(listing.stdout.split(separator: "\n").first { $0.hasPrefix("fpr:") })
            return String(line.split(separator: ":", omittingEmptySubsequences: false)[9])
        }

        @discardableResult
        func git(_ arguments: [String]) throws -> String {
            let run = try Self.tool("git", ["-c", "user.name=Alice Dev", "-c", "user.email=alice@example.com"] + arguments,
                                    gnupg: gnupg, in: repo)
            try Self.check(run)
            return run.stdout
        }

        enum Signing { case none, openPGP(String), ssh(String) }

        /// Changes one policy (the SSH egress rule's priority) and commits it, signed as asked.
        func commitChange(_ message: String, signing: Signing) throws {
            let file = repo + "/policies/global/egress-ssh.yaml"
            let text = try String(contentsOfFile: file, encoding: .utf8)
            priority -= 1
            let changed = text.replacingOccurrences(of: #"priority: \d+"#, with: "priority: \(priority)", options: .regularExpression)
            try changed.write(toFile: file, atomically: true, encoding: .utf8)
            try commitAll(message, signing: signing)
        }

        func commitAll(_ message: String, signing: Signing) throws {
            switch signing {
            case .none: try git(["commit", "-q", "-a", "-m", message])
            case .openPGP(let fingerprint): try git(["commit", "-q", "-a", "-S\(fingerprint)", "-m", message])
            case .ssh(let key):
                try git(["-c", "gpg.format=ssh", "-c", "user.signingkey=\(folder)/\(key)", "commit", "-q", "-a", "-S", "-m", message])
            }
        }

        /// Replaces HEAD by a copy whose message was changed after signing (the same tree): a bad signature.
        func forgeHead(_ message: String) throws {
            let object = try git(["cat-file", "commit", "HEAD"])
            var lines = object.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let subject = try #require(lines.lastIndex { !$0.isEmpty })
            lines[subject] = message
            try lines.joined(separator: "\n").write(toFile: folder + "/forged", atomically: true, encoding: .utf8)
            let forged = try git(["hash-object", "-t", "commit", "-w", folder + "/forged"]).trimmingCharacters(in: .whitespacesAndNewlines)
            try git(["update-ref", "HEAD", forged])
        }

        /// `policyhub` with `hubOptions` after the subcommand, run with the signer's own keyring as its
        /// GNUPGHOME (every key in it trusted), which the hub must not use.
        func hub(_ command: [String], _ extra: [String] = []) throws -> CommandLineTests.Run {
            try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.binary), "build the policyhub product first")
            return try CommandLineTests.runProcess(CommandLineTests.binary, command + hubOptions + extra, environment: [
                "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "GNUPGHOME": gnupg,
                "HOME": folder, "USER": "alice",
            ])
        }

        /// `history --output json` as values, newest first.
        func history() throws -> [Value] {
            let run = try hub(["history"], ["--output", "json"])
            try Self.check(run)
            guard case .list(let items) = try JSONReader.parse(Array(run.stdout.utf8)) else {
                Issue.record("history --output json is not a list: \(run.stdout)")
                return []
            }
            return items
        }

        /// Sets or lifts `requireSignedCommits` of staging (which has no other gate) or production.
        func setGate(_ environment: String, requireSignedCommits: Bool) throws {
            let file = repo + "/clusters/environments.yaml"
            let text = try String(contentsOfFile: file, encoding: .utf8)
            let (without, with) = environment == "staging"
                ? ("- name: staging\n", "- name: staging\n  gates: {requireSignedCommits: true}\n")
                : ("  gates:\n    requireInSync: true\n", "  gates:\n    requireSignedCommits: true\n    requireInSync: true\n")
            let changed = requireSignedCommits ? text.replacingOccurrences(of: without, with: with)
                                               : text.replacingOccurrences(of: with, with: without)
            try #require(changed != text, "environments.yaml changed shape")
            try changed.write(toFile: file, atomically: true, encoding: .utf8)
        }
    }

    static func withFixture(_ body: (Fixture) throws -> Void) throws {
        try Repo.withTemporaryFolder { folder in try body(try Fixture(folder: folder)) }
    }

    @Test func everySignatureStatusIsRecordedWithItsCommit() throws {
        try Self.withFixture { fixture in
            try Fixture.check(try fixture.hub(["apply"]))
            try fixture.commitChange("signed by the security team", signing: .openPGP(fixture.trustedFingerprint))
            try Fixture.check(try fixture.hub(["apply"]))
            try fixture.commitChange("signed with a trusted SSH key", signing: .ssh("dev"))
            try Fixture.check(try fixture.hub(["apply"]))
            try fixture.commitChange("signed by mallory", signing: .openPGP(fixture.malloryFingerprint))
            try Fixture.check(try fixture.hub(["apply"]))
            try fixture.commitChange("signed by a stranger's SSH key", signing: .ssh("stranger"))
            try Fixture.check(try fixture.hub(["apply"]))
            try fixture.commitChange("signed, then edited", signing: .openPGP(fixture.trustedFingerprint))
            try fixture.forgeHead("signed, then edited by someone else")
            try Fixture.check(try fixture.hub(["apply"]))

            let history = try fixture.history()
            let commits = history.map { $0["commit"] }
            #expect(commits.map { $0?["signature"]?.stringValue } == ["bad", "unknown-key", "unknown-key", "good", "good", "unsigned"])
            #expect(commits.map { $0?["subject"]?.stringValue } == [
                "signed, then edited by someone else", "signed by a stranger's SSH key", "signed by mallory",
                "signed with a trusted SSH key", "signed by the security team", "initial policy",
            ])
            #expect(commits[4]?["signer"] == .string("Sec Team <sec@example.com>"))
            #expect(commits[4]?["signingKey"] == .string(fixture.trustedFingerprint))
            #expect(commits[3]?["signer"] == .string("dev@example.com"))
            #expect(commits[3]?["signingKey"]?.stringValue?.hasPrefix("SHA256:") == true)
            // mallory's key is in the GNUPGHOME the hub was started with, and still not trusted
            #expect(commits[2]?["signingKey"]?.stringValue.map { fixture.malloryFingerprint.hasSuffix($0) } == true)
            #expect(commits[5]?["signingKey"] == .null && commits[5]?["author"] == .string("Alice Dev <alice@example.com>"))
            let head = try fixture.git(["rev-parse", "HEAD"]).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(commits[0]?["id"] == .string(head))
            // the text history and the audit log say the same
            let text = try fixture.hub(["history"])
            #expect(text.stdout.contains("commit \(head.prefix(12)) (signature bad"), "\(text.stdout)")
            let status = try fixture.hub(["status"], ["--output", "json"])
            #expect(status.stdout.contains("\"desiredCommit\": \"\(head)\""), "\(status.stdout)")
        }
    }

    @Test func requireSignedCommitsRefusesTheUnsignedAndTheUnknownEvenWithForce() throws {
        try Self.withFixture { fixture in
            try fixture.setGate("production", requireSignedCommits: true)
            try fixture.commitAll("production takes signed commits only", signing: .none)
            // staging has no such gate: the unsigned commit is recorded there
            try Fixture.check(try fixture.hub(["apply"]))
            let refused = try fixture.hub(["promote"], ["--to", "production", "--all", "--force", "--reason", "override in a test"])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("gate requireSignedCommits: commit "), "\(refused.stderr)")
            #expect(refused.stderr.contains("(production takes signed commits only) by Alice Dev <alice@example.com> is not signed"), "\(refused.stderr)")
            #expect(refused.stderr.contains("--force cannot override"), "\(refused.stderr)")
            try fixture.commitChange("signed by mallory", signing: .openPGP(fixture.malloryFingerprint))
            try Fixture.check(try fixture.hub(["apply"]))
            let unknown = try fixture.hub(["promote"], ["--to", "production", "--all", "--force", "--reason", "override in a test"])
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains("(signed by mallory) is signed by Mallory <mallory@example.com>") || unknown.stderr.contains("(signed by mallory) is signed by key"),
                    "\(unknown.stderr)")
            #expect(unknown.stderr.contains("not among the trusted keys"), "\(unknown.stderr)")
            // the gate shows in a dry run too, and no production revision was recorded by any of it
            let dryRun = try fixture.hub(["promote"], ["--to", "production", "--all", "--dry-run"])
            #expect(dryRun.stdout.contains("requireSignedCommits") || dryRun.stderr.contains("requireSignedCommits"), "\(dryRun.stdout)\(dryRun.stderr)")
            #expect(try fixture.history().allSatisfy { $0["environment"] == .string("staging") })

            try fixture.commitChange("signed by the security team", signing: .openPGP(fixture.trustedFingerprint))
            try Fixture.check(try fixture.hub(["apply"]))
            let promoted = try fixture.hub(["promote"], ["--to", "production", "--all", "--force", "--reason", "override in a test"])
            try Fixture.check(promoted)
            let production = try #require(try fixture.history().first)
            #expect(production["environment"] == .string("production"))
            #expect(production["commit"]?["subject"] == .string("signed by the security team"))
            #expect(production["commit"]?["signature"] == .string("good"))
            #expect(production["commit"]?["signatureRequired"] == .bool(true))
        }
    }

    @Test func liftingTheGateTakesASignedCommit() throws {
        try Self.withFixture { fixture in
            try fixture.setGate("staging", requireSignedCommits: true)
            try fixture.commitChange("staging takes signed commits only", signing: .openPGP(fixture.trustedFingerprint))
            try Fixture.check(try fixture.hub(["apply"]))
            // an unsigned commit that removes the gate along with a change is refused: the gate held when it was read
            try fixture.setGate("staging", requireSignedCommits: false)
            try fixture.commitChange("drop the gate, unsigned", signing: .none)
            let refused = try fixture.hub(["apply"])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("(drop the gate, unsigned) by Alice Dev <alice@example.com> is not signed"), "\(refused.stderr)")
            try fixture.git(["commit", "-q", "--amend", "--no-edit", "-S\(fixture.trustedFingerprint)"])
            try Fixture.check(try fixture.hub(["apply"]))
            try fixture.commitChange("unsigned, after the gate was lifted", signing: .none)
            try Fixture.check(try fixture.hub(["apply"]))
            let signatures = try fixture.history().map { $0["commit"]?["signature"]?.stringValue }
            #expect(signatures == ["unsigned", "good", "good"], "\(signatures)")
        }
    }

    @Test func aTreeThatDiffersFromItsCommitIsRefusedUnlessAllowDirty() throws {
        try Self.withFixture { fixture in
            try Fixture.check(try fixture.hub(["apply"]))
            let ssh = fixture.repo + "/policies/global/egress-ssh.yaml"
            let text = try String(contentsOfFile: ssh, encoding: .utf8)
            try text.replacingOccurrences(of: "priority: 100", with: "priority: 42").write(toFile: ssh, atomically: true, encoding: .utf8)
            // a YAML file outside policies/ and clusters/ is not read, so it does not count
            try "apiVersion: neuvector.com/v1\n".write(toFile: fixture.repo + "/notes.yaml", atomically: true, encoding: .utf8)

            let refused = try fixture.hub(["apply"])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("policies/ or clusters/ differ from commit "), "\(refused.stderr)")
            #expect(refused.stderr.contains("policies/global/egress-ssh.yaml (modified)"), "\(refused.stderr)")
            #expect(!refused.stderr.contains("notes.yaml"), "a file outside policies/ and clusters/ does not count")
            #expect(refused.stderr.contains("--allow-dirty"))
            #expect(try fixture.history().count == 1)
            let dryRun = try fixture.hub(["apply"], ["--dry-run"])
            #expect(dryRun.status == 1)

            try FileManager.default.removeItem(atPath: fixture.repo + "/policies/namespaces/payments/api.yaml")
            let deleted = try fixture.hub(["apply"])
            #expect(deleted.stderr.contains("policies/namespaces/payments/api.yaml (deleted)"), "\(deleted.stderr)")
            try fixture.git(["checkout", "-q", "--", "policies/namespaces/payments/api.yaml"])

            let dirty = try fixture.hub(["apply"], ["--allow-dirty"])
            try Fixture.check(dirty)
            #expect(dirty.stderr.contains("with uncommitted changes"), "\(dirty.stderr)")
            let newest = try #require(try fixture.history().first)
            #expect(newest["commit"]?["dirty"] == .bool(true))
            #expect(newest["commit"]?["subject"] == .string("initial policy"))
        }
    }

    @Test func anUntrackedOrIgnoredPolicyFileMakesTheTreeDirty() throws {
        try Self.withFixture { fixture in
            // git ignores it, and the hub reads it: it counts
            try "policies/global/extra.yaml\n".write(toFile: fixture.repo + "/.gitignore", atomically: true, encoding: .utf8)
            try fixture.git(["add", ".gitignore"])
            try fixture.commitAll("ignore extra.yaml", signing: .none)
            let extra = fixture.repo + "/policies/global/extra.yaml"
            let ssh = try String(contentsOfFile: fixture.repo + "/policies/global/egress-ssh.yaml", encoding: .utf8)
            try ssh.replacingOccurrences(of: "deny-ssh-to-external", with: "deny-ssh-extra").write(toFile: extra, atomically: true, encoding: .utf8)
            let refused = try fixture.hub(["apply"])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("policies/global/extra.yaml (not committed)"), "\(refused.stderr)")
        }
    }

    @Test func nothingInTheRepositoryMakesTheHubRunAProgramOrTrustAKey() throws {
        try Self.withFixture { fixture in
            // a repository configuration that would run programs, and that names its own allowed signers
            let marker = fixture.folder + "/ran"
            let script = fixture.folder + "/evil.sh"
            try "#!/bin/sh\ntouch \(marker)\nexit 0\n".write(toFile: script, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
            let strangerKey = try String(contentsOfFile: fixture.folder + "/stranger.pub", encoding: .utf8)
            try "stranger@example.com \(strangerKey)".write(toFile: fixture.repo + "/signers", atomically: true, encoding: .utf8)
            try fixture.commitChange("signed by a stranger", signing: .ssh("stranger"))
            for (key, value) in [("core.fsmonitor", script), ("gpg.program", script), ("gpg.ssh.program", script),
                                 ("gpg.ssh.allowedSignersFile", fixture.repo + "/signers"), ("core.pager", script)] {
                try fixture.git(["config", key, value])
            }
            try Fixture.check(try fixture.hub(["apply"]))
            #expect(!FileManager.default.fileExists(atPath: marker), "the hub ran a program the repository named")
            #expect(try fixture.history().first?["commit"]?["signature"] == .string("unknown-key"))

            // keys inside the repository are refused as trusted keys
            // (changed on disk only: a commit made here would run the repository's fsmonitor itself)
            let file = fixture.repo + "/policies/global/egress-ssh.yaml"
            let text = try String(contentsOfFile: file, encoding: .utf8)
            try text.replacingOccurrences(of: #"priority: \d+"#, with: "priority: 7", options: .regularExpression)
                .write(toFile: file, atomically: true, encoding: .utf8)
            let inside = try fixture.hub(["apply"], ["--allow-dirty", "--trusted-keys", fixture.repo + "/signers"])
            #expect(inside.status == 1)
            #expect(inside.stderr.contains("lie inside the policy repository"), "\(inside.stderr)")
            #expect(!FileManager.default.fileExists(atPath: marker))
        }
    }

    @Test func trustedKeysThatCannotBeReadAreAnError() throws {
        try Self.withFixture { fixture in
            try fixture.commitChange("a change", signing: .none)
            let missing = try fixture.hub(["apply"], ["--trusted-keys", fixture.folder + "/no-such-file"])
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("cannot read the trusted keys \(fixture.folder)/no-such-file"), "\(missing.stderr)")
            try "not a key at all\n".write(toFile: fixture.folder + "/junk", atomically: true, encoding: .utf8)
            let junk = try fixture.hub(["apply"], ["--trusted-keys", fixture.folder + "/junk"])
            #expect(junk.status == 1)
            #expect(junk.stderr.contains("is neither an OpenPGP key nor an allowed-signers line"), "\(junk.stderr)")
        }
    }
}
