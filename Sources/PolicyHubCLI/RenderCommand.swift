import ArgumentParser
import Foundation
import HubEngine
import PolicyCore
import PolicyYAML

/// `policyhub render`: the effective policy of one or all clusters.
struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Render the effective policy of clusters from the policies/ tree.",
        discussion: """
            A pure function of the repository: the same files give byte-identical output in any order. \
            It renders policies/ for every cluster, whatever is deployed.

            Without --out-dir, prints YAML documents (or JSON with --output json) to standard output. \
            With --out-dir, writes one file per object in the GitOps layout:
              DIR/<cluster>/cluster/<kind>s/<name>.yaml
              DIR/<cluster>/namespaces/<ns>/<kind>s/<name>.yaml
            Conflicts (shadowed, overridden, redundant, ambiguous) go to standard error; an ambiguous \
            conflict is an error and makes the exit status 1, after the output is written.
            """)

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: ArgumentHelp("Render only this cluster (repeatable).", valueName: "name"))
    var cluster: [String] = []

    @Option(name: .long, help: "Output format for standard output: yaml or json.")
    var output: DocumentFormat = .yaml

    @Option(name: .customLong("out-dir"), help: ArgumentHelp("Write one file per object below this folder.", valueName: "dir"))
    var outDir: String?

    @OptionGroup var view: PolicyViewOptions

    @Option(name: .long, help: ArgumentHelp("The state file (for --env and --revision).", valueName: "path"))
    var state: String?

    @OptionGroup var diagnostics: DiagnosticOptions

    func run() throws {
        diagnostics.start(command: "policyhub render")
        defer { DiagnosticSink.shared.finish() }
        let (renderer, fleet, inScope, shown) = try view.resolve(repository, statePath: state)
        // standard output stays the objects alone (it goes to kubectl or a file); which policy it is goes here
        printError("policyhub render: \(shown.description)")
        var clusters = inScope
        if !cluster.isEmpty {
            for name in cluster where fleet.cluster(named: name) == nil {
                printError("policyhub: " + EditDistance.unknown("cluster", name, known: fleet.clusters.map(\.name)))
                throw ExitStatus.failure
            }
            for name in cluster where !inScope.contains(where: { $0.name == name }) {
                printError("policyhub: cluster '\(name)' is not in \(shown.storedRevision?.environment ?? "the view")")
                throw ExitStatus.failure
            }
            clusters = clusters.filter { cluster.contains($0.name) }
        }
        let rendered = renderer.render(clusters: clusters, parallel: .dispatch)
        var ambiguous = false
        var found: [Diagnostic] = []
        for (cluster, policy) in rendered {
            for conflict in policy.conflicts {
                if conflict.severity == .error { ambiguous = true }
                found.append(conflict.diagnostic(on: cluster.name))
            }
        }
        DiagnosticSink.shared.emit(found)
        if let outDir {
            try write(rendered, to: outDir)
        } else {
            switch output {
            case .json: print(RenderOutput.json(rendered), terminator: "")
            case .yaml: print(RenderOutput.yaml(rendered), terminator: "")
            }
        }
        if ambiguous { throw ExitStatus.failure }
    }

    func write(_ rendered: [(cluster: MemberCluster, policy: EffectivePolicy)], to folder: String) throws {
        let base = folder.hasPrefix("/") ? folder
            : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(folder)
        var files = 0
        for (cluster, policy) in rendered {
            let clusterDir = (base as NSString).appendingPathComponent(cluster.name)
            for object in policy.objects {
                let path = (clusterDir as NSString).appendingPathComponent(GitOpsLayout.relativePath(of: object.identity))
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                        withIntermediateDirectories: true)
                try Data(YAMLWriter.document(object.value).utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
                files += 1
            }
        }
        printError("wrote \(files) files for \(rendered.count) cluster\(rendered.count == 1 ? "" : "s") below \(folder)")
    }
}

/// The stdout forms of a render.
public enum RenderOutput {
    /// YAML documents, each cluster's introduced by a comment.
    public static func yaml(_ rendered: [(cluster: MemberCluster, policy: EffectivePolicy)]) -> String {
        var out = ""
        for (cluster, policy) in rendered {
            out += "# cluster: \(cluster.name) (environment: \(cluster.environment)), \(policy.objects.count) objects\n"
            for object in policy.objects {
                out += "---\n" + YAMLWriter.document(object.value)
            }
        }
        return out
    }

    /// A JSON array: per cluster, `cluster`, `environment`, `objects` and `conflicts`.
    public static func json(_ rendered: [(cluster: MemberCluster, policy: EffectivePolicy)]) -> String {
        JSONWriter.pretty(.list(rendered.map { cluster, policy in
            .map([
                Value.MapEntry("cluster", .string(cluster.name)),
                Value.MapEntry("environment", .string(cluster.environment)),
                Value.MapEntry("objects", .list(policy.objects.map(\.value))),
                Value.MapEntry("conflicts", .list(policy.conflicts.map(conflictValue))),
            ])
        }))
    }

    static func sourceValue(_ source: RuleSource) -> Value {
        .map([
            Value.MapEntry("file", .string(source.file)),
            Value.MapEntry("line", .int(source.line)),
            Value.MapEntry("column", .int(source.column)),
            Value.MapEntry("document", .string(source.document.description)),
            Value.MapEntry("rule", .string(source.rule)),
            Value.MapEntry("tier", .string(source.tier.rawValue)),
        ])
    }

    static func conflictValue(_ conflict: Conflict) -> Value {
        .map([
            Value.MapEntry("type", .string(conflict.kind.rawValue)),
            Value.MapEntry("severity", .string(conflict.severity.rawValue)),
            Value.MapEntry("rule", sourceValue(conflict.rule)),
            Value.MapEntry("by", sourceValue(conflict.by)),
            Value.MapEntry("message", .string(conflict.message)),
        ])
    }
}

/// The `shadowed` and `overridden` findings of the clusters a plan or an apply is about, on standard error
/// as `path:line:col: warning:`, each once with the clusters it holds on (the runbooks read them there).
func printPrecedenceWarnings(_ items: [PushPlan.Item]) {
    var clusters: [Conflict: [String]] = [:]
    for item in items {
        for conflict in item.policy.conflicts where conflict.kind == .shadowed || conflict.kind == .overridden {
            clusters[conflict, default: []].append(item.cluster.name)
        }
    }
    DiagnosticSink.shared.emit(clusters.keys.sorted().map { conflict in
        // the clusters it holds on, at most 10 named (a fleet of 10,000 made this one line of 90 KB)
        let on = (clusters[conflict] ?? []).sorted()
        let named = on.count > 10 ? on.prefix(10).joined(separator: ", ") + ", and \(on.count - 10) more" : on.joined(separator: ", ")
        return conflict.diagnostic(on: named, severity: .warning)
    })
}

extension Conflict {
    /// The conflict as a diagnostic at its rule, naming the clusters it holds on and the other rule.
    func diagnostic(on clusters: String, severity: Diagnostic.Severity? = nil) -> Diagnostic {
        Diagnostic(severity ?? (self.severity == .error ? .error : .warning), at: rule.location,
                   "[\(clusters)] \(kind.rawValue): \(message) (\(by.location))", rule: "precedence-\(kind.rawValue)")
    }
}
