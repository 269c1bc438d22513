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
        subcommands: [Parse.self, Fleet.self, BenchConflictsCommand.self, BenchPushCommand.self, BenchPromoteCommand.self, BenchServeCommand.self, BenchWatchCommand.self, BenchFollowCommand.self, BenchReplicasCommand.self])

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

/// `policyhub-bench conflicts`: conflict analysis on two large documents, against libyaml's bare scan of
/// the same files and against half the rules (near-linear growth means about twice the time).
struct BenchConflictsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conflicts",
        abstract: "Render one global and one namespace document of --rules egress rules each (conflict analysis).",
        discussion: """
            The global document denies and the namespace document allows the same --rules address peers, so \
            every namespace rule is shadowed: the render must find --rules conflicts among 2 x --rules rules. \
            Reports the render of one cluster (validation done before, as apply does it), the whole \
            validation, and the same at half the rules. Target: the render of 30,000 + 30,000 rules under 2 s.
            """)

    @Option(help: "Egress rules in each of the two documents.")
    var rules: Int = 30_000

    @Option(help: "Runs per measurement; the median is reported.")
    var runs: Int = 3

    static func write(rules: Int, to root: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/policies/global", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/policies/namespaces/demo", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/clusters", withIntermediateDirectories: true)
        try TreeGenerator.environments.write(toFile: root + "/clusters/environments.yaml", atomically: true, encoding: .utf8)
        try """
            apiVersion: policyhub.dev/v1alpha1
            kind: MemberCluster
            metadata: {name: c0}
            spec: {environment: staging, target: {directory: {path: .policyhub/gitops/c0}}}

            """.write(toFile: root + "/clusters/c0.yaml", atomically: true, encoding: .utf8)
        func peer(_ i: Int) -> String {
            "{name: ext-\(i), criteria: [{key: address, op: =, value: '10.\(i / 65536).\((i / 256) % 256).\(i % 256)'}]}"
        }
        var global = """
            apiVersion: neuvector.com/v1
            kind: NvClusterSecurityRule
            metadata: {name: big-global}
            spec:
              target:
                selector: {name: containers, criteria: [{key: container, op: =, value: '*'}]}
              egress:

            """
        var namespace = """
            apiVersion: neuvector.com/v1
            kind: NvSecurityRule
            metadata: {name: nv.web.demo, namespace: demo}
            spec:
              target:
                selector: {name: nv.web.demo, criteria: [{key: service, op: =, value: web.demo}, {key: domain, op: =, value: demo}]}
              egress:

            """
        for i in 0..<rules {
            global += "  - {name: g\(i), action: deny, ports: tcp/\(1000 + i % 5000), selector: \(peer(i))}\n"
            namespace += "  - {name: n\(i), action: allow, ports: tcp/\(1000 + i % 5000), selector: \(peer(i))}\n"
        }
        try global.write(toFile: root + "/policies/global/big.yaml", atomically: true, encoding: .utf8)
        try namespace.write(toFile: root + "/policies/namespaces/demo/big.yaml", atomically: true, encoding: .utf8)
    }

    func run() throws {
        try BenchSupport.withScratch { scratch in
            var rows: [(String, BenchSupport.Sample, BenchSupport.Sample)] = []
            for count in [rules / 2, rules] {
                let root = scratch + "/r\(count)"
                try Self.write(rules: count, to: root)
                let files = RepositoryLoader.yamlFiles(root: root, folder: "policies")
                func read(_ path: String) -> [UInt8] {
                    FileManager.default.contents(atPath: root + "/" + path).map { [UInt8]($0) } ?? []
                }
                let workspace = Workspace.open(root: root)
                guard let renderer = workspace.renderer(), let cluster = workspace.fleet?.clusters.first else {
                    throw ValidationError("generated tree is invalid: \(workspace.diagnostics.prefix(3))")
                }
                var conflicts = 0
                let samples = BenchSupport.interleaved(runs: runs, [
                    { precondition(files.reduce(0) { $0 + (YAMLParser.scanEvents(read($1)) ?? 0) } > 0) },
                    { conflicts = renderer.render(cluster: cluster).conflicts.count },
                    { precondition(Workspace.open(root: root).isValid) },
                ])
                precondition(conflicts >= count, "expected every namespace rule shadowed, found \(conflicts) conflicts")
                BenchSupport.row("\(count) + \(count) rules: libyaml event scan of the two files", samples[0], reference: samples[0])
                BenchSupport.row("  render one cluster (\(conflicts) conflicts found)", samples[1], reference: samples[0])
                BenchSupport.row("  validate the tree (read, parse, check, conflict check on every cluster)", samples[2], reference: samples[0])
                rows.append(("\(count)", samples[1], samples[2]))
            }
            if rows.count == 2 {
                print(String(format: "render of %@ + %@ rules: %.2f s (target < 2 s); twice the rules took %.2fx the render time, %.2fx the validation time",
                             rows[1].0, rows[1].0, rows[1].1.wall, rows[1].1.wall / rows[0].1.wall, rows[1].2.wall / rows[0].2.wall))
            }
        }
    }
}
