/// What `policyhub explain` asks about one cluster.
public enum ExplainQuery: Sendable, Hashable {
    /// Traffic between a target group and a peer group.
    case network(target: String, peer: String, direction: Direction, proto: PortSet.Proto?, port: Int?,
                 application: String?)
    /// A process started in a workload of the target group.
    case process(target: String, path: String)
}

/// The answer: the decision, the deciding rule, and the rules it beat.
public struct Explanation: Sendable, Hashable {
    /// One rule that matched, with what it would have done.
    public struct Match: Sendable, Hashable {
        public var source: RuleSource
        public var action: RuleAction
        /// The output priority for network rules; the position in the merged list for process rules.
        public var rank: Int
        public var note: String?
    }

    /// `allow`, `deny`, or `no-rule` when no rule of the hub matches.
    public var decision: String
    public var deciding: Match?
    public var beaten: [Match]
    public var notes: [String]
}

/// A problem with an explain query: a group that the cluster's effective policy does not know.
public struct ExplainError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension EffectivePolicy {
    /// Every selector the effective policy mentions, by name.
    func selector(named name: String) -> GroupSelector? {
        switch name {
        case "external", "nodes": return GroupSelector(name: name)
        case "containers": return GroupSelector(name: name, criteria: [Criterion("container", .equal, "*")])
        default: break
        }
        for document in documents where document.target.name == name { return document.target }
        for rule in networkRules {
            if rule.target.name == name { return rule.target }
            if rule.peer.name == name { return rule.peer }
        }
        return nil
    }

    /// Answers an explain query against this effective policy.
    public func explain(_ query: ExplainQuery) throws(ExplainError) -> Explanation {
        switch query {
        case .network(let targetName, let peerName, let direction, let proto, let port, let application):
            guard let target = selector(named: targetName) else {
                throw ExplainError(message: "group '\(targetName)' does not appear in this cluster's effective policy")
            }
            guard let peer = selector(named: peerName) else {
                throw ExplainError(message: "group '\(peerName)' does not appear in this cluster's effective policy")
            }
            let matches = networkRules.filter { rule in
                rule.direction == direction && Coverage.covers(rule.target, target) && Coverage.covers(rule.peer, peer)
                    && rule.ports.contains(proto: proto, port: port)
                    && (application.map { rule.applications.contains($0) } ?? rule.applications.any)
            }
            let all = matches.map { Explanation.Match(source: $0.source, action: $0.action, rank: $0.priority, note: nil) }
            var notes: [String] = []
            if all.count >= 2, all[0].rank == all[1].rank, all[0].action != all[1].action {
                notes.append("ambiguous: '\(all[0].source.rule)' and '\(all[1].source.rule)' have the same priority \(all[0].rank) and opposite actions; NeuVector may apply either")
            }
            guard let first = all.first else {
                return Explanation(decision: "no-rule", deciding: nil, beaten: [],
                                   notes: ["no rule of the hub matches; NeuVector decides by its learned and user rules and the group's policy mode"])
            }
            return Explanation(decision: first.action.rawValue, deciding: first, beaten: Array(all.dropFirst()),
                               notes: notes)
        case .process(let targetName, let path):
            guard let target = selector(named: targetName) else {
                throw ExplainError(message: "group '\(targetName)' does not appear in this cluster's effective policy")
            }
            var lists: [EffectiveDocument] = documents.filter { $0.target.name == targetName }
            if lists.isEmpty {
                lists = documents.filter { Coverage.covers($0.target, target) }.sorted { $0.tier < $1.tier }
            }
            var all: [Explanation.Match] = []
            for document in lists {
                for (index, entry) in document.processes.enumerated() where Explain.processMatches(entry.rule, path) {
                    all.append(Explanation.Match(source: entry.source, action: entry.rule.action, rank: index, note: nil))
                }
            }
            for conflict in conflicts where conflict.kind == .overridden && conflict.rule.document.name == lists.first?.identity.name {
                let parts = conflict.rule.rule.split(separator: " ", maxSplits: 1).map(String.init)
                let rule = ProcessRule(name: parts.first ?? "", path: parts.count > 1 ? parts[1] : "", action: .allow)
                if Explain.processMatches(rule, path) {
                    all.append(Explanation.Match(source: conflict.rule, action: all.first?.action.opposite ?? .allow,
                                                 rank: -1, note: "overridden by \(conflict.by.rule)"))
                }
            }
            guard let first = all.first else {
                let mode = lists.first?.policyMode.map { " (\($0.rawValue))" } ?? ""
                return Explanation(decision: "no-rule", deciding: nil, beaten: [],
                                   notes: ["no process rule matches '\(path)'; the target's policy mode\(mode) decides: Discover learns it, Monitor alerts, Protect blocks"])
            }
            return Explanation(decision: first.action.rawValue, deciding: first, beaten: Array(all.dropFirst()), notes: [])
        }
    }
}

