import Foundation
import HubStore
import Members
import PolicyCore

/// One drift report (SEMANTICS §6): every finding, what is new and resolved since the previous report,
/// the documents that differ along each promotion edge, and the clusters not checked.
public struct DriftReport: Sendable {
    /// A document whose version differs between the two ends of a promotion edge.
    public struct EdgeDifference: Sendable {
        public var source: String
        public var target: String
        public var identity: ObjectIdentity
        public var change: String
        public var since: Double
    }

    /// The stored report's id.
    public var id: Int64
    public var at: Double
    public var findings: [DriftFinding]
    /// Keys of the findings that the previous report did not have (all of them for the first report).
    public var newKeys: Set<String>
    /// Keys of the previous report's findings that are gone.
    public var resolved: [String]
    public var edges: [EdgeDifference]
    /// Clusters left out, with why (an environment before its first promotion).
    public var untouched: [(cluster: String, reason: String)]
    /// The clusters checked, sorted.
    public var checked: [String]

    /// How a drift report's out-of-step mark begins (`ClusterState.outOfStep`).
    public static let outOfStepPrefix = "drift found at "

    /// Findings that are drift (unmanaged objects are reported, not drift).
    public var drift: [DriftFinding] { findings.filter { $0.kind != .unmanaged } }

    /// Drift findings per cluster, every checked cluster included (0 for a clean one).
    public var driftByCluster: [String: Int] {
        var out = Dictionary(checked.map { ($0, 0) }, uniquingKeysWith: { a, _ in a })
        for finding in drift { out[finding.cluster, default: 0] += 1 }
        return out
    }

    /// Drift findings new since the previous report.
    public var newDrift: Int { drift.filter { newKeys.contains($0.key) }.count }

    /// The report as JSON: what is stored, what `drift --output json` prints and the API answers.
    public var value: Value {
        .map([
            Value.MapEntry("at", .string(timestamp(at))),
            Value.MapEntry("findings", .list(findings.map { finding in
                var map = ValueMapBuilder()
                map.set("key", .string(finding.key))
                map.set("cluster", .string(finding.cluster))
                map.set("class", .string(finding.kind.rawValue))
                map.set("object", finding.object.map { .string($0.description) } ?? .null)
                map.set("fields", .list(finding.fields.map(Value.string)))
                map.set("message", .string(finding.message))
                map.set("new", .bool(newKeys.contains(finding.key)))
                return map.value
            })),
            Value.MapEntry("resolved", .list(resolved.map(Value.string))),
            Value.MapEntry("promotionEdges", .list(edges.map { edge in
                .map([Value.MapEntry("source", .string(edge.source)), Value.MapEntry("target", .string(edge.target)),
                      Value.MapEntry("document", .string(edge.identity.description)), Value.MapEntry("change", .string(edge.change)),
                      Value.MapEntry("since", .string(timestamp(edge.since)))])
            })),
            Value.MapEntry("notChecked", .list(untouched.map { .string($0.cluster) })),
        ])
    }
}

