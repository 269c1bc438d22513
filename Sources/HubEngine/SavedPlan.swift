import Foundation
import HubStore
import Members
import PolicyCore

/// A plan saved by `plan --out FILE` for `apply FILE` (as terraform's saved plans): what the push would
/// change, cluster by cluster and object by object, and everything it was made from — the hash of every
/// repository file, the git commit, each environment's desired revision, the state file's record of each
/// cluster, and the objects each member to be pushed held. `apply FILE` recomputes those inputs and pushes
/// only when they are all unchanged, so what is pushed is what was reviewed; otherwise it refuses and names
/// what moved. The document carries a hash of its inputs and a hash of itself: an edited plan is refused too.
public struct SavedPlan: Sendable {
    public static let format = "policyhub-plan/1"

    /// The whole document, as written.
    public let document: Value

    /// The clusters named with `--cluster` when the plan was made (empty: the whole fleet).
    public var selection: [String] { document["selection"]?.strings ?? [] }
    /// The clusters the plan pushes.
    public var pushed: [String] { (document["push"]?.list ?? []).compactMap { $0["cluster"]?.stringValue } }
    public var inputs: Value { document["inputs"] ?? .null }
    public var createdAt: String { document["createdAt"]?.stringValue ?? "?" }
    /// The revision of the root environment the plan pushes, as a sentence ("r4, new from policies/").
    public var rootRevision: String {
        guard let root = inputs["root"] else { return "no root revision" }
        let id = root["revision"].flatMap { if case .int(let n) = $0 { return "r\(n)" } else { return nil } } ?? "?"
        return root["isNew"] == .bool(true) ? "\(id), new from policies/" : id
    }

    /// Each member read for a plan: its managed objects, or why it could not be read.
    public typealias MemberRead = Result<[ObjectIdentity: Value], MemberError>

    /// The plan of `plan` (made from the working tree) with the members of its clusters to push as read.
    /// `changes`: per pushed cluster, the identities it would create, update and delete.
    public static func make(session: HubSession, plan: PushPlan, rootRevision: (revision: Revision, isNew: Bool)?,
                            selection: [String], members: [String: MemberRead],
                            changes: [String: (create: [ObjectIdentity], update: [ObjectIdentity], delete: [ObjectIdentity])]) throws(EngineError) -> SavedPlan {
        let considered = plan.items.map(\.cluster) + plan.untouched.compactMap { session.fleet.cluster(named: $0.cluster) }
        let inputs = try SavedPlan.inputs(session: session, clusters: considered, rootRevision: rootRevision?.revision,
                                          isNew: rootRevision?.isNew ?? false, members: members)
        var document = ValueMapBuilder()
        document.set("format", .string(format))
        document.set("createdAt", .string(timestamp(session.now())))
        document.set("selection", .list(selection.map(Value.string)))
        document.set("inputs", inputs)
        document.set("inputsHash", .string(ContentHash.of(inputs)))
        document.set("push", .list(plan.toPush.map { item in
            let change = changes[item.cluster.name] ?? ([], [], [])
            let created = Set(change.create), updated = Set(change.update)
            var entry = ValueMapBuilder()
            entry.set("cluster", .string(item.cluster.name))
            entry.set("environment", .string(item.cluster.environment))
            entry.set("revisionTreeHash", .string(item.revision.treeHash))
            entry.set("desiredHash", .string(item.desiredHash))
            entry.set("target", .string(item.target))
            entry.set("objects", .list(zip(item.policy.objects, item.objectHashes).map { object, hash in
                let action = created.contains(object.identity) ? "create" : updated.contains(object.identity) ? "update" : "unchanged"
                return .map([Value.MapEntry("object", .string(object.identity.description)), Value.MapEntry("hash", .string(hash)),
                             Value.MapEntry("action", .string(action))])
            }))
            entry.set("delete", .list(change.delete.map { .string($0.description) }))
            return entry.value
        }))
        document.set("inStep", .list(plan.inStep.map { .string($0.cluster.name) }))
        document.set("untouched", .list(plan.untouched.map { .map([Value.MapEntry("cluster", .string($0.cluster)), Value.MapEntry("reason", .string($0.reason))]) }))
        return SavedPlan(signing: document.value)
    }

    private init(signing unsigned: Value) {
        guard case .map(var entries) = unsigned else { preconditionFailure("a plan is a mapping") }
        entries.append(Value.MapEntry("planHash", .string(ContentHash.of(unsigned))))
        document = .map(entries)
    }

