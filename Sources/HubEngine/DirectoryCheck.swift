import Foundation
import PolicyCore

/// Directory members that could be turned against the repository (SEMANTICS §2): a member folder that is
/// the repository or contains it, lies inside `policies/`, `clusters/` or `.git/`, or overlaps another
/// member's folder. A push removes managed files it no longer wants from its folder, so any of these would
/// let one cluster's push delete or overwrite what is not its own.
public enum DirectoryCheck {
    /// Every problem, each at the `path:` value of the cluster file.
    public static func problems(_ clusters: [MemberCluster], root: String) -> [Diagnostic] {
        let repository = canonical(root)
        var out: [Diagnostic] = []
        // the folders of the clusters seen so far, by path and by each folder above them: every overlap is found by
        // looking up a path's own ancestors (a comparison of every pair took most of a large fleet's validation)
        var byPath: [String: [MemberCluster]] = [:]
        var below: [String: [(cluster: MemberCluster, path: String)]] = [:]
        for cluster in clusters.sorted(by: { $0.name < $1.name }) {
            guard case .directory(let written) = cluster.target else { continue }
            let at = cluster.origin.at("target.directory.path")
            let path = canonical(HubEngine.resolve(written, root: root))
            func problem(_ message: String) { out.append(.error("directory member '\(cluster.name)': path '\(written)' \(message)", at: at, rule: "directory-member")) }
            if path == repository {
                problem("is the repository itself; a member folder must be a folder of its own (for example .policyhub/gitops/\(cluster.name))")
            } else if contains(path, repository) {
                problem("contains the repository (\(repository)); a member folder must be a folder of its own")
            } else if let inside = ["policies", "clusters", ".git"].first(where: { contains(repository + "/" + $0, path) || repository + "/" + $0 == path }) {
                problem("lies inside \(inside)/ of the repository; a push there would write into the policy repository's own inputs")
            }
            let ancestors = DirectoryCheck.ancestors(of: path)
            var overlaps = (byPath[path] ?? []).map { (cluster: $0, path: path, how: "is the same folder as") }
            for ancestor in ancestors { overlaps += (byPath[ancestor] ?? []).map { ($0, ancestor, "lies inside") } }
            overlaps += (below[path] ?? []).map { ($0.cluster, $0.path, "contains") }
            for other in overlaps.sorted(by: { $0.cluster.name < $1.cluster.name }) {
                problem("\(other.how) the folder of directory member '\(other.cluster.name)' (\(other.path)); each member needs a folder of its own")
            }
            byPath[path, default: []].append(cluster)
            for ancestor in ancestors { below[ancestor, default: []].append((cluster, path)) }
        }
        return out
    }

    /// The folders strictly above absolute `path` ("/a/b/c": "/a/b", "/a", "/").
    static func ancestors(of path: String) -> [String] {
        var out: [String] = []
        var rest = Substring(path)
        while let slash = rest.lastIndex(of: "/"), slash > rest.startIndex {
            rest = rest[..<slash]
            out.append(String(rest))
        }
        if path.count > 1 && path.hasPrefix("/") { out.append("/") }
        return out
    }

    /// Whether `inner` lies strictly below `outer`.
    static func contains(_ outer: String, _ inner: String) -> Bool {
        let prefix = outer.hasSuffix("/") ? outer : outer + "/"
        return inner.hasPrefix(prefix)
    }

    /// The absolute path with `.`, `..` and the symbolic links of its existing part resolved, so that a link
    /// or a detour cannot hide that two paths are the same folder.
    static func canonical(_ path: String) -> String {
        let standard = (path as NSString).standardizingPath
        var existing = standard
        var rest: [String] = []
        while !FileManager.default.fileExists(atPath: existing) && existing != "/" && !existing.isEmpty {
            rest.insert((existing as NSString).lastPathComponent, at: 0)
            existing = (existing as NSString).deletingLastPathComponent
        }
        var resolved = existing
        if let real = realpath(existing, nil) {
            resolved = String(cString: real)
            free(real)
        }
        for part in rest { resolved = (resolved as NSString).appendingPathComponent(part) }
        return resolved
    }
}
