import ArgumentParser
import Foundation
import HubStore
import HubStorePostgres
import PolicyHubTesting

/// `policyhub-bench replicas`: the push of a fleet on the API double in NeuVector mode (every write answered
/// after the webhook's admission latency, so the work waits rather than computes) by one, two and three
/// `policyhub serve` replicas on one PostgreSQL database, in the same run; then the takeover time after one of
/// two replicas is killed with SIGKILL mid-push.
struct BenchReplicasCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replicas",
        abstract: "Push of --clusters clusters by 1, 2 and 3 replicas on one PostgreSQL database, and the takeover after a SIGKILL.")

    @Option(help: "Clusters (virtual clusters on one API double, about 20 objects each).")
    var clusters: Int = 10_000

    @Option(help: "Seconds NeuVector's webhook holds every write (it sleeps 1 s).")
    var latency: Double = 1

    @Option(help: "pushConcurrency of each replica (clusters it pushes at once).")
    var pushConcurrency: Int = 100

    @Option(help: "memberConnections of each replica (requests in flight at once over all its members).")
    var memberConnections: Int = 1000

    @Flag(help: "Only the takeover measurement.")
    var takeoverOnly = false

    @Option(help: "Seconds a claim lasts unless renewed (POLICYHUB_CLAIM_TTL of the replicas).")
    var claimTTL: Double = 6

    func run() async throws {
        let binary = (CommandLine.arguments[0] as NSString).deletingLastPathComponent + "/policyhub"
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw ValidationError("\(binary) is missing: build the package first") }
        try await BenchPushCommand.withFleet(clusters: clusters, environment: "staging") { root, repo, double, _ in
            for index in 0..<clusters { double.setNeuVector(.init(admissionLatency: latency, queueCapacity: 128), cluster: "c\(index)") }
            print("fleet: \(clusters) clusters on the API double in NeuVector mode, \(latency) s admission latency; per replica pushConcurrency \(pushConcurrency), memberConnections \(memberConnections)")
            var times: [Int: Double] = [:]
            for count in 1...3 where !takeoverOnly {
                let round = try Round(binary: binary, root: root, repo: repo, double: double, replicas: count, clusters: clusters,
                                      pushConcurrency: pushConcurrency, connections: memberConnections, ttl: claimTTL)
                defer { round.stop() }
                let took = try await round.pushAll()
                times[count] = took
                let ratio = count == 1 ? "" : String(format: "   %.2fx faster than one", (times[1] ?? took) / took)
                print(String(format: "  %d replica%@  %8.1f s  (%.0f clusters/s)%@", count, count == 1 ? " " : "s", took, Double(clusters) / took, ratio))
            }
            let round = try Round(binary: binary, root: root, repo: repo, double: double, replicas: 2, clusters: clusters,
                                  pushConcurrency: pushConcurrency, connections: memberConnections, ttl: claimTTL)
            defer { round.stop() }
            let (held, first, all) = try await round.killOneMidPush()
            print(String(format: "  takeover: the replica killed with SIGKILL held %d clusters not yet applied; the survivor claimed the first %.1f s after the kill (claim lifetime %.0f s), all were applied after %.1f s",
                         held, first, claimTTL, all))
        }
    }

    /// One measurement: a fresh database, the double's objects forgotten, `replicas` daemons started.
    final class Round {
        let repo: String
        let double: KubernetesAPIDouble
        let url: String
        let clusters: Int
        let binary: String
        var processes: [Process] = []
        let store: PostgresHubStore

        init(binary: String, root: String, repo: String, double: KubernetesAPIDouble, replicas: Int, clusters: Int,
             pushConcurrency: Int, connections: Int, ttl: Double) throws {
            self.repo = repo
            self.double = double
            self.clusters = clusters
            self.binary = binary
            double.reset()
            url = try TestPostgres.freshDatabase()
            store = try PostgresHubStore(url: url)
            try """
                listen: 127.0.0.1:0
                state: \(url)
                repository: \(repo)
                tokens: tokens.yaml
                watch: false
                pushConcurrency: \(pushConcurrency)
                memberConnections: \(connections)
                apiNice: 0
                schedules: {reconcileInterval: 1s}
                """.write(toFile: root + "/hub.yaml", atomically: true, encoding: .utf8)
            try "tokens: []\n".write(toFile: root + "/tokens.yaml", atomically: true, encoding: .utf8)
            for index in 0..<replicas {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: binary)
                process.arguments = ["serve", "--config", root + "/hub.yaml"]
                process.environment = ProcessInfo.processInfo.environment.merging(["POLICYHUB_CLAIM_TTL": "\(ttl)"]) { _, new in new }
                let log = root + "/replica-\(replicas)-\(index).log"
                FileManager.default.createFile(atPath: log, contents: nil)
                process.standardError = FileHandle(forWritingAtPath: log)
                process.standardOutput = FileHandle.nullDevice
                try process.run()
                processes.append(process)
                // serving: its reconcile has started (nothing to push yet: no revision)
                var serving = false
                for _ in 0..<600 where !serving {
                    serving = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("policyhub serving http://")
                    if !serving { usleep(100_000) }
                }
                guard serving else { throw ValidationError("replica \(index) did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")") }
            }
        }

        /// Records the revision (the CLI pushes c0 itself) and waits until every cluster applied it; seconds.
        func pushAll() async throws -> Double {
            let start = Date()
            try record()
            try await waitApplied { _ in true }
            return Date().timeIntervalSince(start)
        }

        func record() throws {
            let apply = Process()
            apply.executableURL = URL(fileURLWithPath: binary)
            apply.arguments = ["apply", "--repo", repo, "--state", url, "--cluster", "c0"]
            apply.standardError = FileHandle.nullDevice
            apply.standardOutput = FileHandle.nullDevice
            try apply.run()
            apply.waitUntilExit()
            guard apply.terminationStatus == 0 else { throw ValidationError("policyhub apply exited \(apply.terminationStatus)") }
        }

        /// Waits until every staging cluster `which` selects has an applied revision.
        func waitApplied(_ which: @escaping (String) -> Bool) async throws {
            let deadline = Date().addingTimeInterval(3600)
            while Date() < deadline {
                let applied = try store.clusterStates().filter { $0.environment == "staging" && $0.appliedRevision != nil && which($0.cluster) }.count
                let wanted = (0..<clusters).map { "c\($0)" }.filter(which).count
                if applied >= wanted { return }
                try await Task.sleep(nanoseconds: 200_000_000)
            }
            throw ValidationError("the fleet was not applied within an hour")
        }

        /// Two replicas: once a tenth of the fleet is applied, the first is killed with SIGKILL; the clusters it
        /// held then, the seconds from the kill until the survivor claimed the first of them, and until every
        /// one of them is applied.
        func killOneMidPush() async throws -> (Int, Double, Double) {
            try record()
            while try store.clusterStates().filter({ $0.appliedRevision != nil }).count < clusters / 10 {
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            let victim = processes[0]
            let marker = "/\(victim.processIdentifier)/"
            kill(victim.processIdentifier, SIGKILL)
            victim.waitUntilExit()
            let killed = Date()
            // what it held and had not yet recorded as applied (its released claims go in batches)
            let done = Set(try store.clusterStates().filter { $0.appliedRevision != nil }.map(\.cluster))
            let held = Set(try store.claims().filter { $0.value.contains(marker) && !done.contains($0.key) }.keys)
            // taken over: the first of its clusters claimed by the survivor (or applied by it)
            var first: Double?
            while first == nil {
                let claims = try store.claims()
                let applied = try store.clusterStates().filter { held.contains($0.cluster) && $0.appliedRevision != nil }
                if !applied.isEmpty || held.contains(where: { claims[$0].map { !$0.contains(marker) } ?? false }) {
                    first = Date().timeIntervalSince(killed)
                }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            try await waitApplied { held.contains($0) }
            return (held.count, first ?? 0, Date().timeIntervalSince(killed))
        }

        func stop() {
            for process in processes where process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
            store.shutdown()
        }
    }
}
