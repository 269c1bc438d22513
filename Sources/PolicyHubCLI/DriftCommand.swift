import ArgumentParser
import Foundation
import HubEngine
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

    @Option(name: .long, help: ArgumentHelp("The state: a SQLite file (default .policyhub/state.sqlite) or postgres://USER@HOST:PORT/DB (password from PGPASSWORD or passwordFile=FILE in the URL).", valueName: "path|url"))
    var state: String?

    @Option(name: .long, help: ArgumentHelp("Check only this cluster (repeatable).", valueName: "name"))
    var cluster: [String] = []

    @Option(name: .long, help: "table, json, markdown or policyreport.")
    var output: Format = .table

    @Flag(name: .long, help: "List earlier reports instead of checking (with --output json: as JSON).")
    var history = false

    @Flag(name: .long, help: "Read and report, but store nothing: no report in the history and no cluster marked out of step.")
    var noRecord = false

    func validate() throws {
        if history && noRecord { throw ValidationError("--history reads stored reports; --no-record does not apply to it") }
        if history && output != .table && output != .json {
            throw ValidationError("--history prints a table or json, not \(output.rawValue)")
        }
    }

    typealias EdgeDifference = DriftReport.EdgeDifference

    func run() async throws {
        member.startWatchdog()
        var opened = try cli { () throws(EngineError) in try repository.engine(state: state).open(workingTree: .optional) }
        opened.limits = member.limits
        let session = opened
        if history {
            let reports = try cli({ () throws(EngineError) in try stored { () throws(HubStoreError) in try session.store.driftReports(limit: 50) } })
            if output == .json {
                emit(JSONWriter.pretty(.list(reports.map { report in
                    .map([Value.MapEntry("id", .int(Int(report.id))), Value.MapEntry("at", .string(timestamp(report.at))),
                          Value.MapEntry("findings", .int(report.findings))])
                })), terminator: "")
                return
            }
            if reports.isEmpty { emit("no drift report is stored yet (policyhub drift makes one)") }
            for report in reports {
                emit("report \(report.id)  \(timestamp(report.at))  \(report.findings) finding\(report.findings == 1 ? "" : "s")")
            }
            return
        }
        let names = cluster
        let record = !noRecord
        let report = try await cli { () async throws(EngineError) in try await session.driftReport(clusters: names, record: record) }
        let (findings, newKeys, resolved, edges) = (report.findings, report.newKeys, report.resolved, report.edges)
        switch output {
        case .json: emit(JSONWriter.pretty(report.value), terminator: "")
        case .markdown: emit(markdown(findings, newKeys: newKeys, resolved: resolved, edges: edges), terminator: "")
        case .policyreport:
            let reports = report.checked.map { name in
                policyReport(cluster: name, findings: findings.filter { $0.cluster == name }, at: report.at)
            }
            emit(YAMLWriter.documents(reports), terminator: "")
        case .table: emit(table(findings, newKeys: newKeys, resolved: resolved, edges: edges, untouched: report.untouched), terminator: "")
        }
        if !report.drift.isEmpty { throw ExitCode(2) }
    }

    func table(_ findings: [DriftFinding], newKeys: Set<String>, resolved: [String], edges: [EdgeDifference],
               untouched: [(cluster: String, reason: String)]) -> String {
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
