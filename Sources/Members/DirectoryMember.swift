#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PolicyCore
import PolicyYAML

/// A GitOps folder (synced by Argo CD or Flux): one YAML file per object in `GitOpsLayout`, each written
/// atomically (a temporary file renamed over the old one) and never through a symbolic link, stale managed
/// files removed (`SafeFolder`).
public struct DirectoryMember: Member {
    public let cluster: String
    /// Absolute path of the folder.
    public let root: String

    public init(cluster: String, root: String) {
        self.cluster = cluster
        self.root = root
    }

    var folder: SafeFolder { SafeFolder(root: root, cluster: cluster) }

    /// Writes what differs and removes managed files no longer desired. Every path is opened from the folder
    /// with no-follow semantics, a link where a folder or file is expected is refused, only files carrying the
    /// hub's label are removed, and temporary files a killed push left are swept first (the push marks the folder
    /// while it has some, `SafeFolder.pushMarker`). The folder's files are
    /// read only when the store does not know what the cluster holds (`push.previous` nil: never pushed, or out
    /// of step); otherwise only what changed is written and only what was dropped is read (for its label).
    public func push(_ push: PushRequest) async throws(MemberError) -> PushOutcome {
        // on threads that may block in the kernel, not on the default executor's one per core
        try await withTaskExecutorPreference(ThreadPoolExecutor.blocking) { () async throws(MemberError) -> PushOutcome in
            try self.write(push)
        }
    }

    /// `push`, on the calling thread.
    func write(_ push: PushRequest) throws(MemberError) -> PushOutcome {
        var outcome = PushOutcome()
        let folder = self.folder
        var managedPaths: [ObjectIdentity: String] = [:]
        var live: [ObjectIdentity: Value] = [:]
        if push.previous == nil {
            for (relative, identity, value) in DirectoryMember.managed(try folder.walk(sweep: true)) {
                managedPaths[identity] = relative
                live[identity] = value
            }
        } else {
            try folder.sweepIfInterrupted()
        }
        let changes = push.changes(live: push.previous == nil ? live : nil)
        outcome.unchanged = changes.kept.count
        guard let rootFD = try folder.openRoot(create: !changes.send.isEmpty) else {
            outcome.applied = changes.applied(sent: [], revision: push.revision)
            outcome.recordChanges = changes.recordChanges(sent: [], revision: push.revision)
            return outcome
        }
        defer { close(rootFD) }
        // every changed file is written under a temporary name, the batch flushed once, then each renamed into
        // place (one flush per cluster, not one per file: that was most of a push of GitOps folders)
        var staged: [(components: [String], file: SafeFolder.Staged, identity: ObjectIdentity, existed: Bool)] = []
        func discardAll() {
            for item in staged {
                guard let fd = try? folder.openFolder(rootFD, item.components, create: false) else { continue }
                folder.discard(item.file, in: fd)
                close(fd)
            }
        }
        var current = SafeFolder.Cursor(folder: folder, root: rootFD)
        defer { current.close() }
        do throws(MemberError) {
            if !changes.send.isEmpty { try folder.markPushing(rootFD) }  // before the first temporary file
            for (object, hash) in changes.send {
                let relative = GitOpsLayout.relativePath(of: object.identity)
                var components = relative.split(separator: "/").map(String.init)
                let name = components.removeLast()
                guard let fd = try current.open(components, create: true) else { continue }
                var info = stat()
                let existed = fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0
                let file = try folder.stage(EncodedObjects.shared.bytes(of: object, hash: hash, format: .yaml), name: name, in: fd, shownAs: root + "/" + relative)
                staged.append((components, file, object.identity, existed))
            }
            if !staged.isEmpty { try folder.flush(rootFD) }
        } catch {
            current.close()
            discardAll()
            throw error
        }
        for (index, item) in staged.enumerated() {
            guard let fd = try current.open(item.components, create: false) else { continue }
            do throws(MemberError) {
                try folder.place(item.file, in: fd)
            } catch {
                staged.removeFirst(index + 1)
                current.close()
                discardAll()
                throw error
            }
            if item.existed { outcome.updated.append(item.identity) } else { outcome.created.append(item.identity) }
        }
        for identity in changes.delete {
            let relative = managedPaths[identity] ?? GitOpsLayout.relativePath(of: identity)
            var components = relative.split(separator: "/").map(String.init)
            let name = components.removeLast()
            guard let fd = try current.open(components, create: false) else { continue }
            // only a file the hub wrote: its object carries the hub's label
            guard let bytes = folder.read(name, in: fd), DirectoryMember.isManaged(bytes, file: relative) else { continue }
            try folder.remove(name, in: fd, shownAs: root + "/" + relative)
            outcome.deleted.append(identity)
        }
        if !staged.isEmpty || !outcome.deleted.isEmpty { try folder.flush(rootFD) }  // the renames and removals too
        if !changes.send.isEmpty { folder.clearPushing(rootFD) }  // every temporary file is in place
        outcome.applied = changes.applied(sent: changes.send, revision: push.revision)
        outcome.recordChanges = changes.recordChanges(sent: changes.send, revision: push.revision)
        return outcome
    }

    /// A file's first object when it carries the hub's managed-by label (read as YAML, not judged as NeuVector
    /// policy: whatever the hub wrote is its own to replace or remove).
    static func managedValue(_ bytes: [UInt8], file: String) -> Value? {
        guard case .success(let nodes) = YAMLParser.parseDocuments(bytes, file: file), let value = nodes.first?.value,
              value["metadata"]?["labels"]?[HubAnnotation.managedByKey] == .string(HubAnnotation.managedByValue) else { return nil }
        return value
    }

    static func isManaged(_ bytes: [UInt8], file: String) -> Bool { managedValue(bytes, file: file) != nil }

    /// The files of `files` that hold an object the hub manages: path, identity and the object (keys sorted).
    static func managed(_ files: [SafeFolder.Entry]) -> [(String, ObjectIdentity, Value)] {
        files.compactMap { file in
            guard let value = managedValue(file.bytes, file: file.relative),
                  let kind = value["kind"]?.stringValue.flatMap(ObjectKind.init(rawValue:)),
                  let name = value["metadata"]?["name"]?.stringValue else { return nil }
            let identity = ObjectIdentity(kind: kind, namespace: value["metadata"]?["namespace"]?.stringValue ?? "", name: name)
            return (file.relative, identity, value.canonical)
        }
    }

    /// Changes whenever a policy file in the folder changes (its files' paths, sizes and times, none read): what a
    /// watch of the folder polls.
    public func stamp() throws(MemberError) -> [UInt8] {
        try folder.stamp()
    }

    public func managedObjects() async throws(MemberError) -> [ObjectIdentity: Value] {
        Dictionary(DirectoryMember.managed(try folder.walk(sweep: false)).map { ($0.1, $0.2) }, uniquingKeysWith: { a, _ in a })
    }

    public func heldObjects() async throws(MemberError) -> HeldObjects {
        var held = HeldObjects(managed: [:], unmanaged: [])
        for (relative, entry) in try scan(folder.walk(sweep: false)) {
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

    /// What each YAML file below the folder holds (or, by its place, should hold).
    func scan(_ files: [SafeFolder.Entry]) -> [(String, Entry)] {
        var out: [(String, Entry)] = []
        for file in files {
            let relative = file.relative
            let decoded = PolicyDecoder.decodeFile(file.bytes, file: relative)
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
        return out
    }
}
