import Foundation
import PolicyCore
import PolicyYAML

/// A policy repository read from disk: `policies/` and `clusters/`, with every problem found.
public struct LoadedRepository: Sendable {
    public var root: String
    public var tree: PolicyTree
    public var fleet: FleetConfig
    public var diagnostics: [Diagnostic]
    /// Every YAML file read (or refused), repository-relative: policies/ then clusters/, each sorted.
    public var files: [String] = []
}

/// Reads a policy repository from disk. The only code that touches the policy files.
public enum RepositoryLoader {
    /// Repository-relative paths of the YAML files below `folder`, sorted.
    public static func yamlFiles(root: String, folder: String) -> [String] {
        let base = (root as NSString).appendingPathComponent(folder)
        guard let enumerator = FileManager.default.enumerator(atPath: base) else { return [] }
        var out: [String] = []
        while let item = enumerator.nextObject() as? String {
            guard item.hasSuffix(".yaml") || item.hasSuffix(".yml") else { continue }
            var isDirectory: ObjCBool = false
            let full = (base as NSString).appendingPathComponent(item)
            if FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue {
                out.append(folder + "/" + item)
            }
        }
        return out.sorted()
    }

    /// Folders below `folder` that are symbolic links leading outside the repository: never descended
    /// into, and each an error (a file that is such a link is refused when it is read).
    public static func foldersLinkedOutside(root: String, folder: String) -> [String] {
        let base = (root as NSString).appendingPathComponent(folder)
        guard let enumerator = FileManager.default.enumerator(atPath: base), let inside = realPath(root) else { return [] }
        var out: [String] = []
        while let item = enumerator.nextObject() as? String {
            let full = (base as NSString).appendingPathComponent(item)
            var info = stat()
            guard lstat(full, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK else { continue }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            if let target = realPath(full), target == inside || target.hasPrefix(inside == "/" ? "/" : inside + "/") { continue }
            out.append(folder + "/" + item)
        }
        return out.sorted()
    }

    /// A file of the repository, read only when it stays inside the repository (a symbolic link, of the
    /// file or of a folder above it, that leads outside is refused, its target never read or echoed) and
    /// is no larger than the YAML limit (checked before a byte is read).
    /// `inside`: the repository's resolved path with a trailing slash (resolved once per load).
    static func read(root: String, inside: String?, path: String, limits: YAMLLimits = .default) -> Result<[UInt8], Diagnostic> {
        let full = (root as NSString).appendingPathComponent(path)
        guard let resolved = realPath(full), let inside, resolved.hasPrefix(inside) else {
            return .failure(.error("is a symbolic link (or lies below one) that leads outside the repository; it is not read",
                                   at: .start(of: path), rule: "file-read"))
        }
        var info = stat()
        guard stat(resolved, &info) == 0 else { return .failure(.error("cannot read the file", at: .start(of: path), rule: "file-read")) }
        if Int(info.st_size) > limits.maxBytes {
            return .failure(.error("file is \(info.st_size) bytes; the limit is \(limits.maxBytes) bytes (4 MiB); it is not read",
                                   at: .start(of: path), rule: "file-read"))
        }
        guard let data = FileManager.default.contents(atPath: resolved) else {
            return .failure(.error("cannot read the file", at: .start(of: path), rule: "file-read"))
        }
        return .success([UInt8](data))
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Reads and decodes every policy and cluster file below `root`. Files are decoded concurrently.
    public static func load(root: String, limits: YAMLLimits = .default) -> LoadedRepository {
        var diagnostics: [Diagnostic] = []
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: (root as NSString).appendingPathComponent("policies"),
                                           isDirectory: &isDirectory) || !isDirectory.boolValue {
            diagnostics.append(.error("no policies/ folder here; run in a policy repository or pass --repo PATH",
                                      at: .start(of: "policies")))
        }
        for folder in ["policies", "clusters"] {
            for link in foldersLinkedOutside(root: root, folder: folder) {
                diagnostics.append(.error("is a symbolic link to a folder outside the repository; nothing below it is read", at: .start(of: link), rule: "file-read"))
            }
        }
        let inside = realPath(root).map { $0 == "/" ? "/" : $0 + "/" }
        let policyFiles = yamlFiles(root: root, folder: "policies")
        let results = concurrentMap(policyFiles) { path -> ([PolicyObject], [Diagnostic]) in
            switch read(root: root, inside: inside, path: path, limits: limits) {
            case .failure(let d): return ([], [d])
            case .success(let bytes):
                let decoded = PolicyDecoder.decodeFile(bytes, file: path, limits: limits)
                return (decoded.objects, decoded.diagnostics)
            }
        }
        var objects: [PolicyObject] = []
        for (fileObjects, fileDiagnostics) in results {
            objects += fileObjects
            diagnostics += fileDiagnostics
        }
        var environments: [Environment] = []
        var clusters: [MemberCluster] = []
        let clusterFiles = yamlFiles(root: root, folder: "clusters")
        if !clusterFiles.contains("clusters/environments.yaml") {
            diagnostics.append(.error("clusters/environments.yaml is missing", at: .start(of: "clusters/environments.yaml"), rule: "fleet"))
        }
        // a fleet has a file per member: decoded on all cores too, gathered in path order
        let fleetResults = concurrentMap(clusterFiles) { path -> ([Environment], [MemberCluster], [Diagnostic]) in
            switch read(root: root, inside: inside, path: path, limits: limits) {
            case .failure(let d): return ([], [], [d])
            case .success(let bytes):
                let decoded = PolicyDecoder.decodeFleetFile(bytes, file: path, limits: limits)
                return (decoded.environments, decoded.clusters, decoded.diagnostics)
            }
        }
        for (fileEnvironments, fileClusters, fileDiagnostics) in fleetResults {
            environments += fileEnvironments
            clusters += fileClusters
            diagnostics += fileDiagnostics
        }
        return LoadedRepository(root: root, tree: PolicyTree(objects: objects),
                                fleet: FleetConfig(environments: environments, clusters: clusters),
                                diagnostics: diagnostics, files: policyFiles + clusterFiles)
    }

    /// `transform` applied to each element on all cores, results in input order.
    static func concurrentMap<T: Sendable, R: Sendable>(_ items: [T], _ transform: @escaping @Sendable (T) -> R) -> [R] {
        let slots = ResultSlots<R>(count: items.count)
        ParallelFor.dispatch.run(items.count) { index in slots.set(index, transform(items[index])) }
        return slots.values
    }
}
