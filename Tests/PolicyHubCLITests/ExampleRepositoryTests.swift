import Foundation
import HubEngine
import PolicyCore
import PolicyHubCLI
import PolicyYAML
import Testing

enum Repo {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// A scratch folder that is removed when the closure returns.
    static func withTemporaryFolder<T>(_ body: (String) throws -> T) throws -> T {
        let path = NSTemporaryDirectory() + "policyhub-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    /// A copy of the example repository's policies/ and clusters/.
    static func withTemporaryFolderAsync<T>(_ body: (String) async throws -> T) async throws -> T {
        let path = NSTemporaryDirectory() + "policyhub-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await body(path)
    }

    static func copyExample(to folder: String) throws {
        for part in ["policies", "clusters"] {
            try FileManager.default.copyItem(atPath: root + "/" + part, toPath: folder + "/" + part)
        }
    }
}

@Suite struct ExampleRepositoryTests {
    @Test func exampleIsValidAndRendersEveryCluster() throws {
        let workspace = Workspace.open(root: Repo.root)
        #expect(!workspace.diagnostics.hasErrors, "\(workspace.diagnostics)")
        let renderer = try #require(workspace.renderer())
        let fleet = try #require(workspace.fleet)
        #expect(fleet.clusters.count >= 3)
        #expect(Set(fleet.clusters.map(\.environment)) == ["staging", "production"])
        let rendered = renderer.render(clusters: fleet.clusters)
        for (cluster, policy) in rendered {
            #expect(!policy.objects.isEmpty)
            #expect(!policy.conflicts.contains { $0.severity == .error }, "\(cluster.name): \(policy.conflicts)")
            for object in policy.objects {
                #expect(object.value["metadata"]?["labels"]?[HubAnnotation.managedByKey] == .string("policyhub"))
                #expect(object.value["metadata"]?["annotations"]?[HubAnnotation.hash] == .string(object.hash))
            }
        }
        // production gets the production-only document; staging does not
        let staging = try #require(rendered.first { $0.cluster.environment == "staging" }).policy
        let production = try #require(rendered.first { $0.cluster.environment == "production" }).policy
        #expect(!staging.objects.contains { $0.identity.name == "production-hardening" })
        #expect(production.objects.contains { $0.identity.name == "production-hardening" })
        // the payments SFTP rule is shadowed by the enforced SSH deny, everywhere
        #expect(production.conflicts.contains { $0.kind == .shadowed && $0.rule.rule == "api-sftp-drop" })
    }

    @Test func nginxMayReachNodeOverHTTPOnly() throws {
        let workspace = Workspace.open(root: Repo.root)
        let renderer = try #require(workspace.renderer())
        let cluster = try #require(workspace.fleet?.cluster(named: "prod-eu-1"))
        let policy = renderer.render(cluster: cluster)
        let http = try policy.explain(.network(target: "nv.node-pod.demo", peer: "nv.nginx-pod.demo", direction: .ingress,
                                               proto: .tcp, port: 8888, application: "HTTP"))
        #expect(http.decision == "allow")
        let ssh = try policy.explain(.network(target: "nv.node-pod.demo", peer: "nv.nginx-pod.demo", direction: .ingress,
                                              proto: .tcp, port: 22, application: "SSH"))
        #expect(ssh.decision == "no-rule")
        let nc = try policy.explain(.process(target: "nv.redis-pod.demo", path: "/usr/bin/nc"))
        #expect(nc.decision == "deny")
        #expect(nc.deciding?.source.tier == .enforced)
        #expect(nc.deciding?.source.file == "policies/global/forbidden-processes.yaml")
    }

    /// Rendering is a pure function: documents read in any order give byte-identical output.
    @Test func outputIsByteIdenticalInAnyOrder() throws {
        let workspace = Workspace.open(root: Repo.root)
        let fleet = try #require(workspace.fleet)
        func output(_ objects: [PolicyObject], _ clusters: [MemberCluster]) throws -> String {
            let policy = try #require(PolicyValidator.validate(PolicyTree(objects: objects)).value)
            let sortedFleet = try #require(FleetValidator.validate(FleetConfig(environments: fleet.environments.reversed(),
                                                                               clusters: clusters)).value)
            let renderer = Renderer(policy: policy, fleet: sortedFleet, revision: "r1")
            return RenderOutput.json(renderer.render(clusters: sortedFleet.clusters))
                + RenderOutput.yaml(renderer.render(clusters: sortedFleet.clusters))
        }
        let reference = try output(workspace.repository.tree.objects, fleet.clusters)
        var generator = SeededGenerator(seed: 42)
        for _ in 0..<20 {
            let shuffled = workspace.repository.tree.objects.shuffled(using: &generator)
            let clusters = fleet.clusters.shuffled(using: &generator)
            #expect(try output(shuffled, clusters) == reference)
        }
    }

    /// The same documents in one multi-document file, in reverse order, render the same objects and specs.
    @Test func multiDocumentFileRendersTheSameSpecs() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let global = folder + "/policies/global"
            let names = try FileManager.default.contentsOfDirectory(atPath: global).sorted()
            var combined = ""
            for name in names.reversed() {
                combined += "---\n" + (try String(contentsOfFile: global + "/" + name, encoding: .utf8))
                try FileManager.default.removeItem(atPath: global + "/" + name)
            }
            try combined.write(toFile: global + "/all.yaml", atomically: true, encoding: .utf8)
            let a = try #require(Workspace.open(root: Repo.root).renderer(revision: "r"))
            let b = try #require(Workspace.open(root: folder).renderer(revision: "r"))
            for cluster in a.fleet.clusters {
                let left = a.render(cluster: cluster).objects.map { "\($0.identity) \($0.hash)" }
                let right = b.render(cluster: cluster).objects.map { "\($0.identity) \($0.hash)" }
                #expect(left == right)
            }
        }
    }

    @Test func jsonHasTheDocumentedShape() throws {
        let workspace = Workspace.open(root: Repo.root)
        let renderer = try #require(workspace.renderer())
        let fleet = try #require(workspace.fleet)
        let json = RenderOutput.json(renderer.render(clusters: fleet.clusters))
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]
        let array = try #require(parsed)
        #expect(array.count == fleet.clusters.count)
        for entry in array {
            #expect(entry["cluster"] is String)
            #expect(entry["environment"] is String)
            let objects = try #require(entry["objects"] as? [[String: Any]])
            #expect(objects.allSatisfy { ($0["apiVersion"] as? String) == "neuvector.com/v1" })
            let conflicts = try #require(entry["conflicts"] as? [[String: Any]])
            for conflict in conflicts {
                #expect(["shadowed", "overridden", "redundant", "ambiguous"].contains(conflict["type"] as? String ?? ""))
                let rule = try #require(conflict["rule"] as? [String: Any])
                let by = try #require(conflict["by"] as? [String: Any])
                #expect(rule["file"] is String && rule["rule"] is String)
                #expect(by["file"] is String && by["rule"] is String)
            }
        }
    }

    @Test func anInvalidTreeRendersNothing() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let path = folder + "/policies/namespaces/demo/node.yaml"
            let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "tcp/6379", with: "tcp/99999")
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let workspace = Workspace.open(root: folder)
            #expect(workspace.renderer() == nil ? true : false)
            #expect(workspace.diagnostics.filter(\.isError).map(\.description) == [
                "policies/namespaces/demo/node.yaml:47:12: error: ports: 'tcp/99999' is not a port, a range such as 8500-8508, or any",
            ])
        }
    }
}

/// A small deterministic generator (SplitMix64) so shuffles are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