extension HubSession {
    /// Compares each cluster's desired effective policy with what its member holds, stores the report and
    /// returns it. `clusters` empty: every cluster; otherwise the stored report keeps the other clusters'
    /// findings of the previous one as they were. A cluster with a missing, modified or extra finding is
    /// marked out of step, so that the next push restores it (SEMANTICS §6). `record` false: only reads.
    public func driftReport(clusters names: [String] = [], record: Bool = true) async throws(EngineError) -> DriftReport {
        defer { transports.shutdown() }
        let clusters = try clusters(named: names)
        let at = now()
        let rootRevision = try stored { () throws(HubStoreError) in try store.desiredRevision(environment: fleet.root?.name ?? "") }
        let plan = try PushPlan.make(session: self, clusters: clusters, rootRevision: rootRevision, ignoringFreeze: true)
        let states = try clusterStates()
        let items = plan.items
        var classes = Set<String>()  // clusters with the same desired hash hold the same objects: one of each
        let specs = DesiredSpecs(items.filter { classes.insert($0.desiredHash).inserted }.flatMap(\.policy.objects))
        let session = self
        let activity = engine.activity
        // every member read at once, each noted on the activity board (a terminal hears of a slow one)
        let results = await withHeartbeat { () async -> [DriftFinding] in
        await withTaskGroup(of: [DriftFinding].self) { group in
            for item in items {
                group.addTask {
                    session.noteStarted(item.cluster.name)
                    defer { activity.finished(item.cluster.name) }
                    var found: [DriftFinding] = []
                    if states[item.cluster.name]?.appliedRevision != item.revision.id {
                        let applied = states[item.cluster.name]?.appliedRevision.map { "r\($0)" } ?? "nothing"
                        found.append(DriftFinding(cluster: item.cluster.name, kind: .pending, object: nil,
                                                  message: "holds \(applied), its environment wants r\(item.revision.id)"))
                    }
                    switch session.member(for: item.cluster) {
                    case .failure(let error):
                        found.append(DriftFinding(cluster: item.cluster.name, kind: .unreachable, object: nil, message: error.message))
                    case .success(let member):
                        do throws(MemberError) {
                            let held = try await member.heldObjects()
                            found += DriftComparison.compare(cluster: item.cluster.name, desired: item.policy.objects, held: held,
                                                            specs: specs)
                        } catch {
                            found.append(DriftFinding(cluster: item.cluster.name, kind: .unreachable, object: nil, message: error.message))
                        }
                    }
                    return found
                }
            }
            var all: [DriftFinding] = []
            for await found in group { all += found }
            return all
        }
        }
        let findings = results.sorted()
        let edges = try edgeDifferences()

        // what is new and what was resolved since the previous report, among the clusters checked
        let checked = Set(items.map(\.cluster.name))
        let previous = try stored { () throws(HubStoreError) in try store.driftReports(limit: 1) }.first
        var carried: [Value] = []  // the previous findings of clusters this report did not look at
        var previousKeys = Set<String>()
        if let previous, let stored = try? JSONReader.parse(Array(previous.json.utf8)),  // stored as compact JSON
           case .list(let items)? = stored["findings"] {
            for item in items {
                guard let cluster = item["cluster"]?.stringValue else { continue }
                if checked.contains(cluster) {
                    if let key = item["key"]?.stringValue { previousKeys.insert(key) }
                } else if fleet.cluster(named: cluster) != nil {
                    carried.append(item)
                }
            }
        }
        let currentKeys = Set(findings.map(\.key))
        var report = DriftReport(id: 0, at: at, findings: findings,
                                 newKeys: previous == nil ? currentKeys : currentKeys.subtracting(previousKeys),
                                 resolved: previousKeys.subtracting(currentKeys).sorted(), edges: edges, untouched: plan.untouched,
                                 checked: items.map(\.cluster.name).sorted())
        guard record else { return report }
        var byEnvironment: [String: Int] = [:]
        for environment in fleet.environments { byEnvironment[environment.name] = 0 }
        let environmentOf = Dictionary(fleet.clusters.map { ($0.name, $0.environment) }, uniquingKeysWith: { a, _ in a })
        let drift = report.drift
        for finding in drift { byEnvironment[environmentOf[finding.cluster] ?? "", default: 0] += 1 }
        var carriedDrift = 0
        for item in carried where item["class"]?.stringValue != DriftClass.unmanaged.rawValue {
            byEnvironment[environmentOf[item["cluster"]?.stringValue ?? ""] ?? "", default: 0] += 1
            carriedDrift += 1
        }
        var value = report.value
        if !carried.isEmpty, case .map(var entries) = value, let index = entries.firstIndex(where: { $0.key == "findings" }),
           case .list(let own) = entries[index].value {
            entries[index].value = .list(own + carried)
            value = .map(entries)
        }
        let json = JSONWriter.compact(value)
        report.id = try stored { () throws(HubStoreError) in
            try store.recordDriftReport(json: json, findings: drift.count + carriedDrift, byEnvironment: byEnvironment, at: at)
        }
        try markSteps(report, items: items, states: states)
        return report
    }

