import Foundation
import HubService
import PolicyCore
import PolicyYAML
import Testing

/// deploy/ (issue 16): the hub's Deployment, Service, PodDisruptionBudget and ConfigMap stay valid and in
/// step with each other and with the daemon: parsed, selectors matching the pod's labels, probes on the
/// daemon's own open routes and port, and the ConfigMap's hub.yaml loading as the daemon would load it.
@Suite struct DeployManifestTests {
    static func manifest(_ name: String) throws -> Value {
        let path = Repo.root + "/deploy/" + name
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        switch YAMLParser.parseDocuments(bytes, file: "deploy/" + name) {
        case .success(let nodes):
            #expect(nodes.count == 1, "\(name): one document")
            return try #require(nodes.first?.value)
        case .failure(let diagnostic):
            Issue.record("\(diagnostic)")
            throw diagnostic
        }
    }

    static func labels(_ value: Value?) -> [String: String] {
        guard case .map(let entries)? = value else { return [:] }
        return Dictionary(entries.compactMap { entry in entry.value.stringValue.map { (entry.key, $0) } }, uniquingKeysWith: { a, _ in a })
    }

    @Test func theManifestsAreValidAndAgreeWithEachOther() throws {
        let deployment = try Self.manifest("deployment.yaml")
        let service = try Self.manifest("service.yaml")
        let budget = try Self.manifest("poddisruptionbudget.yaml")
        let config = try Self.manifest("configmap.yaml")
        for (value, apiVersion, kind) in [(deployment, "apps/v1", "Deployment"), (service, "v1", "Service"),
                                          (budget, "policy/v1", "PodDisruptionBudget"), (config, "v1", "ConfigMap")] {
            #expect(value["apiVersion"]?.stringValue == apiVersion && value["kind"]?.stringValue == kind)
            #expect(value["metadata"]?["name"]?.stringValue == "policyhub" && value["metadata"]?["namespace"]?.stringValue == "policyhub")
        }
        let pod = Self.labels(deployment["spec"]?["template"]?["metadata"]?["labels"])
        #expect(!pod.isEmpty)
        for selector in [Self.labels(deployment["spec"]?["selector"]?["matchLabels"]), Self.labels(service["spec"]?["selector"]),
                         Self.labels(budget["spec"]?["selector"]?["matchLabels"])] {
            #expect(!selector.isEmpty && selector.allSatisfy { pod[$0.key] == $0.value }, "a selector that matches the hub's pods: \(selector)")
        }
        guard case .list(let containers)? = deployment["spec"]?["template"]?["spec"]?["containers"], let container = containers.first else {
            Issue.record("no container")
            return
        }
        #expect(container["readinessProbe"]?["httpGet"]?["path"]?.stringValue == "/readyz", "readiness is the daemon's /readyz")
        #expect(container["livenessProbe"]?["httpGet"]?["path"]?.stringValue == "/healthz")
        #expect(container["readinessProbe"]?["httpGet"]?["port"]?.stringValue == "https")
        guard case .list(let ports)? = container["ports"], let port = ports.first else {
            Issue.record("no port")
            return
        }
        #expect(port["name"]?.stringValue == "https")
        #expect(deployment["spec"]?["template"]?["spec"]?["securityContext"]?["runAsNonRoot"] == .bool(true))
        #expect(container["args"] == .list([.string("serve"), .string("--config"), .string("/etc/policyhub/hub.yaml")]))
        guard case .list(let servicePorts)? = service["spec"]?["ports"] else {
            Issue.record("no service port")
            return
        }
        #expect(servicePorts.first?["targetPort"]?.stringValue == "https")

        // the ConfigMap's hub.yaml is one the daemon loads, listening on the container's port
        let hub = try #require(config["data"]?["hub.yaml"]?.stringValue)
        try Repo.withTemporaryFolder { folder in
            try hub.write(toFile: folder + "/hub.yaml", atomically: true, encoding: .utf8)
            let loaded = try HubConfig.load(path: folder + "/hub.yaml")
            #expect(port["containerPort"] == .int(loaded.port), "the container port is the one hub.yaml listens on")
            #expect(loaded.statePath.hasPrefix("postgres://") && loaded.statePath.contains("sslmode=verify-full"))
            #expect(!loaded.statePath.contains(":@") && !hub.lowercased().contains("password:"), "no password in the ConfigMap")
            #expect(loaded.followed?.branch == "main" && loaded.gitWebhookSecretVariable == "POLICYHUB_GIT_WEBHOOK_SECRET")
        }
        // the environment the daemon reads its secrets from comes from Secrets, never from literal values
        guard case .list(let environment)? = container["env"] else {
            Issue.record("no env")
            return
        }
        let names = environment.compactMap { $0["name"]?.stringValue }
        #expect(names.contains("PGPASSWORD") && names.contains("POLICYHUB_GIT_WEBHOOK_SECRET"))
        #expect(environment.allSatisfy { $0["value"] == nil && $0["valueFrom"]?["secretKeyRef"] != nil })
    }
}
