import HubStore
import HubTransport
import Members
import PolicyCore

/// One cluster as the daemon's watches see it (SEMANTICS §6): where to watch, which kinds, and what each desired
/// object looks like, so that the echo of the hub's own push is told apart from a change made by hand.
public struct WatchTarget: Sendable {
    public enum Source: Sendable {
        /// A Kubernetes member, talking through the watches' own transport.
        case kubernetes(KubernetesMember)
        /// A directory member: its folder is polled.
        case directory(DirectoryMember)
    }

    public var cluster: String
    public var environment: String
    public var selfHeal: Bool
    public var source: Source
    /// The NeuVector kinds watched: those of the desired objects and of the objects the store says were applied
    /// (the two rule kinds when there are none).
    public var kinds: [ObjectKind]
    /// `WatchTarget.fingerprint` of each desired object.
    public var desired: [ObjectIdentity: String]

    /// What a push sets on an object (spec, labels, annotations but the revision), hashed: equal for the desired
    /// object and for the member's copy of it, whatever the server added.
    public static func fingerprint(_ value: Value) -> String {
        ContentHash.of(DriftComparison.comparable(value))
    }

    /// Whether a watched change departs from the desired state (a hand-made change, or one missed).
    public func departs(_ event: WatchEvent) -> Bool {
        switch event.change {
        case .added, .modified: return desired[event.identity] != WatchTarget.fingerprint(event.object)
        case .deleted: return desired[event.identity] != nil
        }
    }

    /// Whether the managed objects a member holds differ from the desired ones (missing, modified or extra).
    public func departs(held: [ObjectIdentity: Value]) -> Bool {
        guard held.count == desired.count else { return true }
        return held.contains { identity, value in desired[identity] != WatchTarget.fingerprint(value) }
    }

    /// Whether a listing of `kind` differs from the desired objects of that kind (missing, modified or extra).
    public func departs(listing: [ObjectIdentity: Value], kind: ObjectKind) -> Bool {
        for (identity, fingerprint) in desired where identity.kind == kind {
            guard let held = listing[identity], WatchTarget.fingerprint(held) == fingerprint else { return true }
        }
        return listing.keys.contains { desired[$0] == nil }
    }
}

extension HubEngine {
    /// The clusters the daemon watches (every cluster with a desired revision, or those of `clusters`; of
    /// those, the ones `owned` accepts: a replica's share), Kubernetes members talking through `transport`
    /// without a deadline. A cluster whose kubeconfig does not read is left out and named in `problems`.
    public func watchTargets(clusters only: Set<String>? = nil, owned: ((String) -> Bool)? = nil, transport: any HTTPTransport) throws(EngineError)
        -> (targets: [WatchTarget], problems: [MemberError])
    {
        let session = try open(workingTree: .optional)
        let clusters = session.fleet.clusters.filter { (only?.contains($0.name) ?? true) && (owned?($0.name) ?? true) }
        let rootRevision = try session.fleet.root.flatMap { environment throws(EngineError) in
            try stored { () throws(HubStoreError) in try session.store.desiredRevision(environment: environment.name) }
        }
        let plan = try PushPlan.make(session: session, clusters: clusters, rootRevision: rootRevision, ignoringFreeze: true)
        var targets: [WatchTarget] = []
        var problems: [MemberError] = []
        var fingerprints: [String: [ObjectIdentity: String]] = [:]  // clusters of one class share their objects
        for item in plan.items {
            let source: WatchTarget.Source
            switch session.watchedMember(for: item.cluster, transport: transport) {
            case .failure(let error):
                problems.append(error)
                continue
            case .success(let member as KubernetesMember):
                source = .kubernetes(member)
            case .success(let member as DirectoryMember):
                source = .directory(member)
            case .success(let member):
                problems.append(MemberError(cluster: member.cluster, message: "this kind of member cannot be watched"))
                continue
            }
            let desired = fingerprints[item.desiredHash] ?? Dictionary(
                item.policy.objects.map { ($0.identity, WatchTarget.fingerprint($0.value)) }, uniquingKeysWith: { a, _ in a })
            fingerprints[item.desiredHash] = desired
            let applied = try stored { () throws(HubStoreError) in try session.store.appliedObjects(cluster: item.cluster.name) }
            var kinds = Set(desired.keys.map(\.kind)).union(applied.keys.map(\.kind))
            if kinds.isEmpty { kinds = [.securityRule, .clusterSecurityRule] }
            targets.append(WatchTarget(cluster: item.cluster.name, environment: item.cluster.environment,
                                       selfHeal: session.fleet.environment(named: item.cluster.environment)?.selfHeal == true,
                                       source: source, kinds: kinds.sorted(), desired: desired))
        }
        return (targets, problems)
    }
}
