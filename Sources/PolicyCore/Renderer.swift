/// Renders the effective policy of clusters (SEMANTICS §3). A pure function of the validated policy, the
/// fleet and the revision id: the same inputs give the same output, whatever the order they were read in.
///
/// Clusters with the same environment and labels form one placement class and share one render, so the
/// cost of a fleet grows with its distinct classes, not with its size.
public struct Renderer: Sendable {
    public let policy: ValidatedPolicySet
    public let fleet: ValidatedFleet
    /// The value of the `policyhub.dev/revision` annotation.
    public let revision: String

    public init(policy: ValidatedPolicySet, fleet: ValidatedFleet, revision: String) {
        self.policy = policy
        self.fleet = fleet
        self.revision = revision
    }

    /// The placement class of a cluster: its environment and labels.
    public struct PlacementClass: Sendable, Hashable {
        public var environment: String
        public var labels: [String: String]

        public init(environment: String, labels: [String: String]) {
            self.environment = environment
            self.labels = labels
        }
    }

    /// The effective policy of one cluster.
    public func render(cluster: MemberCluster) -> EffectivePolicy {
        render(PlacementClass(environment: cluster.environment, labels: cluster.placementLabels))
    }

    /// The effective policy of each cluster, in the order given, rendering each placement class once
    /// (classes spread over cores through `parallel`). Documents whose output is the same in several
    /// classes (same environment modes, same covering global documents) are emitted once and shared.
    public func render(clusters: [MemberCluster], parallel: ParallelFor = .serial, cache: DocumentCache = DocumentCache())
        -> [(cluster: MemberCluster, policy: EffectivePolicy)]
    {
        var classes: [PlacementClass] = []
        var classIndex: [PlacementClass: Int] = [:]
        let keys = clusters.map { cluster -> Int in
            let key = PlacementClass(environment: cluster.environment, labels: cluster.placementLabels)
            if let known = classIndex[key] { return known }
            classIndex[key] = classes.count
            classes.append(key)
            return classes.count - 1
        }
        let documents = cache
        let slots = ResultSlots<EffectivePolicy>(count: classes.count)
        let distinct = classes
        parallel.run(distinct.count) { index in slots.set(index, render(distinct[index], documents: documents)) }
        let policies = slots.values
        return zip(clusters, keys).map { ($0, policies[$1]) }
    }

    /// The effective policy of a placement class.
    public func render(_ placement: PlacementClass) -> EffectivePolicy {
        render(placement, documents: DocumentCache())
    }

    func render(_ placement: PlacementClass, documents: DocumentCache) -> EffectivePolicy {
        let environment = fleet.environment(named: placement.environment)
            ?? Environment(name: placement.environment)
        var state = RenderState(policy: policy, environment: environment, revision: revision, cache: documents)
        let placed = policy.documents.filter { $0.placement.matches(placement.labels) }
        return state.run(placed)
    }
}

/// The working state of one render.
struct RenderState {
    let policy: ValidatedPolicySet
    let environment: Environment
    let revision: String
    let cache: DocumentCache
    var selectors = SelectorTable()
    var conflicts: [Conflict] = []

    init(policy: ValidatedPolicySet, environment: Environment, revision: String, cache: DocumentCache) {
        self.policy = policy
        self.environment = environment
        self.revision = revision
        self.cache = cache
    }

    /// A selector with `name_referral` replaced by its definition's criteria, for coverage.
    func resolved(_ selector: GroupSelector) -> GroupSelector {
        guard selector.nameReferral == true, let definition = policy.groupDefinitions[selector.name] else {
            return selector
        }
        var copy = selector
        copy.criteria = definition.criteria
        return copy
    }

    func source(_ document: PlacedDocument, _ origin: Origin, rule: String) -> RuleSource {
        let at = origin.location
        return RuleSource(file: document.source, line: at.line, column: at.column, document: document.object.identity,
                          rule: rule, tier: document.tier)
    }