    private init(read document: Value) { self.document = document }

    /// The document as JSON.
    public var json: String { JSONWriter.pretty(document) }

    /// Reads a saved plan, refusing one of another format or one changed after it was written.
    public static func read(path: String) throws(EngineError) -> SavedPlan {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .notFound("cannot read the saved plan \(path): no such file, or it is not readable (make one with: policyhub plan --out \(path))")
        }
        let value: Value
        do {
            value = try JSONReader.parse([UInt8](data))
        } catch {
            throw .invalid("\(path) is not a saved plan: not JSON (\(error.message) at byte \(error.offset))")
        }
        guard value["format"]?.stringValue == format else {
            throw .invalid("\(path) is not a saved plan of this hub: its format is \(value["format"]?.stringValue.map { "'\($0)'" } ?? "missing"), expected '\(format)'")
        }
        guard case .map(let entries) = value, let hash = value["planHash"]?.stringValue,
              ContentHash.of(.map(entries.filter { $0.key != "planHash" })) == hash,
              let inputs = value["inputs"], value["inputsHash"]?.stringValue == ContentHash.of(inputs) else {
            throw .invalid("\(path) was changed after plan wrote it (its hash does not match its content); make a new plan with: policyhub plan --out \(path)")
        }
        return SavedPlan(read: value)
    }

    /// What the plan was made from, as it is now: hashes of the repository's files and its commit, the
    /// desired revision of every environment, the state file's record of each of `clusters`, and the managed
    /// objects of each member read (a fingerprint per object, as drift compares them).
    public static func inputs(session: HubSession, clusters: [MemberCluster], rootRevision: Revision?, isNew: Bool,
                              members: [String: MemberRead]) throws(EngineError) -> Value {
        var inputs = ValueMapBuilder()
        inputs.set("commit", GitWorkTree.at(session.root).flatMap { try? $0.line(["rev-parse", "--verify", "-q", "HEAD"]) }.map(Value.string) ?? .null)
        inputs.set("files", .map(session.workspace.repository.files.sorted().map { file in
            let bytes = FileManager.default.contents(atPath: HubEngine.resolve(file, root: session.root)).map { [UInt8]($0) }
            return Value.MapEntry(file, bytes.map { .string(ContentHash.of(bytes: $0)) } ?? .null)
        }))
        if let rootRevision {
            var root = ValueMapBuilder()
            root.set("environment", .string(rootRevision.environment))
            root.set("revision", .int(Int(rootRevision.id)))
            root.set("isNew", .bool(isNew))
            root.set("treeHash", .string(rootRevision.treeHash))
            inputs.set("root", root.value)
        }
        var environments: [Value.MapEntry] = []
        for environment in session.fleet.environments.map(\.name).sorted() {
            let desired = try stored { () throws(HubStoreError) in try session.store.desiredRevision(environment: environment) }
            environments.append(Value.MapEntry(environment, desired.map { .int(Int($0.id)) } ?? .null))
        }
        inputs.set("environments", .map(environments))
        let states = try session.clusterStates()
        inputs.set("clusters", .map(clusters.sorted { $0.name < $1.name }.map { cluster in
            var state = ValueMapBuilder()
            let recorded = states[cluster.name]
            state.set("appliedRevision", recorded?.appliedRevision.map { .int(Int($0)) } ?? .null)
            state.set("appliedHash", recorded?.appliedHash.map(Value.string) ?? .null)
            state.set("appliedTarget", recorded?.appliedTarget.map(Value.string) ?? .null)
            state.set("outOfStep", recorded?.outOfStep.map(Value.string) ?? .null)
            state.set("lastResult", recorded?.lastResult.map(Value.string) ?? .null)
            return Value.MapEntry(cluster.name, state.value)
        }))
        inputs.set("members", .map(members.sorted { $0.key < $1.key }.map { name, read in
            switch read {
            case .failure(let error): return Value.MapEntry(name, .map([Value.MapEntry("error", .string(error.message))]))
            case .success(let objects):
                return Value.MapEntry(name, .map(objects.sorted { $0.key < $1.key }.map { identity, value in
                    Value.MapEntry(identity.description, .string(ContentHash.of(DriftComparison.comparable(value))))
                }))
            }
        }))
        return inputs.value
    }

    /// Everything that differs between the plan's inputs and `now`, one sentence each, naming the file,
    /// the environment, the cluster or the object; empty when the plan still holds.
    public func moved(_ now: Value) -> [String] {
        let then = inputs
        var moved: [String] = []
        let thenCommit = then["commit"]?.stringValue, nowCommit = now["commit"]?.stringValue
        if thenCommit != nowCommit {
            moved.append("the repository's commit moved from \(thenCommit.map { String($0.prefix(12)) } ?? "none") to \(nowCommit.map { String($0.prefix(12)) } ?? "none")")
        }
        SavedPlan.compare(then["files"], now["files"]) { file, before, after in
            moved.append(before == nil ? "\(file) was added to the repository" : after == nil ? "\(file) was removed from the repository" : "\(file) changed")
        }
        SavedPlan.compare(then["environments"], now["environments"]) { environment, before, after in
            func name(_ value: Value?) -> String { if case .int(let id)? = value { return "r\(id)" } else { return "none" } }
            moved.append("environment \(environment): its desired revision moved from \(name(before)) to \(name(after)) in the state file")
        }
        if then["root"]?["treeHash"] != now["root"]?["treeHash"] && moved.isEmpty {
            moved.append("the root environment's revision of policies/ is no longer the one planned")
        }
        SavedPlan.compare(then["clusters"], now["clusters"]) { cluster, before, after in
            guard let before, let after else {
                moved.append("cluster \(cluster): \(before == nil ? "now in the plan's selection" : "no longer in the fleet")")
                return
            }
            var fields: [String] = []
            SavedPlan.compare(before, after) { field, old, new in
                fields.append("\(field) \(SavedPlan.short(old)) → \(SavedPlan.short(new))")
            }
            moved.append("cluster \(cluster): the state file's record changed (\(fields.joined(separator: ", ")))")
        }
        SavedPlan.compare(then["members"], now["members"]) { cluster, before, after in
            guard let before, let after else {
                moved.append("cluster \(cluster): \(before == nil ? "would now be pushed too" : "would no longer be pushed")")
                return
            }
            if let error = after["error"]?.stringValue {
                moved.append("cluster \(cluster): its member could not be read to check the plan: \(error)")
                return
            }
            var objects: [String] = []
            SavedPlan.compare(before, after) { object, old, new in
                objects.append("\(object) \(old == nil ? "added" : new == nil ? "deleted" : "changed")")
            }
            if objects.isEmpty { objects.append(before["error"] != nil ? "it could not be read when the plan was made" : "its objects") }
            let shown = objects.prefix(10).joined(separator: ", ") + (objects.count > 10 ? ", and \(objects.count - 10) more" : "")
            moved.append("cluster \(cluster): what its member holds changed since the plan (\(shown))")
        }
        return moved
    }

    /// Calls `body` for every key of two mappings whose values differ (nil where a key is absent).
    static func compare(_ old: Value?, _ new: Value?, _ body: (String, Value?, Value?) -> Void) {
        let before = old?.entries ?? [:], after = new?.entries ?? [:]
        for key in Set(before.keys).union(after.keys).sorted() where before[key] != after[key] {
            body(key, before[key], after[key])
        }
    }

    static func short(_ value: Value?) -> String {
        switch value {
        case nil, .null?: return "none"
        case .int(let n)?: return String(n)
        case .string(let s)?: return s.hasPrefix("sha256:") ? String(s.prefix(19)) : "'\(s)'"
        case let other?: return JSONWriter.compact(other)
        }
    }
}

