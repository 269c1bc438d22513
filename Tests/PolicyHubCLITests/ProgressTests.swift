import Foundation
import PolicyHubTesting
import Testing

/// Progress that never goes quiet (issue 17): on a terminal, a member that hangs or retries gets a line at
/// least every 5 seconds saying what it waits for; `--timeout` bounds the whole command and names the
/// clusters still working; a log (no terminal) keeps one line per cluster.
@Suite(.serialized) struct ProgressTests {
    typealias CLI = CommandLineTests

    /// `policyhub ARGUMENTS` on a pseudo-terminal (script(1)), stdout and stderr together, with its exit status.
    static func onATerminal(_ arguments: [String]) throws -> (status: Int32, text: String, seconds: Double) {
        var environment = ProcessInfo.processInfo.environment
        environment["TERM"] = "xterm"
        environment["NO_COLOR"] = nil
        let command = ([CLI.binary] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let started = Date()
        let run = try CLI.runProcess("/usr/bin/script", ["-qec", command, "/dev/null"], environment: environment)
        // a progress line is rewritten in place ("\r", erase to the end of the line): each rewrite counts as a line
        let text = run.stdout.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .replacingOccurrences(of: "\u{1B}[K", with: "")
        return (run.status, text, Date().timeIntervalSince(started))
    }

    /// The lines of `text` that say what `cluster` waits for.
    static func waitingLines(_ text: String, _ cluster: String) -> [Substring] {
        text.split(separator: "\n").filter { $0.hasPrefix(cluster + ": waiting for an answer") || $0.hasPrefix(cluster + ": retrying") }
    }

    @Test func aHangingMemberGetsALineEveryFiveSecondsAndTimeoutEndsTheCommand() throws {
        try HostileMemberTests.withFleet(fault: .hang) { folder, double in
            let run = try Self.onATerminal(["apply", "--repo", folder, "--timeout", "12", "--cluster-timeout", "60"])
            let lines = Self.waitingLines(run.text, "hostile")
            #expect(lines.count >= 2, "12 s of a hanging member: a line at 4-5 s and at 8-10 s at least: \(run.text)")
            #expect(lines.first?.contains("s so far; gives up in") == true, "\(lines)")
            #expect(run.status == 1, "\(run.text)")
            #expect(run.seconds < 12 + 3 + 5, "--timeout 12 ended the command (took \(run.seconds) s)")
            #expect(run.text.contains("cluster hostile:") && run.text.contains("deadline"), "the hanging cluster failed by name: \(run.text)")
            #expect(run.text.contains("healthy: 9 created"), "\(run.text)")
            #expect(double.objects(cluster: "healthy").count == 9)
        }
    }

    @Test func aRetryingMemberSaysWhenTheNextAttemptGoes() throws {
        try HostileMemberTests.withFleet(fault: .status(code: 503, retryAfter: 7, count: 1)) { folder, _ in
            let run = try Self.onATerminal(["apply", "--repo", folder])
            let lines = Self.waitingLines(run.text, "hostile")
            #expect(lines.contains { $0.contains("retrying 2/4 after HTTP 503, next in") }, "\(run.text)")
            #expect(run.status == 0, "the retry succeeds: \(run.text)")
        }
    }

    @Test func driftSaysWhatAHangingMemberIsWaitingFor() throws {
        try HostileMemberTests.withFleet(fault: .hang) { folder, _ in
            // a revision to compare with (the hanging member fails its push)
            #expect(try CLI.run(["apply", "--repo", folder, "--timeout", "3"]).status == 1)
            let run = try Self.onATerminal(["drift", "--repo", folder, "--cluster", "hostile", "--cluster", "healthy", "--timeout", "7"])
            #expect(Self.waitingLines(run.text, "hostile").count >= 1, "\(run.text)")
            #expect(Self.waitingLines(run.text, "healthy").isEmpty)
            #expect(run.status == 2 && run.text.contains("unreachable"), "the hanging member is unreachable: \(run.text)")
        }
    }

    @Test func aLogGetsOneLinePerClusterAndTheTimeoutStillHolds() throws {
        try HostileMemberTests.withFleet(fault: .hang) { folder, _ in
            let started = Date()
            let apply = try CLI.run(["apply", "--repo", folder, "--timeout", "6"])
            let seconds = Date().timeIntervalSince(started)
            #expect(apply.status == 1)
            #expect(seconds < 6 + 3 + 5, "took \(seconds) s")
            #expect(Self.waitingLines(apply.stderr, "hostile").isEmpty, "no heartbeat lines in a log: \(apply.stderr)")
            #expect(apply.stderr.contains("cluster hostile:"), "\(apply.stderr)")
            let status = try CLI.run(["status", "--repo", folder])
            #expect(status.status == 2 && status.stdout.contains("hostile"), "the timed-out cluster is recorded as failed")
            let bad = try CLI.run(["apply", "--repo", folder, "--timeout", "0"])
            #expect(bad.status == 64 && bad.stderr.contains("--timeout must be a positive number of seconds"))
        }
    }
}
