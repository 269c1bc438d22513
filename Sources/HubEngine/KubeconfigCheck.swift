import Foundation
import Members
import PolicyCore
import PolicyYAML

/// Checks a Kubernetes member's kubeconfig at validation time: the file exists and names the context.
/// Credentials are not read here; the push reads them.
public enum KubeconfigCheck {
    /// The absolute path of a kubeconfig named in a cluster file: `~` expanded, relative to the repository.
    public static func resolve(_ path: String, root: String) -> String {
        if path.hasPrefix("~/") {
            return (NSHomeDirectory() as NSString).appendingPathComponent(String(path.dropFirst(2)))
        }
        if path.hasPrefix("/") { return path }
        return (root as NSString).appendingPathComponent(path)
    }

    public static func problem(_ cluster: MemberCluster, root: String) -> String? {
        guard case .kubernetes(let kubeconfig, let context) = cluster.target else { return nil }
        let path = resolve(kubeconfig, root: root)
        guard let data = FileManager.default.contents(atPath: path) else {
            return "kubeconfig '\(kubeconfig)' of cluster '\(cluster.name)' cannot be read (looked at \(path))"
        }
        guard case .success(let documents) = YAMLParser.parseDocuments([UInt8](data), file: path),
              let document = documents.first else {
            return "kubeconfig '\(kubeconfig)' of cluster '\(cluster.name)' is not valid YAML"
        }
        let config = document.value
        var contexts: [String] = []
        if case .list(let items)? = config["contexts"] {
            contexts = items.compactMap { $0["name"]?.stringValue }
        }
        let wanted = context ?? config["current-context"]?.stringValue
        guard let wanted, !wanted.isEmpty else {
            return "kubeconfig '\(kubeconfig)' of cluster '\(cluster.name)' has no current-context; set target.kubernetes.context"
        }
        if !contexts.contains(wanted) {
            let known = contexts.isEmpty ? "none" : contexts.joined(separator: ", ")
            return "context '\(wanted)' is not in kubeconfig '\(kubeconfig)' (contexts: \(known))"
        }
        // what the push would refuse (plain http with credentials, a server that is no URL, an unreadable
        // CA or token file) is an error now, not at push time
        do throws(KubeconfigError) {
            _ = try Kubeconfig.endpoint(path: path, context: context)
        } catch {
            return "cluster '\(cluster.name)': \(error.message) (in kubeconfig '\(kubeconfig)')"
        }
        return nil
    }
}