/// Process matching as NeuVector does it: by path (with a `*` glob) when the rule has one, or by name
/// when the rule's path is empty or `*`.
public enum Explain {
    public static func processMatches(_ rule: ProcessRule, _ path: String) -> Bool {
        let base = NeuVectorNames.baseName(path)
        if rule.path.isEmpty || rule.path == "*" || rule.path == "/*" {
            return rule.name == "*" || Glob.matches(rule.name, base)
        }
        return Glob.matches(rule.path, path)
    }
}

extension EffectivePolicy {
    /// The policy a member holds, read back from its objects (`explain --live`): NeuVector evaluates the
    /// network rules it holds by their `priority`, higher first, and each document's process list in order.
    /// A held rule's tier is the priority band it sits in; its source is the object's
    /// `policyhub.dev/source` annotation (`source` when the object has none), without a line.
    public static func held(environment: String, objects: [PolicyObject], source: String) -> EffectivePolicy {
        var rules: [EffectiveNetworkRule] = []
        var documents: [EffectiveDocument] = []
        var admission: CompiledAdmission?
        for object in objects {
            // NeuVector honours only the admission object named `local`, as it holds it
            if case .admission(let spec) = object.body, object.metadata.name == "local" {
                let file = object.metadata.annotations[HubAnnotation.source] ?? source
                let rules = spec.rules.enumerated().map { index, rule in
                    PlacedAdmissionRule(rule: rule, source: RuleSource(
                        file: file, line: 0, column: 0, document: object.identity,
                        rule: "#\(index) (\(rule.action ?? "?")\(rule.comment.map { ": " + $0 } ?? ""))", tier: .enforced))
                }
                admission = CompiledAdmission(config: spec.config, rules: rules, conflicts: [], dropped: [])
                continue
            }
            guard case .securityRule(let spec) = object.body else { continue }
            let file = object.metadata.annotations[HubAnnotation.source] ?? source
            let documentTier: Tier = object.kind == .securityRule ? .namespace : .enforced
            func origin(_ rule: String, tier: Tier) -> RuleSource {
                RuleSource(file: file, line: 0, column: 0, document: object.identity, rule: rule, tier: tier)
            }
            for (direction, list) in [(Direction.ingress, spec.ingress), (.egress, spec.egress)] {
                for rule in list {
                    let priority = rule.priority ?? 0
                    let tier = Tier.allCases.first { Precedence.band($0).contains(priority) } ?? .baseline
                    rules.append(EffectiveNetworkRule(
                        direction: direction, target: spec.target.selector, peer: rule.selector,
                        ports: (try? PortSet.parse(rule.ports).get()) ?? .all, applications: ApplicationSet(rule.applications),
                        action: rule.action, priority: priority, source: origin(rule.name, tier: tier)))
                }
            }
            let mode: PolicyMode? = { if case .mode(let mode)? = spec.target.policyMode { return mode } else { return nil } }()
            documents.append(EffectiveDocument(
                identity: object.identity, target: spec.target.selector, tier: documentTier, policyMode: mode,
                processes: spec.process.map { EffectiveEntry(rule: $0, source: origin("\($0.name) \($0.path)", tier: documentTier)) },
                files: spec.file.map { EffectiveEntry(rule: $0, source: origin($0.filter, tier: documentTier)) }))
        }
        return EffectivePolicy(environment: environment, objects: [], conflicts: [],
                               networkRules: rules.sorted(by: Precedence.evaluatesBefore),
                               documents: documents.sorted { $0.identity < $1.identity }, admission: admission)
    }
}
