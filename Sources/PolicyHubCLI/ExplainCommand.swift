import ArgumentParser
import HubEngine
import HubStore
import Members
import PolicyCore
import PolicyYAML

/// `policyhub explain`: why a flow or a process is allowed or denied on a cluster.
struct ExplainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Explain the decision for a network flow, a process or a workload's admission on one cluster.",
        discussion: """
            Prints the decision, the deciding rule with its file, line and tier, and the rules it beat. \
            Groups are named as in the policies (nv.<svc>.<ns>, containers, external, nodes, ...).

            Examples:
              policyhub explain --cluster prod-eu-1 --target nv.node-pod.demo \\
                --peer nv.redis-pod.demo --port tcp/6379 --app Redis --direction egress
              policyhub explain --cluster prod-eu-1 --target nv.node-pod.demo \\
                --process /usr/bin/nc
              policyhub explain --live --cluster staging-eu-1 --target nv.node-pod.demo \\
                --process /usr/bin/nc
              policyhub explain --admission --cluster prod-eu-1 --namespace payments \\
                --image docker.io/library/nginx:1.27 --label app=web

            --admission answers for a workload described by its namespace, image and labels (and \
            --annotation, --user): the rule of the cluster's compiled 'local' admission object that \
            decides (NeuVector runs every allow rule before every deny rule), its source and tier, and \
            how precedence narrowed the namespace allows (README, "How precedence works").

            By default the working tree decides; --env ENV uses what ENV holds (its desired revision), \
            --revision rN a stored revision, and --live what the member holds now, read from the cluster \
            (a member whose objects were changed by hand decides differently from the hub, and the answer \
            says so).
            """)

    @OptionGroup var repository: RepositoryOptions

    @OptionGroup var view: PolicyViewOptions

    @Option(name: .long, help: ArgumentHelp("The state file (for --env and --revision).", valueName: "path"))
    var state: String?

    @Option(name: .long, help: "The cluster whose effective policy decides.")
    var cluster: String

    @Option(name: .long, help: ArgumentHelp("The group the workload belongs to.", valueName: "group"))
    var target: String?

    @Flag(name: .long, help: "Explain the admission of a workload (with --namespace, --image, --label).")
    var admission = false

    @Option(name: .long, help: ArgumentHelp("The workload's namespace (with --admission).", valueName: "ns"))
    var namespace: String?

    @Option(name: .long, help: ArgumentHelp("The workload's image, e.g. reg.corp/team/app:1.2 (with --admission).", valueName: "image"))
    var image: String?

    @Option(name: .long, help: ArgumentHelp("A label of the workload, key=value; repeat for more (with --admission).", valueName: "k=v"))
    var label: [String] = []

    @Option(name: .long, help: ArgumentHelp("An annotation of the workload, key=value; repeat for more (with --admission).", valueName: "k=v"))
    var annotation: [String] = []

    @Option(name: .long, help: ArgumentHelp("The user who creates the workload (with --admission).", valueName: "name"))
    var user: String?

    @Option(name: .long, help: ArgumentHelp("Another property the criteria read, e.g. runAsPrivileged=true or cveHighCount=3; true/false properties not given are false (with --admission).", valueName: "name=value"))
    var property: [String] = []

    @Option(name: .long, help: ArgumentHelp("A process path started in the target.", valueName: "path"))
    var process: String?

    @Option(name: .long, help: ArgumentHelp("The other side of the flow.", valueName: "group"))
    var peer: String?

    @Option(name: .long, help: ArgumentHelp("tcp/80, udp/53, 8080 (tcp) or icmp.", valueName: "port"))
    var port: String?

    @Option(name: .long, help: ArgumentHelp("The application protocol, e.g. HTTP, Redis, SSH.", valueName: "name"))
    var app: String?

    @Option(name: .long, help: "ingress (peer to target) or egress (target to peer).")
    var direction: String = "ingress"

    @Option(name: .long, help: "text or json.")
    var output: OutputFormat = .text

    @Flag(name: .long, help: "Explain from what the member holds now (read from the cluster), not from what the hub wants it to hold.")
    var live = false

    @OptionGroup var member: MemberOptions

    func validate() throws {
        if live && (view.env != nil || view.revision != nil) {
            throw ValidationError("--live reads what the member holds; it does not combine with --env or --revision")
        }
        if admission {
            guard namespace != nil else { throw ValidationError("--admission needs --namespace NS (and usually --image and --label)") }
            if target != nil || process != nil || peer != nil {
                throw ValidationError("--admission describes a workload by --namespace, --image and --label; it does not take --target, --process or --peer")
            }
            for pair in label + annotation + property where ExplainCommand.keyValue(pair) == nil {
                throw ValidationError("'\(pair)' is not key=value")
            }
            return
        }
        if namespace != nil || image != nil || !label.isEmpty || !annotation.isEmpty || user != nil || !property.isEmpty {
            throw ValidationError("--namespace, --image, --label, --annotation and --user describe a workload for --admission")
        }
        if target == nil {
            throw ValidationError("give --target GROUP (the workload's group), or --admission to explain a workload's admission")
        }
        if (process == nil) == (peer == nil) {
            throw ValidationError("give either --process PATH or --peer GROUP (with --port/--app/--direction)")
        }
        if Direction(rawValue: direction) == nil {
            throw ValidationError("--direction must be ingress or egress")
        }
        if let port, ExplainCommand.parsePort(port) == nil {
            throw ValidationError("--port '\(port)' is not tcp/N, udp/N, N or icmp")
        }
    }

    static func parsePort(_ text: String) -> (PortSet.Proto?, Int?)? {
        let lower = text.lowercased()
        if lower == "icmp" { return (nil, nil) }
        let parts = lower.split(separator: "/")
        if parts.count == 1, let n = Int(parts[0]), (0...65535).contains(n) { return (.tcp, n) }
        if parts.count == 2, let proto = PortSet.Proto(rawValue: String(parts[0])), let n = Int(parts[1]),
           (0...65535).contains(n) {
            return (proto, n)
        }
        return nil
    }

    static func keyValue(_ text: String) -> (String, String)? {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else { return nil }
        return (String(text[..<eq]), String(text[text.index(after: eq)...]))
    }

    func run() async throws {
        member.startWatchdog()
        let (policy, member, shown, desired) = live ? try await livePolicy() : try viewPolicy()
        if admission {
            explainAdmission(policy, member: member, view: shown)
            return
        }
        let target = self.target ?? ""
        let query: ExplainQuery
        if let process {
            query = .process(target: target, path: process)
        } else {
            let parsed = port.flatMap(ExplainCommand.parsePort)
            query = .network(target: target, peer: peer ?? "", direction: Direction(rawValue: direction) ?? .ingress,
                             proto: parsed?.0 ?? .tcp, port: parsed?.1, application: app)
        }
        var explanation: Explanation
        do {
            explanation = try policy.explain(query)
        } catch {
            printError("policyhub: \(error.message) of cluster '\(cluster)'\(live ? " (as the member holds it)" : "")")
            throw ExitStatus.failure
        }
        if let (wanted, revision) = desired, let hub = try? wanted.explain(query), hub.decision != explanation.decision {
            explanation.notes.append("the hub wants \(hub.decision.uppercased()) here (r\(revision.id) of \(member.environment)): the member differs from its effective policy; policyhub drift --cluster \(member.name) shows how, policyhub apply --repair restores it")
        }
        switch output {
        case .json: print(JSONWriter.pretty(ExplainCommand.value(explanation, cluster: member, view: shown)), terminator: "")
        case .text: print(ExplainCommand.text(explanation, cluster: member, query: query, view: shown), terminator: "")
        }
    }

    /// The effective policy of the view (working tree, environment or revision) for the cluster.
    func viewPolicy() throws -> (EffectivePolicy, MemberCluster, PolicyView, (EffectivePolicy, Revision)?) {
        let (renderer, fleet, inScope, shown) = try view.resolve(repository, statePath: state)
        guard let member = fleet.cluster(named: cluster) else {
            printError("policyhub: " + EditDistance.unknown("cluster", cluster, known: fleet.clusters.map(\.name)))
            throw ExitStatus.failure
        }
        guard inScope.contains(where: { $0.name == cluster }) else {
            printError("policyhub: cluster '\(cluster)' is in \(member.environment), not in \(shown.storedRevision?.environment ?? "the view"); use --env \(member.environment)")
            throw ExitStatus.failure
        }
        return (renderer.render(cluster: member), member, shown, nil)
    }

    /// The policy the member holds now, read from it, and what the hub wants it to hold (its environment's
    /// desired revision), when there is one.
    func livePolicy() async throws -> (EffectivePolicy, MemberCluster, PolicyView, (EffectivePolicy, Revision)?) {
        var opened = try cli { () throws(EngineError) in try repository.engine(state: state).open(workingTree: .optional) }
        opened.limits = member.limits
        let session = opened
        defer { session.transports.shutdown() }
        let name = cluster
        let cluster = try cli { () throws(EngineError) in try session.clusters(named: [name]) }[0]
        let held: [ObjectIdentity: Value]
        do throws(MemberError) {
            switch session.member(for: cluster) {
            case .failure(let error): throw error
            case .success(let member): held = try await member.managedObjects()
            }
        } catch {
            printError("policyhub: \(error.description)")
            throw ExitStatus.failure
        }
        let file = "member \(cluster.name)"
        let objects = held.sorted { $0.key < $1.key }.flatMap { entry in
            PolicyDecoder.decodeFile(JSONWriter.compactBytes(entry.value), file: file).objects
        }
        let policy = EffectivePolicy.held(environment: cluster.environment, objects: objects, source: file)
        let desired = try? cli { () throws(EngineError) -> (EffectivePolicy, Revision)? in
            guard let revision = try stored({ () throws(HubStoreError) in try session.store.desiredRevision(environment: cluster.environment) }) else {
                return nil
            }
            return (try session.renderer(for: revision).render(cluster: cluster), revision)
        }
        return (policy, cluster, .live(cluster.name), desired ?? nil)
    }

    static func matchValue(_ match: Explanation.Match) -> Value {
        var map = ValueMapBuilder()
        map.set("action", .string(match.action.rawValue))
        map.set("rule", .string(match.source.rule))
        map.set("tier", .string(match.source.tier.rawValue))
        map.set("file", .string(match.source.file))
        map.set("line", .int(match.source.line))
        map.set("column", .int(match.source.column))
        map.set("document", .string(match.source.document.description))
        map.set("rank", .int(match.rank))
        map.set("note", match.note.map(Value.string))
        return map.value
    }

    static func value(_ e: Explanation, cluster: MemberCluster, view: PolicyView) -> Value {
        var map = ValueMapBuilder()
        map.set("cluster", .string(cluster.name))
        map.set("environment", .string(cluster.environment))
        map.set("view", .string(view.description))
        map.set("revision", view.storedRevision.map { .string("r\($0.id)") } ?? .null)
        map.set("decision", .string(e.decision))
        map.set("deciding", e.deciding.map(matchValue) ?? .null)
        map.set("beaten", .list(e.beaten.map(matchValue)))
        map.set("notes", .list(e.notes.map(Value.string)))
        return map.value
    }

    static func text(_ e: Explanation, cluster: MemberCluster, query: ExplainQuery, view: PolicyView) -> String {
        var out = "cluster \(cluster.name) (environment \(cluster.environment)), from \(view.description)\n"
        out += "decision: \(e.decision.uppercased())\n"
        func line(_ m: Explanation.Match) -> String {
            let rank = m.rank >= 0 ? (isNetwork(query) ? "priority \(m.rank)" : "entry \(m.rank + 1)") : "dropped"
            // a rule read back from a member has no line: the file it was pushed from
            let at = m.source.line > 0 ? "at \(m.source.location)" : "from \(m.source.file)"
            return "\(m.action.rawValue) by '\(m.source.rule)' [\(m.source.tier.rawValue), \(rank)] \(at) in \(m.source.document)\(m.note.map { " (\($0))" } ?? "")"
        }
        if let deciding = e.deciding { out += "decided by: \(line(deciding))\n" }
        if !e.beaten.isEmpty {
            out += "beat:\n"
            for m in e.beaten { out += "  - \(line(m))\n" }
        }
        for note in e.notes { out += "note: \(note)\n" }
        return out
    }

    // MARK: - Admission (SEMANTICS §3.9)

    func explainAdmission(_ policy: EffectivePolicy, member: MemberCluster, view: PolicyView) {
        var labels: [String: String] = [:]
        for pair in label { if let (k, v) = ExplainCommand.keyValue(pair) { labels[k] = v } }
        var annotations: [String: String] = [:]
        for pair in annotation { if let (k, v) = ExplainCommand.keyValue(pair) { annotations[k] = v } }
        var properties: [String: String] = [:]
        for pair in property { if let (k, v) = ExplainCommand.keyValue(pair) { properties[k] = v } }
        let workload = AdmissionWorkload(namespace: namespace ?? "", image: image, labels: labels, annotations: annotations,
                                         user: user, properties: properties)
        let compiled = policy.admission ?? CompiledAdmission(config: nil, rules: [], conflicts: [], dropped: [])
        var decision = compiled.decide(workload)
        if policy.admission == nil {
            decision.notes.insert("no admission document is placed on this cluster: NeuVector's own rules decide", at: 0)
        }
        // a workload's namespace need not have documents, but a misspelt one is worth a word
        let namespaces = Set(policy.objects.map(\.identity.namespace).filter { !$0.isEmpty })
        if !namespaces.contains(workload.namespace), let near = EditDistance.nearest(workload.namespace, among: Array(namespaces)) {
            decision.notes.append("this cluster has no documents of namespace '\(workload.namespace)'; did you mean '\(near)'?")
        }
        // how precedence changed the namespace allows that could have decided
        let shaped = compiled.conflicts.filter { $0.kind == .overridden && $0.rule.file.hasPrefix("policies/namespaces/\(workload.namespace)/") }
        switch output {
        case .json: print(JSONWriter.pretty(ExplainCommand.value(decision, shaped: shaped, workload: workload, cluster: member, view: view)), terminator: "")
        case .text: print(ExplainCommand.text(decision, shaped: shaped, workload: workload, cluster: member, view: view), terminator: "")
        }
    }

    static func ruleValue(_ entry: PlacedAdmissionRule) -> Value {
        var map = ValueMapBuilder()
        map.set("action", .string(entry.action.rawValue))
        map.set("rule", .string(entry.source.rule))
        map.set("tier", .string(entry.source.tier.rawValue))
        map.set("file", .string(entry.source.file))
        map.set("line", .int(entry.source.line))
        map.set("column", .int(entry.source.column))
        map.set("criteria", .list(entry.rule.criteria.map { .string($0.text) }))
        return map.value
    }

    static func value(_ d: AdmissionDecision, shaped: [Conflict], workload: AdmissionWorkload, cluster: MemberCluster,
                      view: PolicyView) -> Value {
        var map = ValueMapBuilder()
        map.set("cluster", .string(cluster.name))
        map.set("environment", .string(cluster.environment))
        map.set("view", .string(view.description))
        map.set("namespace", .string(workload.namespace))
        map.set("image", workload.image.map(Value.string) ?? .null)
        map.set("decision", .string(d.action.rawValue))
        map.set("deciding", d.deciding.map(ruleValue) ?? .null)
        map.set("beaten", .list(d.beaten.map(ruleValue)))
        map.set("undecided", .list(d.undecided.map(ruleValue)))
        map.set("overridden", .list(shaped.map { .string($0.message) }))
        map.set("notes", .list(d.notes.map(Value.string)))
        return map.value
    }

    static func text(_ d: AdmissionDecision, shaped: [Conflict], workload: AdmissionWorkload, cluster: MemberCluster,
                     view: PolicyView) -> String {
        var out = "cluster \(cluster.name) (environment \(cluster.environment)), from \(view.description)\n"
        let labels = workload.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        out += "workload: namespace \(workload.namespace)\(workload.image.map { ", image \($0)" } ?? "")\(labels.isEmpty ? "" : ", labels \(labels)")\n"
        out += "decision: \(d.action == .allow ? "ADMIT" : "DENY")\n"
        func line(_ e: PlacedAdmissionRule) -> String {
            let at = e.source.line > 0 ? "at \(e.source.location)" : "from \(e.source.file)"
            return "\(e.action.rawValue) by admission rule \(e.source.rule) [\(e.source.tier.rawValue)] \(at): \(e.rule.criteria.map(\.text).joined(separator: "; "))"
        }
        if let deciding = d.deciding { out += "decided by: \(line(deciding))\n" }
        if !d.beaten.isEmpty {
            out += "beat (NeuVector runs every allow rule before any deny rule):\n"
            for e in d.beaten { out += "  - \(line(e))\n" }
        }
        if !d.undecided.isEmpty {
            out += "not decidable from the description (criteria it does not carry), taken as not matching:\n"
            for e in d.undecided { out += "  - \(line(e))\n" }
        }
        for conflict in shaped { out += "overridden: \(conflict.message)\n" }
        for note in d.notes { out += "note: \(note)\n" }
        return out
    }

    static func isNetwork(_ query: ExplainQuery) -> Bool {
        if case .network = query { return true }
        return false
    }
}