extension Value {
    var list: [Value]? {
        if case .list(let items) = self { return items }
        return nil
    }

    var strings: [String]? { list?.compactMap(\.stringValue) }

    var entries: [String: Value]? {
        guard case .map(let entries) = self else { return nil }
        return Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
    }
}

extension HubSession {
    /// The managed objects of each cluster's member, `concurrency` members at once.
    public func readMembers(_ clusters: [MemberCluster], concurrency: Int = 8) async -> [String: SavedPlan.MemberRead] {
        var reads: [String: SavedPlan.MemberRead] = [:]
        let activity = engine.activity
        await withHeartbeat { () async in
        await withTaskGroup(of: (String, SavedPlan.MemberRead).self) { group in
            var pending = clusters[...]
            func startNext() {
                guard let cluster = pending.popFirst() else { return }
                group.addTask {
                    self.noteStarted(cluster.name)
                    defer { activity.finished(cluster.name) }
                    switch self.member(for: cluster) {
                    case .failure(let error): return (cluster.name, .failure(error))
                    case .success(let member):
                        do throws(MemberError) {
                            return (cluster.name, .success(try await member.managedObjects()))
                        } catch {
                            return (cluster.name, .failure(error))
                        }
                    }
                }
            }
            for _ in 0..<max(1, concurrency) { startNext() }
            while let (name, read) = await group.next() {
                reads[name] = read
                startNext()
            }
        }
        }
        return reads
    }
}

