import Foundation
import PolicyCore
import PolicyYAML

/// A GitOps folder (synced by Argo CD or Flux): one YAML file per object in `GitOpsLayout`, each written
/// atomically (a temporary file renamed over the old one), stale managed files removed.
public struct DirectoryMember: Member {
    public let cluster: String
    /// Absolute path of the folder.
    public let root: String

    public init(cluster: String, root: String) {
        self.cluster = cluster
        self.root = root
    }

    public func push(_ objects: [RenderedObject]) async throws(MemberError) -> PushOutcome {
        var outcome = PushOutcome()
        let fm = FileManager.default
        var desired = Set<String>()
        for object in objects {
            let relative = GitOpsLayout.relativePath(of: object.identity)
            desired.insert(relative)
            let path = root + "/" + relative
            let text = YAMLWriter.document(object.value)
            let existing = fm.contents(atPath: path)
            if existing == Data(text.utf8) {
                outcome.unchanged += 1
                continue
            }
            do {
                try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            } catch {
                throw MemberError(cluster: cluster, object: object.identity,
                                  message: "cannot write \(path): \(error.localizedDescription)")
            }
            if existing == nil { outcome.created.append(object.identity) } else { outcome.updated.append(object.identity) }
        }
        for (relative, identity) in try managedFiles() where !desired.contains(relative) {
            do {
                try fm.removeItem(atPath: root + "/" + relative)
            } catch {
                throw MemberError(cluster: cluster, object: identity,
                                  message: "cannot remove \(root)/\(relative): \(error.localizedDescription)")
            }
            outcome.deleted.append(identity)
        }
        return outcome
    }

    public func managedObjects() async throws(MemberError) -> [ObjectIdentity: Value] {
        var out: [ObjectIdentity: Value] = [:]
        for (relative, identity) in try managedFiles() {
            guard let data = FileManager.default.contents(atPath: root + "/" + relative),
                  case .success(let nodes) = YAMLParser.parseDocuments([UInt8](data), file: relative),
                  let node = nodes.first else { continue }
            out[identity] = node.value.canonical
        }
        return out
    }

    public func heldObjects() async throws(MemberError) -> HeldObjects {
        var held = HeldObjects(managed: [:], unmanaged: [])
        for (relative, entry) in try scan() {
            switch entry {
            case .managed(let identity, let value): held.managed[identity] = HeldObject(value: value)
            case .unmanaged(let identity): held.unmanaged.append(identity)
            case .unreadable(let identity, let reason): held.unreadable.append((identity, "\(relative): \(reason)"))
            }
        }
        return held
    }

    enum Entry {
        case managed(ObjectIdentity, Value)
        case unmanaged(ObjectIdentity)
        case unreadable(ObjectIdentity, String)
    }

    /// The identity a file's place in the layout gives it.
    static func identity(ofPath relative: String) -> ObjectIdentity? {
        let parts = relative.split(separator: "/").map(String.init)
        func kind(_ plural: String) -> ObjectKind? { ObjectKind.allCases.first { $0.plural == plural } }
        if parts.count == 3, parts[0] == "cluster", let k = kind(parts[1]), parts[2].hasSuffix(".yaml") {
            return ObjectIdentity(kind: k, namespace: "", name: String(parts[2].dropLast(5)))
        }
        if parts.count == 4, parts[0] == "namespaces", let k = kind(parts[2]), parts[3].hasSuffix(".yaml") {
            return ObjectIdentity(kind: k, namespace: parts[1], name: String(parts[3].dropLast(5)))
        }
        return nil
    }

    /// Every YAML file below the folder that holds (or, by its place, should hold) a NeuVector object.
    func scan() throws(MemberError) -> [(String, Entry)] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDirectory) else { return [] }
        guard isDirectory.boolValue, let enumerator = fm.enumerator(atPath: root) else {
            throw MemberError(cluster: cluster, message: "\(root) is not a readable folder")
        }
        var out: [(String, Entry)] = []
        while let relative = enumerator.nextObject() as? String {
            guard relative.hasSuffix(".yaml"), let data = fm.contents(atPath: root + "/" + relative) else { continue }
            let decoded = PolicyDecoder.decodeFile([UInt8](data), file: relative)
            guard let object = decoded.objects.first, !decoded.diagnostics.hasErrors else {
                if let identity = DirectoryMember.identity(ofPath: relative) {
                    let reason = decoded.diagnostics.first { $0.isError }?.description ?? "no object"
                    out.append((relative, .unreadable(identity, reason)))
                }
                continue
            }
            if object.metadata.labels[HubAnnotation.managedByKey] == HubAnnotation.managedByValue {
                out.append((relative, .managed(object.identity, object.wireValue.canonical)))
            } else {
                out.append((relative, .unmanaged(object.identity)))
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// Files below the folder whose object carries the hub's label, by relative path.
    func managedFiles() throws(MemberError) -> [(String, ObjectIdentity)] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDirectory) else { return [] }
        guard isDirectory.boolValue else {
            throw MemberError(cluster: cluster, message: "\(root) is not a folder")
        }
        guard let enumerator = fm.enumerator(atPath: root) else {
            throw MemberError(cluster: cluster, message: "cannot list \(root)")
        }
        var out: [(String, ObjectIdentity)] = []
        while let relative = enumerator.nextObject() as? String {
            guard relative.hasSuffix(".yaml"), let data = fm.contents(atPath: root + "/" + relative),
                  case .success(let nodes) = YAMLParser.parseDocuments([UInt8](data), file: relative),
                  let value = nodes.first?.value,
                  value["metadata"]?["labels"]?[HubAnnotation.managedByKey] == .string(HubAnnotation.managedByValue),
                  let kindText = value["kind"]?.stringValue, let kind = ObjectKind(rawValue: kindText),
                  let name = value["metadata"]?["name"]?.stringValue else { continue }
            let namespace = value["metadata"]?["namespace"]?.stringValue ?? ""
            out.append((relative, ObjectIdentity(kind: kind, namespace: namespace, name: name)))
        }
        return out.sorted { $0.0 < $1.0 }
    }
}
