import ArgumentParser
import Foundation
import HubEngine
import PolicyCore
import PolicyHubCLI
import PolicyHubTesting
import PolicyYAML

/// `policyhub-bench`: measured speed, each number against a reference measured in the same run. A separate
/// executable, so that `policyhub` links no test code (the API double, the test PKI, the generators).
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policyhub-bench",
        abstract: "Measure parse overhead and fleet-scale rendering on generated trees (use a release build).",
        discussion: """
            parse: validates a generated policy tree of --megabytes MB and divides by a bare libyaml event \
            scan of the same files (read + scan, nothing built). Target: <= 3.

            fleet: renders 10,000 clusters in 20 placement classes from 100 global documents and 200 \
            namespaces of 20 rules, divided by rendering the 20 distinct classes. Target: <= 1.5, peak \
            memory <= 1 GiB.

            Each measurement is the median of --runs runs. Build with: swift build -c release
            """,
        subcommands: [Parse.self, Fleet.self, BenchPushCommand.self, BenchPromoteCommand.self, BenchServeCommand.self])

    struct Parse: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parse and validation overhead over libyaml.")

        @Option(help: "Size of the generated tree in MB.")
        var megabytes: Int = 10

        @Option(help: "Runs per measurement; the median is reported.")
        var runs: Int = 5

        @Option(help: ArgumentHelp("Only write the generated tree to this folder (for profiling), measure nothing.", valueName: "dir"))
        var generateOnly: String?

        func run() throws {
            try BenchSupport.withScratch { scratch in
                let root = generateOnly ?? scratch
                let perNamespace = 20
                let probe = TreeGenerator(globalDocuments: 0, namespaces: 1, rulesPerNamespace: perNamespace)
                let probeBytes = try BenchSupport.withScratch { try probe.write(to: $0) }
                let namespaces = max(1, megabytes * 1_000_000 / max(probeBytes, 1))
                let generator = TreeGenerator(globalDocuments: 100, namespaces: namespaces, rulesPerNamespace: perNamespace)
                let bytes = try generator.write(to: root)
                let files = RepositoryLoader.yamlFiles(root: root, folder: "policies")
                print("tree: \(files.count) files, \(BenchSupport.mb(bytes)) MB of policy YAML, \(namespaces) namespaces")
                if generateOnly != nil { return }

                func read(_ path: String) -> [UInt8] {
                    FileManager.default.contents(atPath: root + "/" + path).map { [UInt8]($0) } ?? []
                }
                // The four are measured in turn within each run, so drift of the machine hits all alike.
                let samples = BenchSupport.interleaved(runs: runs, [
                    { precondition(files.reduce(0) { $0 + (YAMLParser.scanEvents(read($1)) ?? 0) } > 0) },
                    { for path in files { _ = YAMLParser.parseDocuments(read(path), file: path) } },
                    { for path in files { _ = PolicyDecoder.decodeFile(read(path), file: path) } },
                    {
                        let workspace = Workspace.open(root: root)
                        precondition(workspace.isValid, "\(workspace.diagnostics.prefix(3))")
                    },
                ])
                let (scan, compose, decode, validate) = (samples[0], samples[1], samples[2], samples[3])
                BenchSupport.row("libyaml event scan (read + scan)", scan, reference: scan)
                BenchSupport.row("  read + compose positioned nodes, one core", compose, reference: scan)
                BenchSupport.row("  read + compose + decode into the model, one core", decode, reference: scan)
                BenchSupport.row("policyhub validate (read, parse, decode, validate)", validate, reference: scan)
                print(String(format: "parse overhead: %.2fx wall, %.2fx cpu (target <= 3)",
                             validate.wall / scan.wall, validate.cpu / scan.cpu))
            }
        }
    }

    struct Fleet: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rendering cost of a fleet against its distinct classes.")

        @Option(help: "Clusters in the fleet.")
        var clusters: Int = 10_000

        @Option(help: "Runs per measurement; the median is reported.")
        var runs: Int = 5

        func run() throws {
            try BenchSupport.withScratch { root in
                let generator = TreeGenerator(globalDocuments: 100, namespaces: 200, rulesPerNamespace: 20, regions: 10,
                                              clusters: 20)
                let bytes = try generator.write(to: root)
                let workspace = Workspace.open(root: root)
                guard let renderer = workspace.renderer(), let fleet = workspace.fleet else {
                    throw ValidationError("generated tree is invalid: \(workspace.diagnostics.prefix(3))")
                }
                let distinct = fleet.clusters
                let many = (0..<clusters).map { index -> MemberCluster in
                    var copy = distinct[index % distinct.count]
                    copy.name = "fleet-\(index)"
                    return copy
                }
                let classes = Set(many.map { Renderer.PlacementClass(environment: $0.environment, labels: $0.placementLabels) })
                print("tree: 100 global documents, 200 namespaces x 20 rules (\(BenchSupport.mb(bytes)) MB); fleet: \(many.count) clusters in \(classes.count) placement classes")
                var objects = 0
                let few = BenchSupport.measure(runs: runs) {
                    objects = renderer.render(clusters: distinct, parallel: .dispatch).reduce(0) { $0 + $1.policy.objects.count }
                }
                let all = BenchSupport.measure(runs: runs) {
                    let result = renderer.render(clusters: many, parallel: .dispatch)
                    precondition(result.count == many.count)
                }
                BenchSupport.row("render \(distinct.count) distinct clusters (\(objects) objects)", few, reference: few)
                BenchSupport.row("render \(many.count) clusters", all, reference: few)
                print(String(format: "fleet scale: %.2fx (target <= 1.5); peak memory %.0f MiB (target <= 1024)",
                             all.wall / few.wall, BenchSupport.peakMemoryMiB()))
            }
        }
    }
}

