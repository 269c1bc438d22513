import ArgumentParser
import Foundation
import Members
import PolicyCore
import PolicyHubTesting

/// The daemon's watches on a large fleet: what idle watches cost, and how soon a hand-made deletion is put back.
struct BenchWatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Self-heal through watches: 1,000 watched clusters on the API double, idle cost and repair time.",
        discussion: """
            Pushes --clusters virtual clusters of a selfHeal environment, starts `policyhub serve` (the binary beside \
            this one) with its watches and no polling, waits until every watch is open, then measures the daemon \
            idle for --idle seconds (CPU from /proc/PID/stat, resident memory from /proc/PID/status; targets: under \
            5% of one core and under 200 MiB) and --repairs times an object deleted by hand on one cluster until it \
            is back (target: within 2 s; NeuVector's own federation polls every 60 s). The floor beside it: kubectl \
            get --watch on the same cluster, from the deletion to kubectl printing the event.
            """)

    @Option(help: "Virtual clusters in the fleet.")
    var clusters: Int = 1000

    @Option(help: "Seconds the idle daemon is measured for.")
    var idle: Double = 30

    @Option(help: "Deletions timed, each on another cluster.")
    var repairs: Int = 5

    func run() async throws {
        let binary = (CommandLine.arguments[0] as NSString).deletingLastPathComponent + "/policyhub"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ValidationError("\(binary) is missing: build it first (swift build -c release --product policyhub)")
        }
        try await BenchPushCommand.withFleet(clusters: clusters, environment: "staging") { root, repo, double, pki in
            // each cluster on a host of its own, as in a real fleet: its watches share one HTTP/2 connection
            try BenchPushCommand.moveKubeconfigs(repo: repo, clusters: clusters, double: double, pki: pki, ownHost: true)
            try TreeGenerator.environments.replacingOccurrences(of: "{name: staging,", with: "{name: staging, selfHeal: true,")
                .write(toFile: repo + "/clusters/environments.yaml", atomically: true, encoding: .utf8)
            try await BenchPushCommand.silenced {
                try await BenchPushCommand.apply(["--repo", repo, "--concurrency", "64", "--author", "bench", "--settle", "0"])
            }
            let objects = double.objects(cluster: "c0")
            let kinds = Set(objects.keys.map(\.kind)).count
            try "tokens: []\n".write(toFile: repo + "/tokens.yaml", atomically: true, encoding: .utf8)
            try "listen: 127.0.0.1:0\ntokens: tokens.yaml\npushConcurrency: 16\n".write(toFile: repo + "/hub.yaml", atomically: true, encoding: .utf8)
            let daemon = Process()
            daemon.executableURL = URL(fileURLWithPath: binary)
            daemon.arguments = ["serve", "--config", repo + "/hub.yaml"]
            let log = root + "/serve.log"
            FileManager.default.createFile(atPath: log, contents: nil)
            daemon.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            daemon.standardOutput = FileHandle.nullDevice
            let connectionsBefore = double.acceptedConnections
            try daemon.run()
            defer {
                daemon.terminate()
                daemon.waitUntilExit()
            }
            let expected = clusters * kinds
            print("fleet: \(clusters) clusters x \(objects.count) objects of \(kinds) kinds on one double; \(expected) watches expected")
            let opening = Date()
            while double.activeWatches() < expected {
                guard daemon.isRunning, Date().timeIntervalSince(opening) < 300 else {
                    throw ValidationError("only \(double.activeWatches()) of \(expected) watches opened; daemon log: \(root)/serve.log")
                }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            print(String(format: "watches open: %d after %.1f s, over %d connections the daemon opened", double.activeWatches(),
                         Date().timeIntervalSince(opening), double.acceptedConnections - connectionsBefore))
            try await Task.sleep(nanoseconds: 3_000_000_000)  // the listings' own work is over

            // idle: every watch open, nothing changing
            double.bookmarkInterval = 60
            let before = try Self.cpuSeconds(pid: daemon.processIdentifier)
            let idleStart = Date()
            try await Task.sleep(nanoseconds: UInt64(idle * 1e9))
            let used = try Self.cpuSeconds(pid: daemon.processIdentifier) - before
            let share = used / Date().timeIntervalSince(idleStart) * 100
            let (rss, peak) = try Self.memory(pid: daemon.processIdentifier)
            print(String(format: "idle daemon: %.2f%% of one core over %.0f s (target < 5%%), resident %.0f MiB, peak %.0f MiB (target < 200 MiB)",
                         share, idle, rss, peak))

            // repairs: an object deleted by hand, timed until it is back
            let victim = objects.keys.sorted()[objects.count / 2]
            var times: [Double] = []
            for attempt in 0..<repairs {
                let cluster = "c\((attempt * 397 + 101) % clusters)"
                let deleted = Date()
                double.remove(victim, cluster: cluster)
                while double.objects(cluster: cluster)[victim] == nil {
                    guard Date().timeIntervalSince(deleted) < 30 else { throw ValidationError("\(victim) on \(cluster) was not back within 30 s; daemon log: \(log)") }
                    try await Task.sleep(nanoseconds: 2_000_000)
                }
                times.append(Date().timeIntervalSince(deleted))
                // past the repair's read-back: it holds the push lock through NeuVector's settle time (2 s, or
                // POLICYHUB_SETTLE), and a change made inside that window waits for it (about 1 s more here)
                try await Task.sleep(nanoseconds: UInt64((KubernetesMember.defaultSettle + 1) * 1e9))
            }
            let sorted = times.sorted()
            print(String(format: "deleted by hand, back after: median %.0f ms, max %.0f ms over %d clusters (target < 2,000 ms; NeuVector federation: up to 60,000 ms)",
                         sorted[sorted.count / 2] * 1000, (sorted.last ?? 0) * 1000, times.count))
            switch try await Self.kubectlWatch(root: root, double: double, pki: pki, object: victim, cluster: "c1") {
            case .seconds(let floor):
                print(String(format: "floor: kubectl get --watch saw the deletion after %.0f ms (the hub: %.1fx, which also lists and re-applies)",
                             floor * 1000, sorted[sorted.count / 2] / floor))
            case .missing:
                print("floor: kubectl is not installed; row skipped")
            case .failed(let why):
                print("floor: kubectl \(why); row skipped")
            }
        }
    }

    /// User and system CPU seconds of a process so far.
    static func cpuSeconds(pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        guard let close = stat.lastIndex(of: ")") else { throw ValidationError("unreadable /proc/\(pid)/stat") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw ValidationError("unreadable /proc/\(pid)/stat")
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident and peak resident memory of a process, MiB.
    static func memory(pid: Int32) throws -> (Double, Double) {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func field(_ name: String) -> Double {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
            return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    /// What kubectl's watch saw.
    enum KubectlFloor {
        case seconds(Double)
        case missing
        case failed(String)
    }

    /// Seconds from deleting `object` on `cluster` to `kubectl get --watch` printing the event. The object is put
    /// back afterwards by the daemon. kubectl gets a kubeconfig of its own on 127.0.0.1: Go does not resolve
    /// `*.localhost`, the cluster's own host name that the hub uses.
    static func kubectlWatch(root: String, double: KubernetesAPIDouble, pki: TestPKI, object: ObjectIdentity, cluster: String) async throws -> KubectlFloor {
        guard BenchRequests.which("kubectl") != nil else { return .missing }
        let kubeconfig = root + "/kubectl-\(cluster).yaml"
        try double.kubeconfig(cluster: cluster, caPEM: pki.caCertificate, token: "bench-token").write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var arguments = ["kubectl", "--kubeconfig", kubeconfig, "get", object.kind.plural, "--watch-only", "-o", "name"]
        if object.kind.isNamespaced { arguments += ["-n", object.namespace] }
        process.arguments = arguments
        process.environment = ["HOME": root, "KUBECACHEDIR": root + "/kube-cache", "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let seen = Seen()
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { seen.mark() }
        }
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
            pipe.fileHandleForReading.readabilityHandler = nil
        }
        let start = Date()
        while double.activeWatches(cluster: cluster) < 1 + Set(double.objects(cluster: cluster).keys.map(\.kind)).count {
            guard Date().timeIntervalSince(start) < 20 else { return .failed("opened no watch within 20 s") }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        let deleted = Date()
        double.remove(object, cluster: cluster)
        while seen.at == nil {
            guard Date().timeIntervalSince(deleted) < 20 else { return .failed("printed nothing within 20 s of the deletion") }
            try await Task.sleep(nanoseconds: 1_000_000)
        }
        return .seconds((seen.at ?? deleted).timeIntervalSince(deleted))
    }

    /// When output first came.
    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var first: Date?
        func mark() { lock.withLock { if first == nil { first = Date() } } }
        var at: Date? { lock.withLock { first } }
    }
}