    mutating func run(_ placed: [PlacedDocument]) -> EffectivePolicy {
        var globals: [(PlacedDocument, SecurityRuleSpec)] = []
        var namespaced: [(PlacedDocument, SecurityRuleSpec)] = []
        var objects: [RenderedObject] = []
        var admission: [PlacedDocument] = []
        let referred = referredDefinitions(placed)
        var documentsToEmit = placed.filter { $0.object.kind != .groupDefinition || referred.contains($0.object.metadata.name) }
        // a group definition goes with the documents that refer to it, wherever they are placed (§1.3)
        let emitted = Set(documentsToEmit.map(\.object.identity))
        documentsToEmit += policy.documents.filter {
            $0.object.kind == .groupDefinition && referred.contains($0.object.metadata.name) && !emitted.contains($0.object.identity)
        }
        conflicts += unresolvedSensors(placed)
        for document in documentsToEmit {
            if document.object.kind == .admissionControl {
                admission.append(document)
                continue
            }
            guard let spec = document.object.securityRule else {
                let key = DocumentCache.Key(document: document, environment: "", covering: [], revision: revision)
                objects.append(cache.entry(key) {
                    DocumentCache.Entry(object: emitOpaque(document), effective: nil, rules: [], conflicts: [])
                }.object)
                continue
            }
            switch document.scope {
            case .global: globals.append((document, spec))
            case .namespace: namespaced.append((document, spec))
            }
        }
        var network: [EffectiveNetworkRule] = []
        var documents: [EffectiveDocument] = []
        let globalTargets = globals.map { selectors.intern(resolved($0.1.target.selector)) }
        for (document, spec) in globals {
            let key = DocumentCache.Key(document: document, environment: modeKey(spec), covering: [], revision: revision)
            let entry = cache.entry(key) {
                let processes = spec.process.map { EffectiveEntry(rule: $0, source: source(document, $0.origin, rule: "\($0.name) \($0.path)")) }
                let files = spec.file.map { EffectiveEntry(rule: $0, source: source(document, $0.origin, rule: $0.filter)) }
                return emitSecurityRule(document, spec, processes: processes, files: files, conflicts: [])
            }
            objects.append(entry.object)
            if let effective = entry.effective { documents.append(effective) }
            network += entry.rules
        }
        for (document, spec) in namespaced {
            let target = selectors.intern(resolved(spec.target.selector))
            var covering: [(PlacedDocument, SecurityRuleSpec)] = []
            for (index, global) in globals.enumerated() where selectors.covers(globalTargets[index], target) {
                covering.append(global)
            }
            let key = DocumentCache.Key(document: document, environment: modeKey(spec), covering: covering.map(\.0),
                                        revision: revision)
            let entry = cache.entry(key) {
                var merge = RenderState(policy: policy, environment: environment, revision: revision, cache: cache)
                let processes = merge.mergeProcesses(document, spec, covering: covering)
                let files = merge.mergeFiles(document, spec, covering: covering)
                return merge.emitSecurityRule(document, spec, processes: processes, files: files, conflicts: merge.conflicts)
            }
            objects.append(entry.object)
            if let effective = entry.effective { documents.append(effective) }
            network += entry.rules
            conflicts += entry.conflicts
        }
        // sort positions, not the rules: a rule is large to move
        let keys = network.map { Precedence.SortKey($0) }
        let order = network.indices.sorted { keys[$0] < keys[$1] }
        network = order.map { network[$0] }
        findNetworkConflicts(network)
        var compiled: CompiledAdmission?
        if !admission.isEmpty {
            let result = compileAdmission(admission)
            compiled = result.admission
            conflicts += result.admission.conflicts
            objects.append(result.object)
        }
        objects.sort { $0.identity < $1.identity }
        documents.sort { $0.identity < $1.identity }
        return EffectivePolicy(environment: environment.name, objects: objects, conflicts: conflicts.sorted(),
                               networkRules: network, documents: documents, admission: compiled)
    }

    // MARK: - The other kinds (§1.3)

    /// Names of the group definitions the placed security rules refer to with `name_referral`.
    func referredDefinitions(_ placed: [PlacedDocument]) -> Set<String> {
        var names: Set<String> = []
        for document in placed {
            guard let spec = document.object.securityRule else { continue }
            for selector in [spec.target.selector] + (spec.ingress + spec.egress).map(\.selector) where selector.nameReferral == true {
                names.insert(selector.name)
            }
        }
        return names
    }

    /// NeuVector's own sensors, there on every cluster (share/clus_apis.go).
    static let predefinedSensors: Set<String> = ["sensor.ssn", "sensor.creditcard", "sensor.log4shell", "sensor.spring4shell"]

