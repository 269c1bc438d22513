import ArgumentParser
import Foundation
import HubEngine
import HubTransport
import Members
import PolicyCore
import PolicyHubCLI
import PolicyHubTesting
import PolicyYAML

/// `policyhub bench push`: pushing a fleet to the Kubernetes API double over loopback TLS, against wrk,
/// curl --parallel and kubectl sending the same requests to the same server.
struct BenchPushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Fan-out, no-op and kubectl comparisons of policyhub apply on the Kubernetes API double.",
        discussion: """
            fan-out: policyhub apply of --clusters virtual clusters x ~20 objects (TLS, bearer token), divided by \
            wrk sending the same requests (Lua script) to the same double over the same number of connections; \
            curl --parallel beside it. Target <= 3.

            no-op: a second apply with nothing changed: its requests (target 0) and time (target <= 5% of the \
            full push).

            one-document change: one namespace document edited, then apply, --runs times (median): one request \
            per cluster (its apply; the answer is the read-back), target <= 500 ms for 1,000 clusters. \
            --only change measures it after one full push, without the wrk and curl rounds.

            kubectl: 200 objects to one cluster, divided by kubectl apply --server-side of the same files. \
            Target <= 0.2.

            Needs wrk (apt-get install wrk) and kubectl; a missing tool's row is skipped and says so.
            """)

    @Option(help: "Virtual clusters in the fleet.")
    var clusters: Int = 1000

    @Option(help: "Connections (the hub's transfers in flight, wrk's -c, curl's --parallel-max).")
    var connections: Int = 64

    @Option(help: "Drift reports and wrk list rounds to take the median of.")
    var driftRuns: Int = 3

    @Option(help: "One-document changes to push (the median is reported).")
    var runs: Int = 3

    enum Part: String, CaseIterable, ExpressibleByArgument {
        case fanOut = "fan-out", change, floor, drift, kubectl, latency
    }

    @Option(help: ArgumentHelp("Measure only this part (repeatable): fan-out (with no-op and a one-document change), change (a full push, then only the one-document changes), floor (nginx), drift, kubectl or latency. Default: all.",
                               valueName: "part"))
    var only: [Part] = []

    func measures(_ part: Part) -> Bool { only.isEmpty || only.contains(part) }

    func run() async throws {
        try await BenchPushCommand.withFleet(clusters: clusters, environment: "staging") { root, repo, double, pki in
            let workspace = Workspace.open(root: repo)
            guard let renderer = workspace.renderer(revision: "r1"), let fleet = workspace.fleet else {
                throw ValidationError("generated bench repository is invalid: \(workspace.diagnostics.prefix(3))")
            }
            let objects = renderer.render(cluster: fleet.clusters[0]).objects
            let applied = Set(objects.map(\.identity.kind)).count
            // a first push: discovery, every kind listed, one apply per object, each applied kind read back
            let perCluster = 1 + ObjectKind.allCases.count + objects.count + applied
            print("fleet: \(clusters) virtual clusters x \(objects.count) objects over TLS on one double (127.0.0.1:\(double.port)); \(perCluster) requests per cluster, \(connections) connections")

            let arguments = ["--repo", repo, "--concurrency", String(connections), "--author", "bench", "--settle", "0"]  // the double judges nothing later: read back at once
            if measures(.fanOut) {
                try await fanOut(root: root, repo: repo, double: double, pki: pki, objects: objects, arguments: arguments)
            } else if only.contains(.change) {
                try await BenchPushCommand.apply(arguments)
                try await oneDocumentChanges(repo: repo, double: double, arguments: arguments).print(clusters: clusters)
            }
            if measures(.floor) {
                try await floor(root: root, repo: repo, double: double, pki: pki, objects: objects, arguments: arguments)
            }
            if measures(.drift) {
                try await drift(root: root, repo: repo, double: double, arguments: arguments)
            }
            if measures(.kubectl) {
                try await BenchPushCommand.versusKubectl(root: root, pki: pki, double: double)
            }
            if measures(.latency) {
                try await latency(repo: repo, double: double, pki: pki, arguments: arguments)
            }
        }
    }

    /// The full push against wrk and curl sending the same requests, then a second push with nothing changed.
    func fanOut(root: String, repo: String, double: KubernetesAPIDouble, pki: TestPKI, objects: [RenderedObject], arguments: [String]) async throws {
        // The requests a full push sends, for wrk and curl.
        let requests = try BenchRequests(root: root, clusters: clusters, objects: objects)

        // wrk first, then the hub, each on an empty double: both create every object.
        // wrk's process runs for its whole -d; the double's first-to-last request window is its real time.
        let wrk = try requests.runWrk(port: double.port, connections: connections).map { _ in double.activeSeconds }
        let wrkRequests = double.totalRequests
        double.reset()
        let curl = try requests.runCurl(port: double.port, connections: connections)
        let curlRequests = double.totalRequests
        double.reset()
        let full = try await BenchSupport.timeAsync { try await BenchPushCommand.apply(arguments) }
        let fullRequests = double.totalRequests
        double.resetCounters()  // the objects stay: what the hub pushed is what it finds next
        let noop = try await BenchSupport.timeAsync { try await BenchPushCommand.apply(arguments) }
        let noopRequests = double.totalRequests
        let change = try await oneDocumentChanges(repo: repo, double: double, arguments: arguments)
        print("  policyhub apply, full push          \(BenchSupport.ms(full)) ms   \(fullRequests) requests")
        if let wrk {
            print("  wrk, same requests                  \(BenchSupport.ms(wrk)) ms   \(wrkRequests) requests")
            print(String(format: "fan-out: %.2fx wrk (target <= 3)", full / wrk))
        } else {
            print("  wrk: not installed (apt-get install wrk); fan-out ratio not measured")
        }
        if let curl {
            print("  curl --parallel, same requests      \(BenchSupport.ms(curl)) ms   \(curlRequests) requests (hub: \(String(format: "%.2fx", full / curl)) of it)")
        }
        print("  policyhub apply, nothing changed    \(BenchSupport.ms(noop)) ms   \(noopRequests) requests")
        print(String(format: "no-op: %d requests, %.1f%% of the full push (target 0 and <= 5%%)", noopRequests, noop / full * 100))
        change.print(clusters: clusters)
    }

    /// What --runs one-document changes took.
    struct Changes {
        var times: [Double]
        var requests: Int
        var applies: Int
        /// Median CPU milliseconds of a run: the hub's (the process less the double), the double's.
        var hubCPU: Double
        var doubleCPU: Double

        func print(clusters: Int) {
            let one = BenchSupport.median(times)
            Swift.print(String(format: "  CPU of a run (median): the hub %.0f ms, the double's event loops %.0f ms, on %d cores", hubCPU, doubleCPU,
                               ProcessInfo.processInfo.activeProcessorCount))
            Swift.print("  one namespace document changed      \(BenchSupport.ms(one)) ms   \(requests) requests (\(applies) applies, the rest read-backs; median of \(times.count): \(times.map { String(format: "%.0f", $0 * 1000) }.joined(separator: ", ")) ms)")
            Swift.print(String(format: "one-document change: %d applies to %d clusters in %.0f ms (target: one request per cluster, <= 500 ms)", applies, clusters, one * 1000))
        }
    }

    /// One namespace document changed, --runs times (its port flipped back and forth), each pushed by an apply:
    /// one apply per cluster where its output changed; the apply's answer is its read-back.
    func oneDocumentChanges(repo: String, double: KubernetesAPIDouble, arguments: [String]) async throws -> Changes {
        let folder = repo + "/policies/namespaces/ns0"
        let file = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".yaml") }.sorted().first ?? ""
        var oneTimes: [Double] = [], hubCPU: [Double] = [], doubleCPU: [Double] = []
        var oneRequests = 0, oneApplies = 0
        for run in 0..<max(runs, 1) {
            let (from, to) = run % 2 == 0 ? ("tcp/8000\n", "tcp/18000\n") : ("tcp/18000\n", "tcp/8000\n")
            let text = try String(contentsOfFile: folder + "/" + file, encoding: .utf8)
            guard let range = text.range(of: "ports: " + from) else {
                throw ValidationError("bench document \(file) lacks ports: \(from)")
            }
            try text.replacingCharacters(in: range, with: "ports: " + to).write(toFile: folder + "/" + file, atomically: true, encoding: .utf8)
            double.resetCounters()
            let logged = double.requestLog.count
            Kubeconfig.forgetParsedFiles()  // as a new process would: every kubeconfig parsed once
            let before = ThreadCPU.sample()
            oneTimes.append(try await BenchSupport.timeAsync { try await BenchPushCommand.apply(arguments) })
            let cpu = ThreadCPU.since(before)
            hubCPU.append(cpu.process - cpu.double)
            doubleCPU.append(cpu.double)
            oneRequests = double.totalRequests
            oneApplies = double.requestLog.dropFirst(logged).filter { $0.hasPrefix("PATCH ") }.count
        }
        return Changes(times: oneTimes, requests: oneRequests, applies: oneApplies, hubCPU: BenchSupport.median(hubCPU),
                       doubleCPU: BenchSupport.median(doubleCPU))
    }

    /// The floor: wrk sending a full push's requests to nginx answering fixed 200/201 over TLS, against the hub's
    /// own full push to the same nginx (every kubeconfig moved there, a fresh state: the first push lists every
    /// kind, applies every object and reads back; the read-back finds nothing there, so every cluster fails,
    /// which costs no request).
    func floor(root: String, repo: String, double: KubernetesAPIDouble, pki: TestPKI, objects: [RenderedObject], arguments: [String]) async throws {
        let requests = try BenchRequests(root: root, clusters: clusters, objects: objects)
        let nginx = try await NginxFloor.run(root: root, pki: pki) { port in
            _ = try BenchRequests.wrk(script: requests.luaPath, count: requests.count, port: port, connections: connections)
        }
        // a state file of its own, left behind with the kubeconfigs' move when done
        let state = root + "/floor-\(UUID().uuidString.prefix(8)).sqlite"
        defer { try? BenchPushCommand.moveKubeconfigs(repo: repo, clusters: clusters, double: double, pki: pki, ownHost: false) }
        let hubToNginx = try await NginxFloor.run(root: root, pki: pki) { port in
            for index in 0..<clusters {
                let path = repo + "/kube/c\(index).yaml"
                try (try String(contentsOfFile: path, encoding: .utf8)).replacingOccurrences(of: ":\(double.port)/", with: ":\(port)/")
                    .write(toFile: path, atomically: false, encoding: .utf8)
            }
            // every cluster fails its read-back there (nginx holds nothing): those lines are not the benchmark's
            _ = try? await BenchPushCommand.silenced(errors: true) { try await BenchPushCommand.apply(arguments + ["--state", state]) }
        }
        if let nginx, let hubToNginx {
            print("  wrk to nginx (fixed 200/201, TLS)    \(BenchSupport.ms(nginx.seconds)) ms   \(nginx.requests) requests, \(connections) connections")
            print("  policyhub apply to the same nginx    \(BenchSupport.ms(hubToNginx.seconds)) ms   \(hubToNginx.requests) requests")
            print(String(format: "floor: %.2fx wrk to nginx (target <= 3)", hubToNginx.seconds / nginx.seconds))
        } else {
            print("  nginx or wrk: not installed (apt-get install nginx-light wrk); the floor is not measured")
        }
    }

    /// The full push with NeuVector's one-second admission latency on every cluster against the same push at zero
    /// latency, each from an empty double and a fresh state file (target: at most 1.5x).
    func latency(repo: String, double: KubernetesAPIDouble, pki: TestPKI, arguments: [String]) async throws {
        // each cluster on a host of its own, as in a real fleet: its connection carries only its own requests
        try BenchPushCommand.moveKubeconfigs(repo: repo, clusters: clusters, double: double, pki: pki, ownHost: true)
        defer { try? BenchPushCommand.moveKubeconfigs(repo: repo, clusters: clusters, double: double, pki: pki, ownHost: false) }
        func fresh() throws {
            double.reset()
            for suffix in ["", "-wal", "-shm", ".lock", ".push.lock"] {
                try? FileManager.default.removeItem(atPath: repo + "/.policyhub/state.sqlite" + suffix)
            }
        }
        try fresh()
        for index in 0..<clusters { double.setNeuVector(nil, cluster: "c\(index)") }
        // the same push with the bench's usual bounds, for comparison: the high bounds cost a zero-latency push
        let usual = try await BenchSupport.timeAsync { try await BenchPushCommand.silenced { try await BenchPushCommand.apply(arguments) } }
        let usualConnections = double.acceptedConnections
        try fresh()
        // every cluster at once, each with 16 requests in flight through its whole admission latency (HTTP/2:
        // one connection per host carries them)
        let inFlight = clusters * KubernetesMember.appliesInFlight
        var arguments = arguments
        if let index = arguments.firstIndex(of: "--concurrency") { arguments.removeSubrange(index...(index + 1)) }
        arguments += ["--concurrency", String(clusters), "--connections", String(inFlight)]
        let zero = try await BenchSupport.timeAsync { try await BenchPushCommand.silenced { try await BenchPushCommand.apply(arguments) } }
        let zeroConnections = double.acceptedConnections
        try fresh()
        for index in 0..<clusters {
            double.setNeuVector(KubernetesAPIDouble.NeuVectorMode(admissionLatency: 1, judgeDelay: 0.05), cluster: "c\(index)")
        }
        let before = double.acceptedConnections
        var failed = false
        let slow = try await BenchSupport.timeAsync {
            do { try await BenchPushCommand.silenced { try await BenchPushCommand.apply(arguments) } } catch { failed = true }
        }
        if failed { print("  the push with NeuVector's latency failed for some clusters (their errors are above)") }
        let slowConnections = double.acceptedConnections - before
        for error in Set(double.connectionErrors) { print("  the double saw a connection fail: \(error)") }
        let denials = (0..<clusters).reduce(0) { $0 + double.queueDenials(cluster: "c\($1)") }
        for index in 0..<clusters { double.setNeuVector(nil, cluster: "c\(index)") }
        print("  policyhub apply, zero latency, --concurrency \(connections) --connections \(connections)  \(BenchSupport.ms(usual)) ms   \(usualConnections) connections")
        print("  policyhub apply, zero admission latency   \(BenchSupport.ms(zero)) ms   \(zeroConnections) connections")
        print("  policyhub apply, NeuVector's 1 s latency  \(BenchSupport.ms(slow)) ms   \(slowConnections) connections, \(denials) queue-full denials retried")
        print(String(format: "admission latency: %.2fx the zero-latency push with the same bounds, %.2fx the faster of the two (target <= 1.5; settle 0, --concurrency %d and --connections %d)", slow / zero, slow / min(zero, usual), clusters, inFlight))
    }

    /// A drift report over the whole filled fleet against wrk sending the same list requests, interleaved.
    func drift(root: String, repo: String, double: KubernetesAPIDouble, arguments: [String]) async throws {
        // drift at fleet scale: the report's list requests against wrk sending the same lists
        let lists = (0..<clusters).flatMap { index in
            ["nvclustersecurityrules", "nvsecurityrules"].map { "/clusters/c\(index)/apis/neuvector.com/v1/\($0)" }
        }
        let listScript = try BenchRequests.listScript(root: root, paths: lists)
        try await BenchPushCommand.silenced {
            try await BenchPushCommand.apply(arguments + ["--repair"])  // the double may have been reset: fill it
        }
        var wrkListTimes: [Double] = []
        var driftTimes: [Double] = []
        var driftWindows: [Double] = []  // the double's first-to-last request window within each report
        var driftRequests = 0
        var driftConnections = 0
        var driftFound = false
        for _ in 0..<max(1, driftRuns) {
            double.resetCounters()
            if let seconds = try BenchRequests.wrk(script: listScript, count: lists.count, port: double.port,
                                                   connections: connections).map({ _ in double.activeSeconds }) {
                wrkListTimes.append(seconds)
            }
            double.resetCounters()
            driftTimes.append(try await BenchPushCommand.silenced {
                try await BenchSupport.timeAsync {
                    do {
                        try await BenchPushCommand.run(["drift", "--repo", repo])
                    } catch let exit as ExitCode where exit.rawValue == 2 {
                        driftFound = true  // a result, not a failure of the benchmark; said below
                    }
                }
            })
            driftRequests = double.totalRequests
            driftWindows.append(double.activeSeconds)
            driftConnections = double.acceptedConnections
        }
        let drift = BenchSupport.median(driftTimes)
        let wrkLists = wrkListTimes.isEmpty ? nil : BenchSupport.median(wrkListTimes)
        let runs = "median of \(max(1, driftRuns))"
        let verdict = driftFound ? "drift found (the fleet should be in step: check the double)" : "no drift: every object read and compared"
        print("  policyhub drift, whole fleet        \(BenchSupport.ms(drift)) ms   \(driftRequests) requests (\(runs)); \(verdict)")
        print("    of which its list requests        \(BenchSupport.ms(BenchSupport.median(driftWindows))) ms   (the double's first-to-last request window), \(driftConnections) connections")
        if let wrkLists {
            print("  wrk, same list requests             \(BenchSupport.ms(wrkLists)) ms   \(lists.count) requests (\(runs))")
            print(String(format: "drift: %.2fx wrk (target <= 3)", drift / wrkLists))
        }
    }

    /// Runs `body` with a scratch folder, a started TLS double and a generated fleet of `clusters` virtual
    /// clusters of `environment` in `root/repo`; stops the double and removes the folder after.
    static func withFleet(clusters: Int, environment: String,
                          _ body: (_ root: String, _ repo: String, KubernetesAPIDouble, TestPKI) async throws -> Void) async throws {
        try await BenchSupport.withScratchAsync { root in
            let pki = try TestPKI.make(in: root + "/pki")
            let double = KubernetesAPIDouble(tokens: ["bench-token"], threads: 2)
            // h2 offered before http/1.1, as a real API server does (wrk and kubectl's own requests fall back to 1.1)
            try double.start(tls: KubernetesAPIDouble.TLS(certificateChain: pki.serverCertificate, privateKey: pki.serverKey,
                                                          clientCA: nil), http2: true)
            defer { double.stop() }
            let repo = root + "/repo"
            try writeFleet(repo: repo, clusters: clusters, environment: environment, double: double, pki: pki)
            try await body(root, repo, double, pki)
        }
    }

    /// A generated repository of `clusters` virtual clusters of `environment` on `double`, about 20 objects
    /// each (4 placed global documents, 16 namespace documents), each with its kubeconfig (TLS, bearer token).
    /// Rewrites every generated kubeconfig to the cluster's own host on the double (`ownHost`) or back to the
    /// shared 127.0.0.1: a real fleet's clusters share no connection, the shared host lets them.
    static func moveKubeconfigs(repo: String, clusters: Int, double: KubernetesAPIDouble, pki: TestPKI, ownHost: Bool) throws {
        for index in 0..<clusters {
            try double.kubeconfig(cluster: "c\(index)", caPEM: pki.caCertificate, token: "bench-token", ownHost: ownHost)
                .write(toFile: repo + "/kube/c\(index).yaml", atomically: false, encoding: .utf8)
        }
    }

    static func writeFleet(repo: String, clusters: Int, environment: String, double: KubernetesAPIDouble, pki: TestPKI) throws {
        try TreeGenerator(globalDocuments: 8, namespaces: 4, rulesPerNamespace: 16, clusters: 0).write(to: repo)
        try FileManager.default.createDirectory(atPath: repo + "/kube", withIntermediateDirectories: true)
        try moveKubeconfigs(repo: repo, clusters: clusters, double: double, pki: pki, ownHost: false)
        for index in 0..<clusters {
            let name = "c\(index)"
            try """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata: {name: \(name), labels: {region: r\(index % 10)}}
                spec: {environment: \(environment), target: {kubernetes: {kubeconfig: kube/\(name).yaml}}}
                """.write(toFile: repo + "/clusters/\(name).yaml", atomically: false, encoding: .utf8)
        }
        // one production member, so that every generated placement selects a cluster (validation refuses a
        // placement that selects none); before its first promotion it is left untouched and gets no request
        try """
            apiVersion: policyhub.dev/v1alpha1
            kind: MemberCluster
            metadata: {name: prod-0, labels: {region: r0}}
            spec: {environment: production, target: {kubernetes: {kubeconfig: kube/c0.yaml}}}
            """.write(toFile: repo + "/clusters/prod-0.yaml", atomically: false, encoding: .utf8)
    }

    /// Runs body with standard output (and with `errors`, standard error) sent to /dev/null: a report's text is
    /// not part of the benchmark's output, nor are the failures a run is expected to have.
    static func silenced<T>(errors: Bool = false, _ body: () async throws -> T) async throws -> T {
        fflush(nil)
        let stdout = dup(1), stderr = dup(2)
        let devnull = open("/dev/null", O_WRONLY)
        dup2(devnull, 1)
        if errors { dup2(devnull, 2) }
        defer {
            fflush(nil)
            dup2(stdout, 1)
            dup2(stderr, 2)
            close(devnull)
            close(stdout)
            close(stderr)
        }
        return try await body()
    }

    static func apply(_ arguments: [String]) async throws {
        try await run(["apply"] + arguments)
    }

    /// Runs a policyhub command in this process, as `policyhub ARGUMENTS...` would.
    static func run(_ arguments: [String]) async throws {
        var command = try PolicyHubCommand.parseAsRoot(arguments)
        if var asynchronous = command as? AsyncParsableCommand {
            try await asynchronous.run()
        } else {
            try command.run()
        }
    }

    /// 200 objects to one cluster: the hub's push against kubectl apply --server-side of the same files.
    static func versusKubectl(root: String, pki: TestPKI, double: KubernetesAPIDouble) async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl") else {
            print("  kubectl: not installed; comparison skipped")
            return
        }
        let generator = TreeGenerator(globalDocuments: 40, namespaces: 40, rulesPerNamespace: 16, clusters: 1)
        let repo = root + "/kubectl-repo"
        try generator.write(to: repo)
        let workspace = Workspace.open(root: repo)
        guard let renderer = workspace.renderer(revision: "r1"), let cluster = workspace.fleet?.clusters.first else { return }
        let objects = Array(renderer.render(cluster: cluster).objects.prefix(200))
        let files = root + "/kubectl-files"
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        for (index, object) in objects.enumerated() {
            try Data(YAMLWriter.document(object.value).utf8).write(to: URL(fileURLWithPath: files + "/\(index).yaml"))
        }
        let kubeconfig = root + "/kubectl-config.yaml"
        try double.kubeconfig(cluster: "one", caPEM: pki.caCertificate, token: "bench-token")
            .write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let endpoint = try Kubeconfig.endpoint(path: kubeconfig, context: nil)
        let transport = CurlTransport()
        defer { transport.shutdown() }
        let member = KubernetesMember(cluster: "one", endpoint: endpoint, transport: transport)
        func kubectl() throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/kubectl")
            process.arguments = ["--kubeconfig", kubeconfig, "apply", "--server-side", "--force-conflicts", "--validate=false",
                                 "--field-manager", "policyhub", "-f", files]
            process.environment = ["HOME": root, "KUBECACHEDIR": root + "/kube-cache"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw ValidationError("kubectl apply failed") }
        }
        var hub: [Double] = []
        var kube: [Double] = []
        try kubectl()  // warm kubectl's discovery cache, as an operator's would be
        for _ in 0..<5 {
            double.reset()
            hub.append(try await BenchSupport.timeAsync { _ = try await member.push(objects) })
            double.reset()
            kube.append(try BenchSupport.timeSync { try kubectl() })
        }
        let hubMedian = hub.sorted()[2]
        let kubeMedian = kube.sorted()[2]
        print("  policyhub push, 200 objects, one cluster   \(BenchSupport.ms(hubMedian)) ms (median of 5)")
        print("  kubectl apply --server-side, same files    \(BenchSupport.ms(kubeMedian)) ms (median of 5)")
        print(String(format: "versus kubectl: %.3fx (target <= 0.2)", hubMedian / kubeMedian))
    }
}

