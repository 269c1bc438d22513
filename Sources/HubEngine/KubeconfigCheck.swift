import Foundation
import Members
import PolicyCore
import PolicyYAML

/// Checks a Kubernetes member's kubeconfig at validation time: the file exists, names the context, and
/// holds what the push would accept. Credentials are not read here (an exec plugin is not run); the
/// push reads them.
public enum KubeconfigCheck {
    /// The absolute path of a kubeconfig named in a cluster file: `~` expanded, relative to the repository.
    public static func resolve(_ path: String, root: String) -> String {
        if path.hasPrefix("~/") {
            return (NSHomeDirectory() as NSString).appendingPathComponent(String(path.dropFirst(2)))
        }
        if path.hasPrefix("/") { return path }
        return (root as NSString).appendingPathComponent(path)
    }

    /// The problems of `cluster`'s kubeconfig, located at the cluster's target, or at the kubeconfig's own
    /// line for its exec user. `exec` is what the operator allows: a plugin not on its allow-list is an
    /// error here, before any push could run it.
    public static func problems(_ cluster: MemberCluster, root: String, exec: ExecSettings) -> [Diagnostic] {
        guard case .kubernetes(let kubeconfig, let context) = cluster.target else { return [] }
        let at = cluster.origin.at("target")
        func problem(_ message: String) -> [Diagnostic] { [.error(message, at: at)] }
        let path = resolve(kubeconfig, root: root)
        guard let data = FileManager.default.contents(atPath: path) else {
            return problem("kubeconfig '\(kubeconfig)' of cluster '\(cluster.name)' cannot be read (looked at \(path))")
        }
        guard case .success(let documents) = YAMLParser.parseDocuments([UInt8](data), file: path),
              let document = documents.first else {
            return problem("kubeconfig '\(kubeconfig)' of cluster '\(cluster.name)' is not valid YAML")
        }
        let config = document.value
        var contexts: [String] = []
        if case .list(let items)? = config["contexts"] {
            contexts = items.compactMap { $0["name"]?.stringValue }
        }
        let wanted = context ?? config["current-context"]?.stringValue
        guard let wanted, !wanted.isEmpty else {
            return problem("kubeconfig '\(kubeconfig)' of cluster '\(cluster.name)' has no current-context; set target.kubernetes.context")
        }
        if !contexts.contains(wanted) {
            let known = contexts.isEmpty ? "none" : contexts.joined(separator: ", ")
            return problem("context '\(wanted)' is not in kubeconfig '\(kubeconfig)' (contexts: \(known))")
        }
        // what the push would refuse (plain http with credentials, a server that is no URL, an unreadable
        // CA or token file, an auth-provider, basic auth) is an error now, not at push time
        let endpoint: KubernetesEndpoint
        do throws(KubeconfigError) {
            endpoint = try Kubeconfig.endpoint(path: path, context: context)
        } catch {
            return problem("cluster '\(cluster.name)': \(error.message) (in kubeconfig '\(kubeconfig)')")
        }
        guard let plugin = endpoint.exec else { return [] }
        // a plugin the operator did not allow, or one that is not installed: at the user's exec entry
        let shown = path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path
        let execNode = node(document, "users", named: plugin.user, "user", "exec")
        let located = (execNode.flatMap { node($0, "command") } ?? execNode)?.location(in: shown) ?? .start(of: shown)
        var settings = exec
        settings.interactive = true  // whether a terminal is at hand is a matter of the run, not of the file
        if let refusal = settings.refusal(plugin) {
            return [.error("cluster '\(cluster.name)': \(refusal)", at: located)]
        }
        return []
    }

    /// The node at `path` below `root`: mapping keys, and `named:` picks the list item with that `name`.
    static func node(_ root: YAMLNode, _ list: String, named name: String, _ rest: String...) -> YAMLNode? {
        guard case .sequence(let items)? = node(root, list)?.content,
              var current = items.first(where: { node($0, "name")?.scalarText == name }) else { return nil }
        for key in rest {
            guard let next = node(current, key) else { return nil }
            current = next
        }
        return current
    }

    static func node(_ root: YAMLNode, _ key: String) -> YAMLNode? {
        guard case .mapping(let pairs) = root.content else { return nil }
        return pairs.first { $0.key.scalarText == key }?.value
    }
}