    /// Rule documents whose `dlp` or `waf` settings name a sensor that is not placed on the cluster.
    func unresolvedSensors(_ placed: [PlacedDocument]) -> [Conflict] {
        let dlp = Set(placed.filter { $0.object.kind == .dlp }.map(\.object.metadata.name))
        let waf = Set(placed.filter { $0.object.kind == .waf }.map(\.object.metadata.name))
        var out: [Conflict] = []
        for document in placed {
            guard let spec = document.object.securityRule else { continue }
            for (kind, settings, known) in [(ObjectKind.dlp, spec.dlp, dlp), (.waf, spec.waf, waf)] {
                for setting in settings?.settings ?? [] where !known.contains(setting.name) && !Self.predefinedSensors.contains(setting.name) {
                    let here = source(document, setting.origin, rule: setting.name)
                    out.append(Conflict(kind: .unresolved, rule: here, by: here,
                                        message: "the \(kind == .dlp ? "DLP" : "WAF") sensor '\(setting.name)' is not placed on this cluster: no \(kind.rawValue) named so in policies/global/ selects it, so NeuVector would refuse the document"))
                }
            }
        }
        return out
    }

    // MARK: - Admission control (§3.9)

    /// Every placed admission document compiled into the one object NeuVector honours, `local`.
    func compileAdmission(_ documents: [PlacedDocument]) -> (admission: CompiledAdmission, object: RenderedObject) {
        var rules: [PlacedAdmissionRule] = []
        var configs: [(AdmissionConfig, RuleSource)] = []
        for document in documents {
            guard let spec = document.object.admission else { continue }
            var namespace: String?
            if case .namespace(let ns) = document.scope { namespace = ns }
            if let config = spec.config, namespace == nil {
                configs.append((config, source(document, config.origin, rule: "spec.config")))
            }
            for (index, rule) in spec.rules.enumerated() {
                let name = "#\(index) (\(rule.action ?? "?")\(rule.comment.map { ": " + $0 } ?? ""))"
                rules.append(PlacedAdmissionRule(rule: rule, source: source(document, rule.origin, rule: name), namespace: namespace))
            }
        }
        let compiled = AdmissionCompiler.compile(rules, configs: configs)
        var spec = ValueMapBuilder()
        spec.set("config", compiled.config.map { $0.wireValue })
        spec.set("rules", .list(compiled.rules.map { entry in
            var rule = entry.rule
            // NeuVector keeps only the ids of its default rules (below 1000) and numbers the others itself
            if let id = rule.id, id >= 1000 { rule.id = nil }
            rule.conversionIdRef = nil
            return rule.wireValue
        }))
        let sources = Set(documents.map(\.source)).sorted().joined(separator: ",")
        let meta = ObjectMeta(name: "local")
        let object = emit(meta: meta, source: sources, kind: .admissionControl, namespace: nil, spec: spec.value.canonical)
        return (compiled, object)
    }

    // MARK: - Process and file merging (§3.3, §3.4)

    mutating func mergeProcesses(_ document: PlacedDocument, _ spec: SecurityRuleSpec,
                                 covering: [(PlacedDocument, SecurityRuleSpec)]) -> [EffectiveEntry<ProcessRule>] {
        struct Key: Hashable {
            var name: String
            var path: String
        }
        var out: [EffectiveEntry<ProcessRule>] = []
        var enforced: [Key: EffectiveEntry<ProcessRule>] = [:]
        var seen = Set<Key>()
        for (global, globalSpec) in covering where global.tier == .enforced {
            for rule in globalSpec.process {
                let key = Key(name: rule.name, path: rule.path)
                guard seen.insert(key).inserted else { continue }
                let entry = EffectiveEntry(rule: rule, source: source(global, rule.origin, rule: "\(rule.name) \(rule.path)"))
                enforced[key] = entry
                out.append(entry)
            }
        }
        for rule in spec.process {
            let key = Key(name: rule.name, path: rule.path)
            let mine = source(document, rule.origin, rule: "\(rule.name) \(rule.path)")
            if let winner = enforced[key] {
                if winner.rule.action != rule.action {
                    conflicts.append(Conflict(
                        kind: .overridden, rule: mine, by: winner.source,
                        message: "process rule '\(rule.name)' (\(rule.path)) is replaced: the enforced global rule says \(winner.rule.action.rawValue), this one \(rule.action.rawValue)"))
                }
                continue
            }
            guard seen.insert(key).inserted else { continue }
            out.append(EffectiveEntry(rule: rule, source: mine))
        }
        for (global, globalSpec) in covering where global.tier == .baseline {
            for rule in globalSpec.process {
                let key = Key(name: rule.name, path: rule.path)
                guard seen.insert(key).inserted else { continue }
                out.append(EffectiveEntry(rule: rule, source: source(global, rule.origin, rule: "\(rule.name) \(rule.path)")))
            }
        }
        return out
    }

