import HubStore
import PolicyCore

/// One cluster's place in the fleet: its environment, desired and applied revision and last push.
public struct ClusterStatus: Sendable, Hashable {
    public var cluster: String
    public var environment: String
    public var desired: Revision?
    public var state: ClusterState?
    /// Where the cluster's policy goes now; nil when not known (then the recorded target is not compared).
    public var target: String?

    /// In step: holds its environment's desired revision at its current target, its last push did not fail
    /// and no drift was found since. An environment before its first promotion desires nothing: its clusters
    /// are left untouched, not behind.
    public var inStep: Bool { desired == nil || outOfStep == nil }

    /// Why the cluster is not in step, or nil when it is (or its environment desires nothing yet).
    public var outOfStep: String? {
        guard let desired else { return nil }
        guard let state, let applied = state.appliedRevision else { return "never pushed" }
        if state.lastResult == "failed" { return "its last push failed" }
        if let reason = state.outOfStep { return reason }
        if applied != desired.id { return "holds r\(applied), its environment wants r\(desired.id)" }
        if let target, state.appliedTarget != target { return "its target changed since its last push" }
        return nil
    }

    /// The JSON row of `status --output json` and the API (revision ids are rN, SEMANTICS §7).
    public var value: Value {
        var map = ValueMapBuilder()
        map.set("cluster", .string(cluster))
        map.set("environment", .string(environment))
        map.set("desiredRevision", desired.map { .string("r\($0.id)") } ?? .null)
        map.set("appliedRevision", state?.appliedRevision.map { .string("r\($0)") } ?? .null)
        map.set("lastPushAt", state?.lastPushAt.map { .string(timestamp($0)) } ?? .null)
        map.set("lastResult", state?.lastResult.map(Value.string) ?? .null)
        map.set("lastError", state?.lastError.map(Value.string) ?? .null)
        map.set("inStep", .bool(inStep))
        map.set("outOfStep", outOfStep.map(Value.string) ?? .null)
        map.set("desiredCommit", desired?.commit.map { .string($0.commit) } ?? .null)
        map.set("desiredSignature", desired?.commit.map { .string($0.signature.rawValue) } ?? .null)
        return map.value
    }

    /// The text line of `status`.
    public var line: String {
        let desiredText = desired.map { "r\($0.id)" + ($0.commit.map { " (commit \($0.shortCommit)\($0.dirty ? "+dirty" : ""), \($0.signature.rawValue))" } ?? "") }
            ?? "none (no promotion yet)"
        let appliedText = state?.appliedRevision.map { "r\($0)" } ?? "none"
        let push = state?.lastPushAt.map { "\(state?.lastResult ?? "?") at \(timestamp($0))" } ?? "never pushed"
        var line = "\(cluster)  \(environment)  desired \(desiredText)  applied \(appliedText)  \(push)"
        if let reason = outOfStep { line += "  OUT OF STEP: \(reason)" }
        if let error = state?.lastError, error != outOfStep { line += "\n    last error: \(error)" }
        return line
    }

    /// Every cluster of `fleet` (or only the one named `only`), one store query per environment.
    /// `targets` gives each cluster's current target (`HubSession.targetKey`), compared with the recorded one.
    public static func all(fleet: ValidatedFleet, store: any HubStore, only: String? = nil,
                           targets: ((MemberCluster) -> String)? = nil) throws(EngineError) -> [ClusterStatus] {
        let states: [String: ClusterState]
        if let only {
            states = try stored { () throws(HubStoreError) in try store.clusterState(named: only) }.map { [only: $0] } ?? [:]
        } else {
            states = Dictionary(try stored { () throws(HubStoreError) in try store.clusterStates() }.map { ($0.cluster, $0) },
                                uniquingKeysWith: { a, _ in a })
        }
        var desiredByEnvironment: [String: Revision?] = [:]
        let wanted = only.flatMap { name in fleet.cluster(named: name)?.environment }
        for environment in fleet.environments where wanted == nil || environment.name == wanted {
            desiredByEnvironment[environment.name] = try stored { () throws(HubStoreError) in
                try store.desiredRevision(environment: environment.name)
            }
        }
        return fleet.clusters.filter { only == nil || $0.name == only }.map { cluster in
            ClusterStatus(cluster: cluster.name, environment: cluster.environment,
                          desired: desiredByEnvironment[cluster.environment] ?? nil, state: states[cluster.name],
                          target: targets?(cluster))
        }
    }
}

extension Revision {
    /// The revision's fields as JSON, the same for the CLI and the API; `id` writes a revision id.
    public func fields(id: (Int64) -> Value = { .string("r\($0)") }) -> ValueMapBuilder {
        var map = ValueMapBuilder()
        map.set("id", id(self.id))
        map.set("environment", .string(environment))
        map.set("parent", parent.map(id) ?? .null)
        map.set("cause", .string(cause))
        map.set("author", .string(author))
        map.set("createdAt", .string(timestamp(createdAt)))
        map.set("documents", .int(documentCount))
        map.set("treeHash", .string(treeHash))
        map.set("commit", commit.map(\.value) ?? .null)
        return map
    }
}

extension CommitProvenance {
    /// The commit as JSON, the same for the CLI, the API and the webhook.
    public var value: Value {
        var map = ValueMapBuilder()
        map.set("id", .string(commit))
        map.set("author", .string(author))
        map.set("committer", .string(committer))
        map.set("committedAt", .string(timestamp(committedAt)))
        map.set("subject", .string(subject))
        map.set("signature", .string(signature.rawValue))
        map.set("signer", signer.map(Value.string) ?? .null)
        map.set("signingKey", signingKey.map(Value.string) ?? .null)
        map.set("dirty", .bool(dirty))
        map.set("signatureRequired", .bool(signatureRequired))
        return map.value
    }
}
