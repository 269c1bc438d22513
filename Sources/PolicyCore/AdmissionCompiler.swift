/// One admission rule placed on a cluster, with where it came from.
public struct PlacedAdmissionRule: Sendable, Hashable {
    public var rule: AdmissionRule
    /// The rule as written: file, line, tier (`enforced` or `baseline` for global documents, `namespace`).
    public var source: RuleSource
    /// The namespace of the folder the rule was written in, for namespace documents.
    public var namespace: String?

    public init(rule: AdmissionRule, source: RuleSource, namespace: String? = nil) {
        self.rule = rule
        self.source = source
        self.namespace = namespace
    }

    public var action: RuleAction { rule.ruleAction ?? .deny }
}

/// The one `NvAdmissionControlSecurityRule` NeuVector honours on a cluster, `local`, compiled from every
/// placed admission document (SEMANTICS §3.9).
public struct CompiledAdmission: Sendable, Hashable {
    public var config: AdmissionConfig?
    /// The rules pushed, allows first; a narrowed namespace allow keeps the source of the rule it came from.
    public var rules: [PlacedAdmissionRule]
    /// Namespace allows narrowed or dropped (`overridden`) and configs that disagree (`ambiguous`).
    public var conflicts: [Conflict]
    /// Namespace allows dropped because no exact narrowing exists: they admit less than the tiers say.
    public var dropped: [RuleSource]

    public init(config: AdmissionConfig?, rules: [PlacedAdmissionRule], conflicts: [Conflict] = [], dropped: [RuleSource] = []) {
        self.config = config
        self.rules = rules
        self.conflicts = conflicts
        self.dropped = dropped
    }
}

/// Compiles placed admission rules into the rules of `local`, so that NeuVector's fixed order (every allow
/// before every deny: neuvector/neuvector#789) still gives "enforced global > namespace > baseline global".
///
/// - every deny is kept, and so is every global allow (the security team's own exceptions);
/// - a namespace allow is narrowed so that it can no longer admit what an enforced deny denies: for each
///   criterion name of the deny, one copy of the allow that adds the exact complement of the deny's
///   criteria of that name (NeuVector ANDs different names, so "not the deny" is "not this name, or not
///   that one"); where no exact complement exists among NeuVector's operators, the allow is dropped.
public enum AdmissionCompiler {
    /// At most this many rules come out of one namespace allow.
    public static let maximumSplit = 64

    public static func compile(_ placed: [PlacedAdmissionRule], configs: [(AdmissionConfig, RuleSource)] = [])
        -> CompiledAdmission
    {
        let ordered = placed.sorted { $0.source < $1.source }
        let enforcedDenies = ordered.filter { $0.action == .deny && $0.source.tier == .enforced && !$0.rule.isDisabled }
        var allows: [PlacedAdmissionRule] = []
        var denies: [PlacedAdmissionRule] = []
        var conflicts: [Conflict] = []
        var dropped: [RuleSource] = []
        for entry in ordered {
            if entry.action == .deny {
                denies.append(entry)
            } else if entry.source.tier != .namespace || entry.rule.isDisabled {
                allows.append(entry)
            } else {
                let (rules, found, exact) = narrowed(entry, against: enforcedDenies)
                allows += rules
                conflicts += found
                if !exact { dropped.append(entry.source) }
            }
        }
        let tierOrder: [Tier: Int] = [.enforced: 0, .baseline: 1, .namespace: 2]
        denies.sort { (tierOrder[$0.source.tier] ?? 3, $0.source) < (tierOrder[$1.source.tier] ?? 3, $1.source) }
        var config: AdmissionConfig?
        if let (first, firstSource) = configs.sorted(by: { $0.1 < $1.1 }).first {
            config = first
            for (other, source) in configs where !other.sameSettings(as: first) {
                conflicts.append(Conflict(kind: .ambiguous, rule: source, by: firstSource,
                                          message: "two admission documents placed on one cluster set spec.config differently (\(other.summary) here, \(first.summary) at \(firstSource.location)); NeuVector holds one admission config per cluster"))
            }
        }
        return CompiledAdmission(config: config, rules: allows + denies, conflicts: conflicts.sorted(), dropped: dropped)
    }