    /// File rules keyed by filter; the stricter wins: `block_access` beats `monitor_change`, two entries of
    /// the same behavior keep the intersection of their `app` lists, `recursive` is the OR.
    mutating func mergeFiles(_ document: PlacedDocument, _ spec: SecurityRuleSpec,
                             covering: [(PlacedDocument, SecurityRuleSpec)]) -> [EffectiveEntry<FileRule>] {
        var ordered: [(PlacedDocument, FileRule)] = []
        for (global, globalSpec) in covering where global.tier == .enforced {
            ordered += globalSpec.file.map { (global, $0) }
        }
        ordered += spec.file.map { (document, $0) }
        for (global, globalSpec) in covering where global.tier == .baseline {
            ordered += globalSpec.file.map { (global, $0) }
        }
        var out: [EffectiveEntry<FileRule>] = []
        var index: [String: Int] = [:]
        var namespaceEntry: [String: (FileRule, RuleSource)] = [:]
        for (owner, rule) in ordered {
            let key = NeuVectorNames.cleanPath(rule.filter)
            let mine = source(owner, rule.origin, rule: rule.filter)
            if owner.tier == .namespace { namespaceEntry[key] = (rule, mine) }
            guard let at = index[key] else {
                index[key] = out.count
                out.append(EffectiveEntry(rule: rule, source: mine))
                continue
            }
            let current = out[at].rule
            var merged = current
            var decidedBy = out[at].source
            switch (current.behavior, rule.behavior) {
            case (.monitorChange, .blockAccess):
                merged = rule
                merged.recursive = current.recursive || rule.recursive
                decidedBy = mine
            case (.blockAccess, .monitorChange):
                merged.recursive = current.recursive || rule.recursive
            case (.blockAccess, .blockAccess), (.monitorChange, .monitorChange):
                merged.app = current.app.filter { rule.app.contains($0) }
                merged.recursive = current.recursive || rule.recursive
                if owner.tier != .namespace && merged != current { decidedBy = mine }
            }
            out[at] = EffectiveEntry(rule: merged, source: decidedBy)
        }
        for (key, (rule, mine)) in namespaceEntry.sorted(by: { $0.key < $1.key }) {
            guard let at = index[key] else { continue }
            let result = out[at]
            if result.rule.behavior != rule.behavior || result.rule.recursive != rule.recursive
                || Set(result.rule.app) != Set(rule.app) {
                let winner = result.source.tier == .namespace
                    ? ordered.first { NeuVectorNames.cleanPath($0.1.filter) == key && $0.0.tier != .namespace }
                        .map { source($0.0, $0.1.origin, rule: $0.1.filter) } ?? result.source
                    : result.source
                conflicts.append(Conflict(
                    kind: .overridden, rule: mine, by: winner,
                    message: "file rule '\(rule.filter)' is merged with a global one: the result is \(result.rule.behavior.rawValue), recursive \(result.rule.recursive), app [\(result.rule.app.joined(separator: ", "))]"))
            }
        }
        return out
    }

    // MARK: - Output (§3.5, §3.6)

    /// What of the environment a document's output depends on: its modes, only for targets that have one.
    func modeKey(_ spec: SecurityRuleSpec) -> String {
        guard GroupClass.of(spec.target.selector).hasPolicyMode else { return "" }
        return "\(environment.defaultPolicyMode.rawValue)/\(environment.minimumPolicyMode.rawValue)"
    }

    func outputMode(_ spec: SecurityRuleSpec) -> PolicyMode? {
        guard GroupClass.of(spec.target.selector).hasPolicyMode else { return nil }
        var stated = environment.defaultPolicyMode
        if case .mode(let mode)? = spec.target.policyMode { stated = mode }
        return max(stated, environment.minimumPolicyMode)
    }