extension HubEngine {
    /// What a saved plan was checked against: the clusters it considered and the members it read.
    public struct SavedPlanCheck: Sendable {
        public var considered: [MemberCluster]
        public var members: [String: SavedPlan.MemberRead]
    }

    /// Checks that everything `saved` was made from is unchanged — the repository's files and commit, the
    /// state file's revisions and cluster records, and what each member to be pushed holds — recording
    /// nothing. Throws `.conflict` naming everything that moved.
    public func checkSaved(_ saved: SavedPlan, author: String, allowDirty: Bool = false, force: Bool = false, reason: String? = nil,
                           lockTimeout: Double = 300, concurrency: Int = 8, limits: MemberLimits = MemberLimits()) async throws(EngineError) -> SavedPlanCheck {
        // quiet: the apply that follows says the same things once
        var preview = try logging(to: .silent).recordAndPlan(author: author, clusters: saved.selection, record: false, allowDirty: allowDirty, force: force,
                                        reason: reason, lockTimeout: lockTimeout)
        preview.session.limits = limits
        defer { preview.session.transports.shutdown() }
        let check = SavedPlanCheck(
            considered: preview.plan.items.map(\.cluster) + preview.plan.untouched.compactMap { preview.session.fleet.cluster(named: $0.cluster) },
            members: await preview.session.readMembers(preview.plan.toPush.map(\.cluster), concurrency: concurrency))
        try check.verify(saved, session: preview.session, root: preview.rootRevision, isNew: preview.isNew)
        return check
    }

    /// `apply FILE`: `checkSaved`, then records the root environment's revision (checking the repository
    /// and the state file once more under the state lock, just before recording) and returns the plan to
    /// push, which is the saved one. The caller holds the push lock.
    public func applySaved(_ saved: SavedPlan, author: String, allowDirty: Bool = false, force: Bool = false, reason: String? = nil,
                           lockTimeout: Double = 300, concurrency: Int = 8, limits: MemberLimits = MemberLimits()) async throws(EngineError) -> ApplyPlan {
        let check = try await checkSaved(saved, author: author, allowDirty: allowDirty, force: force, reason: reason,
                                         lockTimeout: lockTimeout, concurrency: concurrency, limits: limits)
        let applied = try recordAndPlan(author: author, clusters: saved.selection, allowDirty: allowDirty, force: force, reason: reason,
                                        lockTimeout: lockTimeout) { session, pending, isNew throws(EngineError) in
            try check.verify(saved, session: session, root: pending, isNew: isNew)
        }
        let planned = Dictionary((saved.document["push"]?.list ?? []).compactMap { entry in
            entry["cluster"]?.stringValue.map { ($0, entry["desiredHash"]?.stringValue) }
        }, uniquingKeysWith: { a, _ in a })
        let now = Dictionary(applied.plan.toPush.map { ($0.cluster.name, Optional($0.desiredHash)) }, uniquingKeysWith: { a, _ in a })
        guard planned == now else {
            throw .failure("the plan recomputed from unchanged inputs differs from the saved one (\(planned.count) clusters planned, \(now.count) now); nothing was pushed")
        }
        return applied
    }
}

extension HubEngine.SavedPlanCheck {
    /// Throws `.conflict` naming everything that moved since `saved` was made.
    func verify(_ saved: SavedPlan, session: HubSession, root: Revision, isNew: Bool) throws(EngineError) {
        let moved = saved.moved(try SavedPlan.inputs(session: session, clusters: considered, rootRevision: root, isNew: isNew, members: members))
        guard !moved.isEmpty else { return }
        throw .conflict("the saved plan no longer matches (\(moved.count) change\(moved.count == 1 ? "" : "s") since it was made); nothing was recorded or pushed:\n"
                        + moved.map { "  " + $0 }.joined(separator: "\n") + "\nmake a new plan with policyhub plan --out FILE, review it, and apply that",
                        current: nil)
    }
}