/// The requests of a full push, written for wrk (a Lua script) and curl (a config file).
struct BenchRequests {
    let root: String
    let count: Int
    let luaPath: String
    let curlConfig: String

    init(root: String, clusters: Int, objects: [RenderedObject]) throws {
        self.root = root
        var lua = "local requests = {\n"
        var curl = ""
        let bodyDir = root + "/bodies"
        try FileManager.default.createDirectory(atPath: bodyDir, withIntermediateDirectories: true)
        for (index, object) in objects.enumerated() {
            try Data(JSONWriter.compactBytes(object.value)).write(to: URL(fileURLWithPath: bodyDir + "/\(index).json"))
        }
        func luaString(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        var total = 0
        let auth = "Authorization: Bearer bench-token"
        for index in 0..<clusters {
            let prefix = "/clusters/c\(index)"
            lua += "{\"GET\", \(luaString(prefix + "/apis/neuvector.com/v1")), nil},\n"
            curl += "url = \"https://127.0.0.1:PORT\(prefix)/apis/neuvector.com/v1\"\ninsecure\nheader = \"\(auth)\"\noutput = \"/dev/null\"\nnext\n"
            for (objectIndex, object) in objects.enumerated() {
                let path = prefix + KubernetesMember.path(object.identity) + "?fieldManager=policyhub&force=true&fieldValidation=Strict"
                lua += "{\"PATCH\", \(luaString(path)), \(objectIndex + 1)},\n"
                curl += "url = \"https://127.0.0.1:PORT\(path)\"\ninsecure\nrequest = \"PATCH\"\nheader = \"\(auth)\"\nheader = \"Content-Type: application/apply-patch+yaml\"\ndata-binary = \"@\(bodyDir)/\(objectIndex).json\"\noutput = \"/dev/null\"\nnext\n"
            }
            // as a first push does: every kind listed (nothing is recorded yet), then each applied kind read back
            let applied = ObjectKind.allCases.filter { kind in objects.contains { $0.identity.kind == kind } }
            for kind in ObjectKind.allCases + applied {
                let path = prefix + "/apis/neuvector.com/v1/\(kind.plural)?limit=500&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpolicyhub"
                lua += "{\"GET\", \(luaString(path)), nil},\n"
                curl += "url = \"https://127.0.0.1:PORT\(path)\"\ninsecure\nheader = \"\(auth)\"\noutput = \"/dev/null\"\nnext\n"
            }
            total += 1 + objects.count + ObjectKind.allCases.count + applied.count
        }
        let bodies = objects.map { String(decoding: JSONWriter.compactBytes($0.value), as: UTF8.self) }
        try BenchRequests.writeScript(lua + "}\n", bodies: bodies, to: root + "/push.lua")
        if curl.hasSuffix("next\n") { curl.removeLast("next\n".count) }  // `next` separates; a trailing one is an error
        try curl.write(toFile: root + "/curl.conf", atomically: true, encoding: .utf8)
        count = total
        luaPath = root + "/push.lua"
        curlConfig = root + "/curl.conf"
    }

    static func which(_ tool: String) -> String? {
        ["/usr/bin/", "/usr/local/bin/"].map { $0 + tool }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Seconds wrk takes to send every request once over `connections` connections, or nil without wrk.
    func runWrk(port: Int, connections: Int) throws -> Double? {
        try BenchRequests.wrk(script: luaPath, count: count, port: port, connections: connections)
    }

    /// A Lua script for wrk that sends each of `paths` (GETs) once, spread over the threads.
    static func listScript(root: String, paths: [String]) throws -> String {
        var table = "local requests = {\n"
        for path in paths { table += "{\"GET\", \"\(path)\", nil},\n" }
        let path = root + "/lists.lua"
        try writeScript(table + "}\n", bodies: [], to: path)
        return path
    }

    /// Writes a wrk script around a `requests` table of `{method, path, body index}`: each thread sends its
    /// share once (offset by thread, stepping by the thread count) and stops.
    static func writeScript(_ requestsTable: String, bodies: [String], to path: String) throws {
        func luaString(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        var lua = requestsTable + "local bodies = {\n"
        for body in bodies { lua += luaString(body) + ",\n" }
        lua += """
            }
            local total = #requests
            local counter = 0
            function setup(thread)
              thread:set("offset", counter)
              counter = counter + 1
            end
            function init(args)
              next_index = offset
              threads_count = tonumber(args[1])
              my_done = 0
            end
            function request()
              local r = requests[(next_index % total) + 1]
              next_index = next_index + threads_count
              local headers = {["Authorization"] = "Bearer bench-token", ["Accept"] = "application/json"}
              if r[1] == "PATCH" then
                headers["Content-Type"] = "application/apply-patch+yaml"
                return wrk.format("PATCH", r[2], headers, bodies[r[3]])
              end
              return wrk.format("GET", r[2], headers, nil)
            end
            function response(status, headers, body)
              my_done = my_done + 1
              if my_done >= math.floor(total / threads_count) then wrk.thread:stop() end
            end

            """
        try lua.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func wrk(script: String, count: Int, port: Int, connections: Int) throws -> Double? {
        guard let wrk = BenchRequests.which("wrk") else { return nil }
        let threads = 2
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wrk)
        let seconds = count / 500 + 10  // wrk waits out -d even when the script stopped every thread
        process.arguments = ["-t\(threads)", "-c\(connections)", "-d\(seconds)s", "-s", script, "https://127.0.0.1:\(port)", "--",
                             String(threads)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        return try BenchSupport.timeSync {
            try process.run()
            process.waitUntilExit()
        }
    }

    /// Seconds `curl --parallel` takes for the same requests, or nil without curl.
    func runCurl(port: Int, connections: Int) throws -> Double? {
        guard let curl = BenchRequests.which("curl") else { return nil }
        let config = try String(contentsOfFile: curlConfig, encoding: .utf8).replacingOccurrences(of: "PORT", with: String(port))
        try config.write(toFile: curlConfig, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: curl)
        process.arguments = ["--silent", "--insecure", "--parallel", "--parallel-max", String(connections), "--config", curlConfig]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        return try BenchSupport.timeSync {
            try process.run()
            process.waitUntilExit()
        }
    }
}

extension BenchSupport {
    static func timeSync(_ body: () throws -> Void) throws -> Double {
        let start = ContinuousClock.now
        try body()
        return seconds(ContinuousClock.now - start)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func timeAsync(_ body: () async throws -> Void) async throws -> Double {
        let start = ContinuousClock.now
        try await body()
        return seconds(ContinuousClock.now - start)
    }

    static func ms(_ seconds: Double) -> String { String(format: "%9.1f", seconds * 1000) }

    static func withScratchAsync<T>(_ body: (String) async throws -> T) async throws -> T {
        let path = NSTemporaryDirectory() + "policyhub-bench-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await body(path)
    }
}

/// The floor of a push: nginx from Debian answering every request with a fixed 200 (GET) or 201 (PATCH) over
/// TLS on loopback, driven by wrk with the same requests over the same number of connections. Its time is
/// the window from the first to the last request in nginx's access log (wrk itself waits out its -d).
enum NginxFloor {
    static func which() -> String? {
        ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// A free loopback port (bound, read, released).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static var available: Bool { which() != nil && BenchRequests.which("wrk") != nil }

    /// Starts nginx with fixed answers on a free port, runs `body` with that port, stops nginx, and returns
    /// the first-to-last request window of its access log and how many requests it logged.
    static func run(root: String, pki: TestPKI, _ body: (Int) async throws -> Void) async throws -> (seconds: Double, requests: Int)? {
        guard available, let nginx = which() else { return nil }
        let dir = root + "/nginx-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/temp", withIntermediateDirectories: true)
        try Data(pki.serverCertificate).write(to: URL(fileURLWithPath: dir + "/server.crt"))
        try Data(pki.serverKey).write(to: URL(fileURLWithPath: dir + "/server.key"))
        let port = freePort()
        // discovery answers every NeuVector kind; lists are empty; applies answer 201
        let resources = ObjectKind.allCases.map { kind in
            #"{\"name\":\"\#(kind.plural)\",\"namespaced\":\#(kind.isNamespaced),\"kind\":\"\#(kind.rawValue)\",\"verbs\":[\"get\",\"list\",\"patch\",\"create\",\"delete\"]}"#
        }.joined(separator: ",")
        try """
            daemon off;
            user root;
            worker_processes 2;
            pid \(dir)/nginx.pid;
            error_log \(dir)/error.log;
            events { worker_connections 4096; }
            http {
              log_format stamp '$msec';
              access_log \(dir)/access.log stamp buffer=1m;
              client_body_temp_path \(dir)/temp;
              client_max_body_size 4m;
              keepalive_requests 1000000;
              server {
                listen 127.0.0.1:\(port) ssl;
                ssl_certificate \(dir)/server.crt;
                ssl_certificate_key \(dir)/server.key;
                default_type application/json;
                location ~ /apis/neuvector.com/v1$ {
                  return 200 "{\\"kind\\":\\"APIResourceList\\",\\"groupVersion\\":\\"neuvector.com/v1\\",\\"resources\\":[\(resources)]}";
                }
                location / {
                  if ($request_method = PATCH) { return 201 '{"kind":"NvSecurityRule"}'; }
                  return 200 '{"kind":"NvSecurityRuleList","metadata":{},"items":[]}';
                }
              }
            }
            """.write(toFile: dir + "/nginx.conf", atomically: true, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: nginx)
        server.arguments = ["-p", dir, "-c", dir + "/nginx.conf"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            if server.isRunning {
                server.terminate()
                server.waitUntilExit()
            }
        }
        // listening?
        for _ in 0..<100 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            close(fd)
            if connected == 0 { break }
            usleep(50_000)
        }
        try await body(port)
        kill(server.processIdentifier, SIGQUIT)  // a graceful stop flushes the log buffer
        server.waitUntilExit()
        let stamps = (try String(contentsOfFile: dir + "/access.log", encoding: .utf8)).split(separator: "\n").compactMap { Double($0) }
        guard let first = stamps.min(), let last = stamps.max() else { return nil }
        return (last - first, stamps.count)
    }
}

/// CPU time of this process and of the API double's event-loop threads (SwiftNIO's `NIO-ELT-*`; in the bench
/// only the double runs NIO), from `/proc/self/task`: what the hub's own work cost beside the double's.
enum ThreadCPU {
    struct Sample {
        var process: Double
        var double: [String: Double]
    }

    static func sample() -> Sample {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        var out = Sample(process: Double(t.tv_sec) * 1000 + Double(t.tv_nsec) / 1e6, double: [:])
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        for task in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? [] {
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8), comm.hasPrefix("NIO-ELT"),
                  let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                  let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 13 else { continue }
            // utime and stime, the 14th and 15th fields (the 12th and 13th after the command's closing parenthesis)
            out.double[task] = ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks * 1000
        }
        return out
    }

    /// Milliseconds of CPU since `before`: the whole process's, and the double's.
    static func since(_ before: Sample) -> (process: Double, double: Double) {
        let now = sample()
        return (now.process - before.process, now.double.reduce(0) { $0 + $1.value - (before.double[$1.key] ?? 0) })
    }
}