    /// The network rules of one document as NeuVector evaluates them, without emitting the document.
    func networkRules(_ document: PlacedDocument, _ spec: SecurityRuleSpec) -> [EffectiveNetworkRule] {
        let target = resolved(spec.target.selector)
        var rules: [EffectiveNetworkRule] = []
        for (direction, list) in [(Direction.ingress, spec.ingress), (.egress, spec.egress)] {
            for rule in list {
                let priority = Precedence.outputPriority(tier: document.tier, priority: rule.priority ?? 0)
                rules.append(EffectiveNetworkRule(
                    direction: direction, target: target, peer: resolved(rule.selector),
                    ports: (try? PortSet.parse(rule.ports).get()) ?? .all, applications: ApplicationSet(rule.applications),
                    action: rule.action, priority: priority, source: source(document, rule.origin, rule: rule.name)))
            }
        }
        return rules
    }

    func emitSecurityRule(_ document: PlacedDocument, _ spec: SecurityRuleSpec,
                          processes: [EffectiveEntry<ProcessRule>], files: [EffectiveEntry<FileRule>],
                          conflicts: [Conflict]) -> DocumentCache.Entry
    {
        let mode = outputMode(spec)
        var out = spec
        out.target.policyMode = mode.map { .mode($0) }
        let target = resolved(spec.target.selector)
        var rules: [EffectiveNetworkRule] = []
        func place(_ list: [NetworkRule], _ direction: Direction) -> [NetworkRule] {
            list.map { rule in
                var copy = rule
                let priority = Precedence.outputPriority(tier: document.tier, priority: rule.priority ?? 0)
                copy.priority = priority
                let ports = (try? PortSet.parse(rule.ports).get()) ?? .all
                rules.append(EffectiveNetworkRule(
                    direction: direction, target: target, peer: resolved(rule.selector), ports: ports,
                    applications: ApplicationSet(rule.applications), action: rule.action, priority: priority,
                    source: source(document, rule.origin, rule: rule.name)))
                return copy
            }
        }
        out.ingress = place(spec.ingress, .ingress)
        out.egress = place(spec.egress, .egress)
        out.process = processes.map(\.rule)
        out.file = files.map(\.rule)
        let kind: ObjectKind
        let namespace: String?
        switch document.scope {
        case .global:
            kind = .clusterSecurityRule
            namespace = nil
        case .namespace(let ns):
            kind = .securityRule
            namespace = ns
        }
        let object = emit(document, kind: kind, namespace: namespace, spec: out.wireValue.canonical)
        let effective = EffectiveDocument(identity: object.identity, target: target, tier: document.tier,
                                          policyMode: mode, processes: processes, files: files)
        return DocumentCache.Entry(object: object, effective: effective, rules: rules, conflicts: conflicts)
    }

    func emitOpaque(_ document: PlacedDocument) -> RenderedObject {
        let object = document.object
        return emit(document, kind: object.kind, namespace: object.kind.isNamespaced ? object.metadata.namespace : nil,
                    spec: object.specValue)
    }

    /// The pushed object for a canonical `spec`: keys in sorted order, built directly rather than sorted again.
    func emit(_ document: PlacedDocument, kind: ObjectKind, namespace: String?, spec: Value) -> RenderedObject {
        emit(meta: document.object.metadata, source: document.source, kind: kind, namespace: namespace, spec: spec)
    }

    func emit(meta: ObjectMeta, source: String, kind: ObjectKind, namespace: String?, spec: Value) -> RenderedObject {
        let hash = ContentHash.of(canonical: spec)
        var labels = meta.labels
        labels[HubAnnotation.managedByKey] = HubAnnotation.managedByValue
        var annotations = meta.annotations
        annotations[HubAnnotation.tier] = nil
        annotations[HubAnnotation.placement] = nil
        annotations[HubAnnotation.revision] = revision
        annotations[HubAnnotation.source] = source
        annotations[HubAnnotation.hash] = hash
        var metadata: [Value.MapEntry] = [
            Value.MapEntry("annotations", .stringMap(annotations)),
            Value.MapEntry("labels", .stringMap(labels)),
            Value.MapEntry("name", .string(meta.name)),
        ]
        if let namespace { metadata.append(Value.MapEntry("namespace", .string(namespace))) }
        var object: [Value.MapEntry] = [
            Value.MapEntry("apiVersion", .string(ObjectKind.apiVersion)),
            Value.MapEntry("kind", .string(kind.rawValue)),
            Value.MapEntry("metadata", .map(metadata)),
        ]
        if spec != .null { object.append(Value.MapEntry("spec", spec)) }
        let identity = ObjectIdentity(kind: kind, namespace: namespace ?? "", name: meta.name)
        return RenderedObject(identity: identity, source: source, hash: hash, value: .map(object))
    }
}
