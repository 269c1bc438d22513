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
        func problem(_ message: String) -> [Diagnostic] { [.error(message, at: at, rule: "kubeconfig")] }
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
        let shown = path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path
        var found = unknownFields(document, context: wanted, file: shown)
        guard let plugin = endpoint.exec else { return found }
        // a plugin the operator did not allow, or one that is not installed: at the user's exec entry
        let execNode = node(document, "users", named: plugin.user, "user", "exec")
        let located = (execNode.flatMap { node($0, "command") } ?? execNode)?.location(in: shown) ?? .start(of: shown)
        var settings = exec
        settings.interactive = true  // whether a terminal is at hand is a matter of the run, not of the file
        if let refusal = settings.refusal(plugin) {
            found.append(.error("cluster '\(cluster.name)': \(refusal)", at: located, rule: "kubeconfig-exec"))
        }
        return found
    }

    /// The fields client-go reads, per part of a kubeconfig.
    static let known: [String: Set<String>] = [
        "config": ["apiVersion", "kind", "clusters", "contexts", "users", "current-context", "preferences", "extensions"],
        "cluster": ["server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify", "tls-server-name",
                    "proxy-url", "disable-compression", "extensions"],
        "context": ["cluster", "user", "namespace", "extensions"],
        "user": ["client-certificate", "client-certificate-data", "client-key", "client-key-data", "token", "tokenFile", "as",
                 "as-uid", "as-groups", "as-user-extra", "username", "password", "auth-provider", "exec", "extensions"],
        "exec": ["command", "args", "env", "apiVersion", "installHint", "provideClusterInfo", "interactiveMode"],
        "entry": ["name", "cluster", "context", "user"],
    ]

    /// A warning, at its line, for every field of the kubeconfig that the hub does not read: the file's
    /// top level and the context in use with its cluster and user.
    static func unknownFields(_ document: YAMLNode, context: String, file: String) -> [Diagnostic] {
        var out: [Diagnostic] = []
        func check(_ node: YAMLNode?, _ part: String, _ name: String) {
            guard let node, case .mapping(let pairs) = node.content, let allowed = known[part] else { return }
            for pair in pairs {
                guard let key = pair.key.scalarText, !allowed.contains(key) else { continue }
                out.append(.warning("\(name) has the field '\(key)', which the hub does not read; it is ignored",
                                    at: pair.key.location(in: file), rule: "kubeconfig"))
            }
        }
        check(document, "config", "the kubeconfig")
        let contextNode = node(document, "contexts", named: context, "context")
        check(contextNode, "context", "context '\(context)'")
        for (list, field, part) in [("clusters", "cluster", "cluster"), ("users", "user", "user")] {
            guard let name = contextNode.flatMap({ node($0, field) })?.scalarText else { continue }
            if case .sequence(let items)? = node(document, list)?.content, let entry = items.first(where: { node($0, "name")?.scalarText == name }) {
                check(entry, "entry", "\(part) '\(name)'")
            }
            let body = node(document, list, named: name, field)
            check(body, part, "\(part) '\(name)'")
            if part == "user" { check(body.flatMap { node($0, "exec") }, "exec", "the exec entry of user '\(name)'") }
        }
        return out
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