    /// Marks each checked cluster whose member differs (missing, modified, extra) out of step, and clears the
    /// mark a previous report set on a cluster that now holds exactly its policy.
    func markSteps(_ report: DriftReport, items: [PushPlan.Item], states: [String: ClusterState]) throws(EngineError) {
        var counts: [String: [DriftClass: Int]] = [:]
        for finding in report.findings { counts[finding.cluster, default: [:]][finding.kind, default: 0] += 1 }
        for item in items {
            let name = item.cluster.name
            let found = counts[name] ?? [:]
            let differs = [DriftClass.missing, .modified, .extra].filter { (found[$0] ?? 0) > 0 }
            let current = states[name]?.outOfStep
            var reason: String?
            if !differs.isEmpty {
                reason = DriftReport.outOfStepPrefix + "\(timestamp(report.at)) (report \(report.id)): "
                    + differs.map { "\(found[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
            } else if current?.hasPrefix(DriftReport.outOfStepPrefix) == true && found[.unreachable] == nil && found[.pending] == nil {
                reason = nil  // it holds its policy again
            } else {
                continue
            }
            guard reason != current else { continue }
            try stored { () throws(HubStoreError) in
                try store.markOutOfStep(cluster: name, environment: item.cluster.environment, reason: reason)
            }
        }
    }

    /// Per promotion edge, the documents whose version differs between source and target.
    public func edgeDifferences() throws(EngineError) -> [DriftReport.EdgeDifference] {
        var out: [DriftReport.EdgeDifference] = []
        for target in fleet.environments {
            guard let sourceName = target.promotesFrom,
                  let source = try stored({ () throws(HubStoreError) in try store.desiredRevision(environment: sourceName) }) else { continue }
            let targetRevision = try stored { () throws(HubStoreError) in try store.desiredRevision(environment: target.name) }
            let sourceDocs = try hashes(of: source)
            let targetDocs = try targetRevision.map { revision throws(EngineError) in try hashes(of: revision) } ?? [:]
            for identity in Set(sourceDocs.keys).union(targetDocs.keys).sorted() {
                let change: String
                switch (sourceDocs[identity], targetDocs[identity]) {
                case (let a?, let b?) where a != b: change = "changed"
                case (_?, nil): change = "not yet promoted"
                case (nil, _?): change = "removed in \(sourceName)"
                case (_?, _?), (nil, nil): continue
                }
                let since = try firstDiffering(identity, in: sourceName, from: source, targetHash: targetDocs[identity])
                out.append(DriftReport.EdgeDifference(source: sourceName, target: target.name, identity: identity, change: change,
                                                      since: max(since, targetRevision?.createdAt ?? 0)))
            }
        }
        return out
    }

    /// The most source revisions `firstDiffering` walks back.
    static let edgeHistoryDepth = 500

    /// When `identity` began to differ in the source environment from the target's version (`targetHash`, nil
    /// when the target lacks it): the time of the oldest revision of the latest unbroken run, newest first,
    /// whose version differs.
    func firstDiffering(_ identity: ObjectIdentity, in environment: String, from newest: Revision,
                        targetHash: String?) throws(EngineError) -> Double {
        let history = try stored { () throws(HubStoreError) in try store.revisions(environment: environment) }
        var since = newest.createdAt
        for revision in history.prefix(HubSession.edgeHistoryDepth) where revision.id <= newest.id {
            guard try hashes(of: revision)[identity] != targetHash else { break }
            since = revision.createdAt
        }
        return since
    }

    /// Each document's content hash in a revision.
    func hashes(of revision: Revision) throws(EngineError) -> [ObjectIdentity: String] {
        Dictionary(try stored { () throws(HubStoreError) in try store.documents(revision: revision.id) }.map { ($0.identity, $0.hash) },
                   uniquingKeysWith: { a, _ in a })
    }
}