    /// A namespace allow after every enforced deny has narrowed it.
    static func narrowed(_ allow: PlacedAdmissionRule, against denies: [PlacedAdmissionRule])
        -> (rules: [PlacedAdmissionRule], conflicts: [Conflict], exact: Bool)
    {
        var current = [allow.rule]
        var conflicts: [Conflict] = []
        for deny in denies {
            var next: [AdmissionRule] = []
            var changed = false
            for rule in current {
                switch narrow(rule, by: deny.rule) {
                case .unaffected:
                    next.append(rule)
                case .replaced(let rules):
                    changed = true
                    next += rules
                case .dropped(let reason):
                    conflicts.append(Conflict(kind: .overridden, rule: allow.source, by: deny.source,
                                              message: "namespace admission allow \(allow.source.rule) is dropped: \(reason), so it could admit what the enforced deny \(deny.source.rule) denies"))
                    return ([], conflicts, false)
                }
            }
            if next.count > maximumSplit {
                conflicts.append(Conflict(kind: .overridden, rule: allow.source, by: deny.source,
                                          message: "namespace admission allow \(allow.source.rule) is dropped: keeping it out of what the enforced denies deny would take more than \(maximumSplit) rules"))
                return ([], conflicts, false)
            }
            if changed {
                let what = next.isEmpty
                    ? "is dropped: the enforced deny \(deny.source.rule) denies everything it admits"
                    : "is narrowed to \(next.count) rule\(next.count == 1 ? "" : "s") so that it cannot admit what the enforced deny \(deny.source.rule) denies"
                conflicts.append(Conflict(kind: .overridden, rule: allow.source, by: deny.source,
                                          message: "namespace admission allow \(allow.source.rule) \(what)"))
            }
            current = next
        }
        return (current.map { PlacedAdmissionRule(rule: $0, source: allow.source, namespace: allow.namespace) }, conflicts, true)
    }

    enum Narrowing: Equatable {
        /// The deny can never match a workload the allow admits.
        case unaffected
        /// The allow becomes these rules (none: the deny denies everything it admits).
        case replaced([AdmissionRule])
        /// No exact narrowing exists.
        case dropped(String)
    }

    /// `allow AND NOT deny`, as NeuVector rules.
    static func narrow(_ allow: AdmissionRule, by deny: AdmissionRule) -> Narrowing {
        if deny.isDisabled { return .unaffected }
        let common = allow.containerKinds.intersection(deny.containerKinds)
        if common.isEmpty { return .unaffected }
        // the namespace group first: decided statically, it may show that the deny never applies
        let denyGroups = grouped(deny.criteria).sorted { ($0.0 == "namespace" ? 0 : 1) < ($1.0 == "namespace" ? 0 : 1) }
        let allowGroups = Dictionary(grouped(allow.criteria), uniquingKeysWith: { a, _ in a })
        var alternatives: [AdmissionRule] = []
        for (name, group) in denyGroups {
            // a namespace allow admits literal namespaces only: decide the deny's namespace criteria on them
            if name == "namespace", let own = allowGroups[name], let namespaces = literalNamespaces(own) {
                let denied = namespaces.filter { ns in
                    AdmissionMatch.combine(group.map { (AdmissionMatch.set($0, [ns]), $0.isPositive) })
                }
                if denied.isEmpty { return .unaffected }
                let kept = namespaces.filter { !denied.contains($0) }
                if !kept.isEmpty {
                    var copy = allow
                    copy.criteria = allow.criteria.filter { $0.name != "namespace" }
                        + [AdmissionCriterion("namespace", "containsAny", kept.joined(separator: ","))]
                    alternatives.append(copy)
                }
                continue
            }
            guard let complement = complement(group) else {
                return .dropped("the deny's '\(name)' criteria (\(group.map(\.text).joined(separator: "; "))) have no exact complement among NeuVector's operators")
            }
            for added in complement {
                if let own = allowGroups[name], !(own.allSatisfy { !$0.isPositive } && added.allSatisfy { !$0.isPositive }) {
                    return .dropped("its own '\(name)' criteria cannot be combined with the complement of the deny's (NeuVector ORs criteria of one name as soon as one is positive)")
                }
                for criterion in added {
                    if let problem = AdmissionOption.problem(criterion, in: AdmissionOption.allow, action: .allow) {
                        return .dropped("the complement '\(criterion.text)' is not accepted in an allow rule (\(problem.message))")
                    }
                }
                var copy = allow
                copy.criteria += added
                alternatives.append(copy)
            }
        }
        let kinds = allow.containerKinds.subtracting(common)
        var out: [AdmissionRule] = []
        if !kinds.isEmpty {
            var untouched = allow
            untouched.containers = kinds.sorted()
            out.append(untouched)
        }
        for var rule in alternatives {
            if !kinds.isEmpty { rule.containers = common.sorted() }
            out.append(rule)
        }
        return .replaced(out)
    }

