import Foundation
import Testing

/// The `policyhub` executable, run as a user or a CI pipeline would: output and exit codes.
@Suite struct CommandLineTests {
    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The policyhub executable under test: `POLICYHUB_BINARY` when set (a sanitizer build), else the package's own.
    static let binary: String = {
        if let chosen = ProcessInfo.processInfo.environment["POLICYHUB_BINARY"], !chosen.isEmpty { return chosen }
        let candidates = [".build/debug/policyhub", ".build/release/policyhub"].map { Repo.root + "/" + $0 }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }()

    static func run(_ arguments: [String], in folder: String = Repo.root) throws -> Run {
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the policyhub product first (swift build)")
        return try runProcess(binary, arguments, in: folder)
    }

    /// Runs a program to its end and captures what it printed and how it exited.
    static func runProcess(_ executable: String, _ arguments: [String], in folder: String? = nil,
                           environment: [String: String]? = nil) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let folder { process.currentDirectoryURL = URL(fileURLWithPath: folder) }
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                   stderr: String(decoding: errData, as: UTF8.self))
    }

    @Test func validateTheExample() throws {
        let result = try Self.run(["validate"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("0 errors"))
    }

    @Test func validateReportsEveryProblemSortedAndExitsOne() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let node = folder + "/policies/namespaces/demo/node.yaml"
            var text = try String(contentsOfFile: node, encoding: .utf8)
            text = text.replacingOccurrences(of: "tcp/6379", with: "tcp/99999")
                .replacingOccurrences(of: "action: allow\n    name: sh", with: "action: maybe\n    name: sh")
            try text.write(toFile: node, atomically: true, encoding: .utf8)
            try "kind: [".write(toFile: folder + "/policies/global/broken.yaml", atomically: true, encoding: .utf8)
            let result = try Self.run(["validate", "--repo", folder])
            #expect(result.status == 1)
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines == [
                "policies/global/broken.yaml:2:1: error: did not find expected node content (while parsing a flow node)",
                "policies/namespaces/demo/node.yaml:47:12: error: ports: 'tcp/99999' is not a port, a range such as 8500-8508, or any",
                "policies/namespaces/demo/node.yaml:55:13: error: process action 'maybe' is not one of: allow, deny",
            ])
            // render refuses an invalid tree and writes nothing
            let render = try Self.run(["render", "--repo", folder, "--out-dir", folder + "/out"])
            #expect(render.status == 1)
            #expect(!FileManager.default.fileExists(atPath: folder + "/out"))
        }
    }

    @Test func renderJSONForOneCluster() throws {
        let result = try Self.run(["render", "--cluster", "prod-eu-1", "--output", "json"])
        #expect(result.status == 0, "\(result.stderr)")
        let array = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        #expect(array.count == 1)
        #expect(array.first?["cluster"] as? String == "prod-eu-1")
        #expect(result.stderr.contains("shadowed"))
    }

    @Test func renderIsByteIdenticalAcrossRuns() throws {
        let a = try Self.run(["render"])
        let b = try Self.run(["render"])
        #expect(a.status == 0)
        #expect(a.stdout == b.stdout)
        #expect(a.stdout.contains("# cluster: staging-eu-1"))
    }

    @Test func renderToAFolderUsesTheGitOpsLayout() throws {
        try Repo.withTemporaryFolder { folder in
            let result = try Self.run(["render", "--out-dir", folder])
            #expect(result.status == 0, "\(result.stderr)")
            let fm = FileManager.default
            #expect(fm.fileExists(atPath: folder + "/prod-eu-1/cluster/nvclustersecurityrules/production-hardening.yaml"))
            #expect(fm.fileExists(atPath: folder + "/prod-eu-1/namespaces/demo/nvsecurityrules/nv.node-pod.demo.yaml"))
            #expect(!fm.fileExists(atPath: folder + "/staging-eu-1/cluster/nvclustersecurityrules/production-hardening.yaml"))
        }
    }

    @Test func explainAProcessAndAFlow() throws {
        let process = try Self.run(["explain", "--cluster", "prod-eu-1", "--target", "nv.node-pod.demo", "--process", "/usr/bin/nc"])
        #expect(process.status == 0, "\(process.stderr)")
        #expect(process.stdout.contains("decision: DENY"))
        #expect(process.stdout.contains("policies/global/forbidden-processes.yaml:19:5"))
        let flow = try Self.run(["explain", "--cluster", "prod-eu-1", "--target", "nv.api.payments", "--peer", "external",
                                 "--port", "tcp/22", "--app", "SSH", "--direction", "egress", "--output", "json"])
        #expect(flow.status == 0, "\(flow.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(flow.stdout.utf8)) as? [String: Any])
        #expect(json["decision"] as? String == "deny")
        #expect((json["beaten"] as? [[String: Any]])?.first?["rule"] as? String == "api-sftp-drop")
    }

    @Test func usageErrorsExit64AndUnknownNamesExit1() throws {
        let usage = try Self.run(["explain", "--cluster", "prod-eu-1", "--target", "x"])
        #expect(usage.status == 64)
        #expect(usage.stderr.contains("give either --process PATH or --peer GROUP"))
        let unknown = try Self.run(["explain", "--cluster", "nope", "--target", "x", "--process", "/bin/sh"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("unknown cluster 'nope'"))
        let group = try Self.run(["explain", "--cluster", "prod-eu-1", "--target", "nv.ghost.demo", "--process", "/bin/sh"])
        #expect(group.status == 1)
        #expect(group.stderr.contains("group 'nv.ghost.demo' does not appear"))
    }

    @Test func repoOptionAndMissingRepository() throws {
        try Repo.withTemporaryFolder { folder in
            let result = try Self.run(["validate"], in: folder)
            #expect(result.status == 1)
            #expect(result.stdout.contains("no policies/ folder here"))
        }
    }
}
