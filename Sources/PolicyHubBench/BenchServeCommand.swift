import ArgumentParser
import Foundation
import HubEngine
import HubService
import HubTransport
import Logging
import PolicyCore
import PolicyHubCLI
import PolicyHubTesting

/// `policyhub bench serve`: the daemon under read load while it pushes a fleet, against the same push
/// with no load, in one run.
struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "API load (--clients concurrent readers) during a daemon push of --clusters virtual clusters.",
        discussion: """
            Two rounds on the same Kubernetes API double, each with a fresh state file holding a production \
            revision no cluster has applied: POST /v1/reconcile with no API load, then again while --clients \
            clients (libcurl, one request in flight each, no pause) read GET /v1/clusters/{c} and \
            GET /v1/clusters/{c}/policy with a viewer's token over loopback, from a second before the push until \
            it ends. Prints throughput, p50/p99 latency, transport errors and non-2xx answers, and how much longer \
            the push took under load (target: <= 25%, zero errors).
            """)

    @Option(help: "Virtual clusters in the fleet.")
    var clusters: Int = 1000

    @Option(help: "Concurrent API clients (each keeps one request in flight, no pause).")
    var clients: Int = 200

    @Option(help: "Clusters the daemon pushes at once.")
    var concurrency: Int = 64

    @Option(help: "The daemon's apiNice (0 runs API requests at the same priority as pushes).")
    var apiNice: Int32 = 10

    struct Load {
        var latencies: [Double] = []
        var seconds = 0.0
        var non2xx = 0
        var errors = 0
    }

    /// Readers of cluster status and effective policy, each with one request in flight, until stopped.
    final class Readers: @unchecked Sendable {
        private let lock = NSLock()
        private var load = Load()
        private var stopped = false

        func stop() { lock.withLock { stopped = true } }
        var isStopped: Bool { lock.withLock { stopped } }
        var result: Load { lock.withLock { load } }

        func record(_ seconds: Double, status: Int?) {
            lock.withLock {
                load.latencies.append(seconds)
                switch status {
                case nil: load.errors += 1
                case let code? where !(200..<300).contains(code): load.non2xx += 1
                case .some: break
                }
            }
        }

        func run(clients: Int, clusters: Int, port: Int, token: String) async {
            var settings = TransportSettings()
            settings.maxAttempts = 1
            settings.maxInFlight = clients
            let transport = CurlTransport(settings: settings)
            defer { transport.shutdown() }
            let started = ContinuousClock.now
            await withTaskGroup(of: Void.self) { group in
                for client in 0..<clients {
                    group.addTask {
                        var n = client * 7919
                        while !self.isStopped {
                            n += 1
                            let path = "/v1/clusters/c\((n / 2) % clusters)" + (n % 2 == 1 ? "/policy" : "")
                            let request = HTTPRequest(method: "GET", url: "http://127.0.0.1:\(port)\(path)",
                                                      headers: [HTTPHeader("Authorization", "Bearer \(token)")])
                            let start = ContinuousClock.now
                            let answer = await transport.send(request, tls: TLSSettings())
                            self.record(BenchSupport.seconds(ContinuousClock.now - start), status: try? answer.get().status)
                        }
                    }
                }
            }
            let seconds = BenchSupport.seconds(ContinuousClock.now - started)
            lock.withLock { load.seconds = seconds }
        }
    }

    func run() async throws {
        try await BenchPushCommand.withFleet(clusters: clusters, environment: "production") { root, repo, double, _ in
            let viewer = TokenFile.newToken()
            let admin = TokenFile.newToken()
            try TokenFile.append(path: root + "/tokens.yaml", name: "bench-viewer", role: .viewer, namespaces: [], sha256: viewer.sha256)
            try TokenFile.append(path: root + "/tokens.yaml", name: "bench-admin", role: .securityAdmin, namespaces: [], sha256: admin.sha256)
            print("fleet: \(clusters) virtual clusters x ~20 objects on one double over TLS; daemon pushes \(concurrency) at once; \(clients) API clients")

            var quiet = 0.0
            var loaded = 0.0
            var load = Load()
            for round in ["quiet", "loaded"] {
                let state = root + "/state-\(round).sqlite"
                try await BenchPushCommand.silenced {
                    try await BenchPushCommand.run(["apply", "--repo", repo, "--state", state, "--author", "bench"])
                    try await BenchPushCommand.run(["promote", "--repo", repo, "--state", state, "--to", "production",
                                                                          "--all", "--force", "--reason", "bench", "--author", "bench"])
                }
                double.reset()
                var config = HubConfig(statePath: state, repository: repo, tokensPath: root + "/tokens.yaml")
                config.port = 0
                config.pushConcurrency = concurrency
                config.apiNice = apiNice
                var logger = Logger(label: "policyhub-bench")
                logger.logLevel = .error
                let server = HubServer(config: config, operations: try HubDaemon.operations(
                    repository: repo, statePath: state, pushConcurrency: concurrency), logger: logger)
                let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
                let task = Task { try await server.run(signals: [], onRunning: { continuation.yield($0) }) }
                var iterator = ports.makeAsyncIterator()
                guard let port = await iterator.next() else { throw ValidationError("the daemon did not start") }
                let readers = Readers()
                var readerTask: Task<Void, Never>?
                if round == "loaded" {
                    let (clients, clusters, token) = (self.clients, self.clusters, viewer.token)
                    readerTask = Task { await readers.run(clients: clients, clusters: clusters, port: port, token: token) }
                    try await Task.sleep(nanoseconds: 1_000_000_000)  // the load is running before the push starts
                }
                var settings = TransportSettings()
                settings.maxAttempts = 1
                settings.totalTimeout = 600
                let client = CurlTransport(settings: settings)
                var answer = ""
                let seconds = try await BenchSupport.timeAsync {
                    let response = await client.send(HTTPRequest(method: "POST", url: "http://127.0.0.1:\(port)/v1/reconcile",
                                                                 headers: [HTTPHeader("Authorization", "Bearer \(admin.token)")]),
                                                     tls: TLSSettings())
                    answer = (try? response.get().bodyText) ?? "\(response)"
                }
                client.shutdown()
                if let readerTask {
                    readers.stop()
                    await readerTask.value
                    load = readers.result
                }
                task.cancel()
                _ = await task.result
                guard answer.contains("\"pushed\":\(clusters)") else { throw ValidationError("the \(round) push did not push every cluster: \(answer)") }
                print("  daemon push, \(round == "quiet" ? "no API load  " : "under API load")  \(BenchSupport.ms(seconds)) ms   \(answer.trimmingCharacters(in: .whitespacesAndNewlines))")
                if round == "quiet" { quiet = seconds } else { loaded = seconds }
            }
            let sorted = load.latencies.sorted()
            func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
            print(String(format: "  API load, %d clients: %d requests in %.2f s = %.0f requests/s, p50 %.1f ms, p99 %.1f ms, non-2xx %d, errors %d",
                         clients, sorted.count, load.seconds, Double(sorted.count) / max(load.seconds, 0.001),
                         percentile(0.5) * 1000, percentile(0.99) * 1000, load.non2xx, load.errors))
            print(String(format: "push under load: +%.1f%% (target <= 25%%)", (loaded / quiet - 1) * 100))
        }
    }
}