    /// Criteria grouped by name, in the order the names first appear.
    static func grouped(_ criteria: [AdmissionCriterion]) -> [(String, [AdmissionCriterion])] {
        var order: [String] = []
        var groups: [String: [AdmissionCriterion]] = [:]
        for criterion in criteria {
            if groups[criterion.name] == nil { order.append(criterion.name) }
            groups[criterion.name, default: []].append(criterion)
        }
        return order.map { ($0, groups[$0] ?? []) }
    }

    /// The namespaces a `namespace` group admits when it names them literally (`containsAny` without globs).
    static func literalNamespaces(_ group: [AdmissionCriterion]) -> [String]? {
        var names: [String] = []
        for criterion in group {
            guard criterion.op == "containsAny", criterion.type == nil else { return nil }
            for value in criterion.values {
                if value.contains("*") || value.contains("?") { return nil }
                if !names.contains(value) { names.append(value) }
            }
        }
        return names.isEmpty ? nil : names
    }

    /// `NOT group` as alternatives (OR'd), each a list of criteria of the same name that NeuVector ANDs: one
    /// criterion, or negative ones only. Nil when NeuVector's operators cannot say it exactly.
    static func complement(_ group: [AdmissionCriterion]) -> [[AdmissionCriterion]]? {
        func expressible(_ alternative: [AdmissionCriterion]) -> Bool {
            alternative.count == 1 || alternative.allSatisfy { !$0.isPositive }
        }
        var parts: [[[AdmissionCriterion]]] = []
        for criterion in group {
            guard let part = complement(criterion) else { return nil }
            parts.append(part)
        }
        let alternatives: [[AdmissionCriterion]]
        if group.allSatisfy(\.isPositive) {
            // NOT (a OR b) = NOT a AND NOT b
            var product: [[AdmissionCriterion]] = [[]]
            for part in parts {
                product = product.flatMap { prefix in part.map { prefix + $0 } }
                if product.count > maximumSplit { return nil }
            }
            alternatives = product
        } else if group.allSatisfy({ !$0.isPositive }) {
            // NOT (a AND b) = NOT a OR NOT b
            alternatives = parts.flatMap { $0 }
        } else {
            return nil
        }
        return alternatives.allSatisfy(expressible) ? alternatives : nil
    }

    /// `NOT criterion`, as alternatives of single criteria (see `complement(_:)` of a group).
    static func complement(_ c: AdmissionCriterion) -> [[AdmissionCriterion]]? {
        guard c.type == nil, c.subCriteria.isEmpty else { return nil }
        func with(_ op: String, _ value: String? = nil) -> AdmissionCriterion {
            AdmissionCriterion(c.name, op, value ?? c.value, path: c.path)
        }
        switch c.op {
        case "containsAny": return [[with("notContainsAny")]]
        case "notContainsAny": return [[with("containsAny")]]
        case "regex": return [[with("!regex")]]
        case "!regex": return [[with("regex")]]
        case "regexContainsAnyEx": return [[with("!regexContainsAnyEx")]]
        case "!regexContainsAnyEx": return [[with("regexContainsAnyEx")]]
        case "containsAll":
            // not every value is there: one of them is missing
            let values = c.values
            return values.isEmpty ? nil : values.map { [with("notContainsAny", $0)] }
        case "=":
            switch c.value {
            case "true": return [[with("=", "false")]]
            case "false": return [[with("=", "true")]]
            default: return nil
            }
        default:
            return nil
        }
    }
}

extension AdmissionConfig {
    func sameSettings(as other: AdmissionConfig) -> Bool {
        enable == other.enable && mode == other.mode && clientMode == other.clientMode
    }

    var summary: String {
        "enable: \(enable.map(String.init) ?? "-"), mode: \(mode ?? "-"), client_mode: \(clientMode ?? "-")"
    }
}