/// Timing helpers for `policyhub bench`.
enum BenchSupport {
    struct Sample {
        var wall: Double
        var cpu: Double
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    static func peakMemoryMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// The median wall and CPU time of each body over `runs` rounds that run every body once, in turn,
    /// after one warm-up round.
    static func interleaved(runs: Int, _ bodies: [() -> Void]) -> [Sample] {
        for body in bodies { body() }
        var samples = Array(repeating: [Sample](), count: bodies.count)
        for _ in 0..<max(runs, 1) {
            for (index, body) in bodies.enumerated() { samples[index].append(time(body)) }
        }
        return samples.map { list in
            Sample(wall: list.map(\.wall).sorted()[list.count / 2], cpu: list.map(\.cpu).sorted()[list.count / 2])
        }
    }

    static func time(_ body: () -> Void) -> Sample {
        let cpu0 = cpuSeconds()
        let start = ContinuousClock.now
        body()
        let elapsed = ContinuousClock.now - start
        return Sample(wall: seconds(elapsed),
                      cpu: cpuSeconds() - cpu0)
    }

    /// The median wall and CPU time of `runs` runs of `body`, after one warm-up run.
    static func measure(runs: Int, _ body: () -> Void) -> Sample {
        body()
        var samples: [Sample] = []
        for _ in 0..<max(runs, 1) { samples.append(time(body)) }
        let wall = samples.map(\.wall).sorted()[samples.count / 2]
        let cpu = samples.map(\.cpu).sorted()[samples.count / 2]
        return Sample(wall: wall, cpu: cpu)
    }

    static func row(_ name: String, _ sample: Sample, reference: Sample) {
        let padded = name.count < 58 ? name + String(repeating: " ", count: 58 - name.count) : name
        print("  " + padded + String(format: " %9.1f ms wall %9.1f ms cpu   %5.2fx", sample.wall * 1000, sample.cpu * 1000,
                                     sample.wall / reference.wall))
    }

    static func median(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : values.sorted()[values.count / 2]
    }

    static func mb(_ bytes: Int) -> String { String(format: "%.1f", Double(bytes) / 1_000_000) }

    static func withScratch<T>(_ body: (String) throws -> T) throws -> T {
        let path = NSTemporaryDirectory() + "policyhub-bench-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }
}
