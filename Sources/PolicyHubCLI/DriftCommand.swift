import ArgumentParser
import Foundation
import HubStore
import Members
import PolicyCore
import PolicyYAML

/// `policyhub drift`: where the fleet differs from what the hub wants (SEMANTICS §6).
struct DriftCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drift",
        abstract: "Report, per cluster, missing, modified, extra, unmanaged, pending and unreachable objects.",
        discussion: """
            Compares each cluster's desired effective policy (its environment's desired revision) with what the \
            member holds, and lists, per promotion edge, the documents that differ between source and target. \
            Each run is stored; the report says what is new and what was resolved since the previous one, and \
            --history lists earlier reports. Unmanaged objects are reported but are not drift (the hub never \
            touches them). Formats: table, json, markdown, policyreport (one wgpolicyk8s.io/v1alpha2 \
            ClusterPolicyReport per cluster). Exit 0 no drift, 2 drift found, 1 error.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json, markdown, policyreport
    }

    @OptionGroup var repository: RepositoryOptions

    @OptionGroup var member: MemberOptions

    @Option(name: .long, help: ArgumentHelp("The state file.", valueName: "path"))
    var state: String?

    @Option(name: .long, help: ArgumentHelp("Check only this cluster (repeatable).", valueName: "name"))
    var cluster: [String] = []

    @Option(name: .long, help: "table, json, markdown or policyreport.")
    var output: Format = .table

    @Flag(name: .long, help: "List earlier reports instead of checking.")
    var history = false

    struct EdgeDifference {
        var source: String
        var target: String
        var identity: ObjectIdentity
        var change: String
        var since: Double
    }

    func run() async throws {
        var opened = try HubSession.open(repository: repository, statePath: state, workingTree: .optional)
        opened.limits = member.limits
        let session = opened
        defer { session.transports.shutdown() }
        if history {
            for report in try storeCall({ try session.store.driftReports(limit: 50) }) {
                emit("report \(report.id)  \(timestamp(report.at))  \(report.findings) finding\(report.findings == 1 ? "" : "s")")
            }
            return
        }
        let clusters = try session.clusters(named: cluster)
        let at = now()
        let rootRevision = try storeCall { try session.store.desiredRevision(environment: session.fleet.root?.name ?? "") }
        let plan = try PushPlan.make(session: session, clusters: clusters, rootRevision: rootRevision)
        let states = Dictionary(try storeCall { try session.store.clusterStates() }.map { ($0.cluster, $0) },
                                uniquingKeysWith: { a, _ in a })
        var findings: [DriftFinding] = []
        let items = plan.toPush + plan.inStep
        var classes = Set<String>()  // clusters with the same desired hash hold the same objects: one of each
        let specs = DesiredSpecs(items.filter { classes.insert($0.desiredHash).inserted }.flatMap(\.policy.objects))
        let results = await withTaskGroup(of: [DriftFinding].self) { group in
            for item in items {
                group.addTask {
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
        findings = results.sorted()
        let edges = try edgeDifferences(session: session)

        // what is new and what was resolved since the previous report
        let previous = try storeCall { try session.store.driftReports(limit: 1) }.first
        var previousKeys = Set<String>()
        if let previous, let stored = try? JSONReader.parse(Array(previous.json.utf8)),  // stored as compact JSON
           case .list(let items)? = stored["findings"] {
            previousKeys = Set(items.compactMap { $0["key"]?.stringValue })
        }
        let currentKeys = Set(findings.map(\.key))
        let newKeys = previous == nil ? currentKeys : currentKeys.subtracting(previousKeys)
        let resolved = previousKeys.subtracting(currentKeys).sorted()
        let drift = findings.filter { $0.kind != .unmanaged }
        var byEnvironment: [String: Int] = [:]
        for environment in session.fleet.environments { byEnvironment[environment.name] = 0 }
        let environmentOf = Dictionary(session.fleet.clusters.map { ($0.name, $0.environment) }, uniquingKeysWith: { a, _ in a })
        for finding in drift { byEnvironment[environmentOf[finding.cluster] ?? "", default: 0] += 1 }
        let report = reportValue(findings: findings, newKeys: newKeys, resolved: resolved, edges: edges, at: at,
                                 untouched: plan.untouched.map(\.0))
        _ = try storeCall {
            try session.store.recordDriftReport(json: JSONWriter.compact(report), findings: drift.count, byEnvironment: byEnvironment, at: at)
        }
        switch output {
        case .json: emit(JSONWriter.pretty(report), terminator: "")
        case .markdown: emit(markdown(findings, newKeys: newKeys, resolved: resolved, edges: edges), terminator: "")
        case .policyreport:
            let clusterNames = items.map(\.cluster.name).sorted()
            let reports = clusterNames.map { name in
                policyReport(cluster: name, findings: findings.filter { $0.cluster == name }, at: at)
            }
            emit(YAMLWriter.documents(reports), terminator: "")
        case .table: emit(table(findings, newKeys: newKeys, resolved: resolved, edges: edges, untouched: plan.untouched), terminator: "")
        }
        if !drift.isEmpty { throw ExitCode(2) }
    }

    /// Per promotion edge, the documents whose version differs between source and target.
    func edgeDifferences(session: HubSession) throws -> [EdgeDifference] {
        var out: [EdgeDifference] = []
        for target in session.fleet.environments {
            guard let sourceName = target.promotesFrom,
                  let source = try storeCall({ try session.store.desiredRevision(environment: sourceName) }) else { continue }
            let targetRevision = try storeCall { try session.store.desiredRevision(environment: target.name) }
            let sourceDocs = Dictionary(try storeCall { try session.store.documents(revision: source.id) }.map { ($0.identity, $0.hash) },
                                        uniquingKeysWith: { a, _ in a })
            let targetDocs = Dictionary(try targetRevision.map { r in try storeCall { try session.store.documents(revision: r.id) } }?
                .map { ($0.identity, $0.hash) } ?? [], uniquingKeysWith: { a, _ in a })
            for identity in Set(sourceDocs.keys).union(targetDocs.keys).sorted() {
                let change: String
                switch (sourceDocs[identity], targetDocs[identity]) {
                case (let a?, let b?) where a != b: change = "changed"
                case (_?, nil): change = "not yet promoted"
                case (nil, _?): change = "removed in \(sourceName)"
                case (_?, _?), (nil, nil): continue
                }
                out.append(EdgeDifference(source: sourceName, target: target.name, identity: identity, change: change,
                                          since: max(source.createdAt, targetRevision?.createdAt ?? 0)))
            }
        }
        return out
    }

    func reportValue(findings: [DriftFinding], newKeys: Set<String>, resolved: [String], edges: [EdgeDifference], at: Double,
                     untouched: [String]) -> Value {
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
            Value.MapEntry("notChecked", .list(untouched.map(Value.string))),
        ])
    }

    func table(_ findings: [DriftFinding], newKeys: Set<String>, resolved: [String], edges: [EdgeDifference],
               untouched: [(String, String)]) -> String {
        var out = ""
        if findings.isEmpty { out += "no drift\n" }
        for finding in findings {
            let mark = newKeys.contains(finding.key) ? " (new)" : ""
            out += "\(finding.cluster)  \(finding.kind.rawValue)\(mark)  \(finding.object?.description ?? "-")  \(finding.message)\n"
        }
        for key in resolved { out += "resolved since the previous report: \(key.replacingOccurrences(of: "|", with: " "))\n" }
        for edge in edges {
            out += "\(edge.source) -> \(edge.target): \(edge.identity) \(edge.change) since \(timestamp(edge.since))\n"
        }
        for (name, reason) in untouched { out += "\(name): not checked: \(reason)\n" }
        return out
    }

    func markdown(_ findings: [DriftFinding], newKeys: Set<String>, resolved: [String], edges: [EdgeDifference]) -> String {
        var out = "# Drift report\n\n"
        if findings.isEmpty {
            out += "No drift.\n"
        } else {
            out += "| cluster | class | object | detail | new |\n| --- | --- | --- | --- | --- |\n"
            for f in findings {
                let detail = f.message.replacingOccurrences(of: "|", with: "\\|")
                out += "| \(f.cluster) | \(f.kind.rawValue) | \(f.object?.description ?? "") | \(detail) | \(newKeys.contains(f.key) ? "yes" : "") |\n"
            }
        }
        if !resolved.isEmpty {
            out += "\n## Resolved since the previous report\n\n"
            for key in resolved { out += "- \(key.replacingOccurrences(of: "|", with: " "))\n" }
        }
        if !edges.isEmpty {
            out += "\n## Promotion edges\n\n| source | target | document | change | since |\n| --- | --- | --- | --- | --- |\n"
            for e in edges { out += "| \(e.source) | \(e.target) | \(e.identity) | \(e.change) | \(timestamp(e.since)) |\n" }
        }
        return out
    }

    /// One ClusterPolicyReport for a cluster, with the real field shapes (results[].result, summary,
    /// timestamp as {seconds, nanos}).
    func policyReport(cluster: String, findings: [DriftFinding], at: Double) -> Value {
        let seconds = Int(at)
        let stamp = Value.map([Value.MapEntry("seconds", .int(seconds)), Value.MapEntry("nanos", .int(Int((at - Double(seconds)) * 1e9)))])
        var summary = (pass: 0, fail: 0, warn: 0, error: 0)
        var results: [Value] = []
        for finding in findings {
            let result: String
            switch finding.kind {
            case .missing, .modified, .extra, .pending: result = "fail"; summary.fail += 1
            case .unmanaged: result = "warn"; summary.warn += 1
            case .unreachable: result = "error"; summary.error += 1
            }
            var map = ValueMapBuilder()
            map.set("source", .string("policyhub"))
            map.set("policy", .string(finding.object?.name ?? cluster))
            map.set("rule", finding.fields.isEmpty ? nil : .string(finding.fields.joined(separator: ",")))
            map.set("category", .string("drift/\(finding.kind.rawValue)"))
            map.set("result", .string(result))
            map.set("scored", .bool(finding.kind != .unmanaged))
            map.set("timestamp", stamp)
            map.set("message", .string(finding.message))
            if let object = finding.object {
                var ref = ValueMapBuilder()
                ref.set("apiVersion", .string(ObjectKind.apiVersion))
                ref.set("kind", .string(object.kind.rawValue))
                ref.set("name", .string(object.name))
                ref.set("namespace", object.kind.isNamespaced ? .string(object.namespace) : nil)
                map.set("resources", .list([ref.value]))
            }
            map.set("properties", .map([Value.MapEntry("cluster", .string(cluster))]))
            results.append(map.value)
        }
        if findings.isEmpty {
            summary.pass = 1
            results.append(.map([Value.MapEntry("source", .string("policyhub")), Value.MapEntry("policy", .string(cluster)),
                                 Value.MapEntry("category", .string("drift")), Value.MapEntry("result", .string("pass")),
                                 Value.MapEntry("scored", .bool(true)), Value.MapEntry("timestamp", stamp),
                                 Value.MapEntry("message", .string("the cluster holds exactly its effective policy"))]))
        }
        return .map([
            Value.MapEntry("apiVersion", .string("wgpolicyk8s.io/v1alpha2")),
            Value.MapEntry("kind", .string("ClusterPolicyReport")),
            Value.MapEntry("metadata", .map([Value.MapEntry("name", .string("policyhub-drift-\(cluster)")),
                                             Value.MapEntry("labels", .map([Value.MapEntry(HubAnnotation.managedByKey, .string(HubAnnotation.managedByValue))]))])),
            Value.MapEntry("summary", .map([Value.MapEntry("pass", .int(summary.pass)), Value.MapEntry("fail", .int(summary.fail)),
                                            Value.MapEntry("warn", .int(summary.warn)), Value.MapEntry("error", .int(summary.error)),
                                            Value.MapEntry("skip", .int(0))])),
            Value.MapEntry("results", .list(results)),
        ])
    }
}
