import PolicyCore
import Testing

/// Every combination of a catalogue of twelve admission rules (enforced and baseline global denies, a global
/// allow, namespace allows and a namespace deny, with criteria on image, registry, namespace and labels),
/// compiled into `local` and evaluated on a grid of 120 workloads by an oracle written here: NeuVector's
/// matching (cache/admission.go `isAdmissionRuleMet`, `isSetCriterionMet`, `isComplexMapCriterionMet`) and
/// its fixed allow-before-deny order (neuvector/neuvector#789). The oracle never calls the engine's matcher.
///
/// What the tiers say (SEMANTICS §3.9): a global allow admits; otherwise an enforced deny denies; otherwise a
/// namespace allow admits; otherwise a baseline or namespace deny denies; otherwise the workload is admitted.
@Suite struct AdmissionOracleTests {
    struct Workload: CustomStringConvertible {
        var namespace: String
        var image: String
        var labels: [String: String]
        var registry: String { String(image.split(separator: "/").first ?? "") }
        var description: String { "\(namespace) \(image) \(labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })" }
    }

    static let workloads: [Workload] = {
        let labelSets: [[String: String]] = [
            [:], ["team": "a"], ["team": "a", "owner": "x"], ["priv": "true"],
            ["priv": "true", "debug": "true", "owner": "x"], ["debug": "true", "team": "a", "owner": "x"],
            ["extra": "1", "owner": "x"], ["team": "b", "priv": "true", "owner": "x"],
        ]
        let images = ["docker.io/app:1", "docker.io/app:latest", "docker.io/trusted/x:1", "reg.corp/app:1", "reg.corp/app:latest"]
        var out: [Workload] = []
        for ns in ["ns1", "ns2", "ns3"] {
            for image in images {
                for labels in labelSets { out.append(Workload(namespace: ns, image: image, labels: labels)) }
            }
        }
        return out
    }()

    enum Kind { case enforcedDeny, baselineDeny, globalAllow, namespaceAllow, namespaceDeny }

    struct Entry {
        var name: String
        var kind: Kind
        var namespace: String?
        var criteria: [AdmissionCriterion]
    }

    static func c(_ name: String, _ op: String, _ value: String) -> AdmissionCriterion { AdmissionCriterion(name, op, value) }

    static let catalogue: [Entry] = [
        Entry(name: "ED1", kind: .enforcedDeny, criteria: [c("imageRegistry", "containsAny", "docker.io")]),
        Entry(name: "ED2", kind: .enforcedDeny, criteria: [c("labels", "containsAny", "priv=true"), c("namespace", "containsAny", "ns2")]),
        Entry(name: "ED3", kind: .enforcedDeny, criteria: [c("labels", "containsAll", "priv=true,debug=true")]),
        // no exact complement among NeuVector's operators: a namespace allow it can reach is dropped
        Entry(name: "ED4", kind: .enforcedDeny, criteria: [c("labels", "containsOtherThan", "team=*,owner=*,priv=*,debug=*")]),
        Entry(name: "BD1", kind: .baselineDeny, criteria: [c("image", "containsAny", "*:latest")]),
        Entry(name: "BD2", kind: .baselineDeny, criteria: [c("labels", "notContainsAny", "owner")]),
        Entry(name: "GA1", kind: .globalAllow, criteria: [c("image", "containsAny", "docker.io/trusted/*")]),
        Entry(name: "NA1", kind: .namespaceAllow, namespace: "ns1",
              criteria: [c("namespace", "containsAny", "ns1"), c("image", "containsAny", "docker.io/app:*")]),
        Entry(name: "NA2", kind: .namespaceAllow, namespace: "ns1",
              criteria: [c("namespace", "containsAny", "ns1"), c("labels", "containsAny", "team=a")]),
        Entry(name: "ND1", kind: .namespaceDeny, namespace: "ns1",
              criteria: [c("namespace", "containsAny", "ns1"), c("labels", "containsAny", "debug=true")]),
        // its own registry criterion cannot be combined with ED1's complement: dropped when ED1 is there
        Entry(name: "NA3", kind: .namespaceAllow, namespace: "ns2",
              criteria: [c("namespace", "containsAny", "ns2"), c("imageRegistry", "containsAny", "docker.io")]),
        Entry(name: "NA4", kind: .namespaceAllow, namespace: "ns2",
              criteria: [c("namespace", "containsAny", "ns2"), c("labels", "notContainsAny", "priv")]),
    ]

    // MARK: - The oracle: NeuVector's matching, written from its source

    static func glob(_ pattern: String, _ text: String) -> Bool {
        // share/criteria.go EqualMatch: '*' any run, '?' one character, anchored
        func go(_ p: Substring, _ t: Substring) -> Bool {
            guard let first = p.first else { return t.isEmpty }
            if first == "*" { return go(p.dropFirst(), t) || (!t.isEmpty && go(p, t.dropFirst())) }
            guard let ch = t.first else { return false }
            return (first == "?" || first == ch) && go(p.dropFirst(), t.dropFirst())
        }
        return go(Substring(pattern), Substring(text))
    }

    static func values(_ c: AdmissionCriterion) -> [String] {
        c.value.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
    }

    /// (met, positive) of one criterion.
    static func met(_ c: AdmissionCriterion, _ w: Workload) -> (Bool, Bool) {
        let wanted = values(c)
        if c.name == "labels" {
            func holds(_ v: String) -> Bool {
                let parts = v.split(separator: "=", maxSplits: 1).map(String.init)
                guard let actual = w.labels[parts[0]] else { return false }
                return parts.count == 1 || glob(parts[1], actual)
            }
            switch c.op {
            case "containsAny": return (wanted.contains(where: holds), true)
            case "notContainsAny": return (!wanted.contains(where: holds), false)
            case "containsAll": return (!w.labels.isEmpty && wanted.allSatisfy(holds), true)
            case "containsOtherThan":
                let other = w.labels.contains { key, value in
                    !wanted.contains { v in
                        let parts = v.split(separator: "=", maxSplits: 1).map(String.init)
                        return parts[0] == key && (parts.count == 1 || glob(parts[1], value))
                    }
                }
                return (other, true)
            default: Issue.record("oracle: no model for labels \(c.op)"); return (false, true)
            }
        }
        let actual: String
        switch c.name {
        case "namespace": actual = w.namespace
        case "image": actual = w.image
        case "imageRegistry": actual = w.registry
        default: Issue.record("oracle: no model for \(c.name)"); return (false, true)
        }
        let hit = wanted.contains { glob($0, actual) }
        switch c.op {
        case "containsAny": return (hit, true)
        case "notContainsAny": return (!hit, false)
        case "containsAll": return (wanted.allSatisfy { glob($0, actual) }, true)
        default: Issue.record("oracle: no model for \(c.op)"); return (false, true)
        }
    }

    static func matches(_ criteria: [AdmissionCriterion], _ w: Workload) -> Bool {
        var mets: [String: Bool] = [:]
        var poss: [String: Bool] = [:]
        for criterion in criteria {
            let (m, positive) = met(criterion, w)
            if let v = mets[criterion.name], let p = poss[criterion.name] {
                mets[criterion.name] = (!positive && !p) ? (v && m) : (v || m)
                poss[criterion.name] = p || positive
            } else {
                mets[criterion.name] = m
                poss[criterion.name] = positive
            }
        }
        return !mets.isEmpty && mets.values.allSatisfy { $0 }
    }

    static func placed(_ entry: Entry, index: Int) -> PlacedAdmissionRule {
        let tier: Tier
        switch entry.kind {
        case .enforcedDeny, .globalAllow: tier = .enforced
        case .baselineDeny: tier = .baseline
        case .namespaceAllow, .namespaceDeny: tier = .namespace
        }
        let action = entry.kind == .globalAllow || entry.kind == .namespaceAllow ? "allow" : "deny"
        let file = entry.namespace.map { "policies/namespaces/\($0)/admission.yaml" } ?? "policies/global/admission.yaml"
        let source = RuleSource(file: file, line: index + 1, column: 1,
                                document: ObjectIdentity(kind: .admissionControl, namespace: "", name: "local"),
                                rule: entry.name, tier: tier)
        return PlacedAdmissionRule(rule: AdmissionRule(action: action, criteria: entry.criteria), source: source,
                                   namespace: entry.namespace)
    }

    @Test func everyCombinationIsDecidedAsTheTiersSay() {
        let all = Self.catalogue
        let workloads = Self.workloads
        // which workloads a list of criteria matches, once per distinct list (the oracle is slow on its own)
        var cache: [[String]: [Bool]] = [:]
        func vector(_ criteria: [AdmissionCriterion]) -> [Bool] {
            let key = criteria.map { "\($0.name)\u{1}\($0.op)\u{1}\($0.value)" }
            if let known = cache[key] { return known }
            let computed = workloads.map { Self.matches(criteria, $0) }
            cache[key] = computed
            return computed
        }
        var exactCombinations = 0
        var narrowings = 0
        var drops = 0
        var failures = 0
        for mask in 0..<(1 << all.count) where failures < 5 {
            let chosen = all.indices.filter { mask & (1 << $0) != 0 }
            let entries = chosen.map { all[$0] }
            let compiled = AdmissionCompiler.compile(chosen.map { Self.placed(all[$0], index: $0) })
            let droppedNames = Set(compiled.dropped.map(\.rule))
            narrowings += compiled.conflicts.filter { $0.kind == .overridden }.count
            drops += droppedNames.count
            if droppedNames.isEmpty { exactCombinations += 1 }
            func any(_ rules: [[AdmissionCriterion]]) -> [Bool] {
                var out = [Bool](repeating: false, count: workloads.count)
                for rule in rules {
                    for (i, hit) in vector(rule).enumerated() where hit { out[i] = true }
                }
                return out
            }
            // NeuVector on the compiled object: any allow admits, then any deny denies, then admit
            let compiledAllow = any(compiled.rules.filter { $0.action == .allow }.map(\.rule.criteria))
            let compiledDeny = any(compiled.rules.filter { $0.action == .deny }.map(\.rule.criteria))
            func tier(_ kind: Kind) -> [Bool] { any(entries.filter { $0.kind == kind }.map(\.criteria)) }
            let (ga, ed, na, bd, nd) = (tier(.globalAllow), tier(.enforcedDeny), tier(.namespaceAllow),
                                        tier(.baselineDeny), tier(.namespaceDeny))
            let droppedAllows = any(entries.filter { droppedNames.contains($0.name) }.map(\.criteria))
            for (i, w) in workloads.enumerated() {
                // what the tiers say
                let wanted = ga[i] || (!ed[i] && (na[i] || !(bd[i] || nd[i])))
                let got = compiledAllow[i] || !compiledDeny[i]
                if droppedNames.isEmpty {
                    if got != wanted {
                        failures += 1
                        Issue.record("mask \(mask) \(entries.map(\.name)): \(w) admitted \(got), the tiers say \(wanted)")
                    }
                } else if got && !wanted {
                    // an inexact allow is dropped: it must never admit more than the tiers say...
                    failures += 1
                    Issue.record("mask \(mask) \(entries.map(\.name)): \(w) admitted against the tiers")
                } else if wanted && !got && !droppedAllows[i] {
                    // ...and admits less only where a dropped allow would have admitted
                    failures += 1
                    Issue.record("mask \(mask) \(entries.map(\.name)): \(w) denied, and no dropped allow explains it")
                }
            }
        }
        // the catalogue exercises all three outcomes: exact, narrowed, dropped
        #expect(exactCombinations > 1_000, "\(exactCombinations) exact combinations")
        #expect(narrowings > 1_000, "\(narrowings) narrowings")
        #expect(drops > 100, "\(drops) drops")
    }

    @Test func narrowingAddsTheExactComplement() {
        let deny = Self.placed(Self.catalogue[0], index: 0)  // ED1: imageRegistry containsAny docker.io
        let allow = Self.placed(Self.catalogue[8], index: 8)  // NA2: team=a in ns1
        let compiled = AdmissionCompiler.compile([deny, allow])
        let allows = compiled.rules.filter { $0.action == .allow }
        #expect(allows.map { $0.rule.criteria.map(\.text) } == [[
            "namespace containsAny ns1", "labels containsAny team=a", "imageRegistry notContainsAny docker.io",
        ]])
        #expect(compiled.conflicts.map(\.kind) == [.overridden])
        #expect(compiled.conflicts.first?.by.rule == "ED1")
        #expect(compiled.dropped.isEmpty)
    }

    @Test func aDenyOnAnotherNamespaceLeavesTheAllowAlone() {
        let deny = Self.placed(Self.catalogue[1], index: 1)  // ED2: priv=true in ns2
        let allow = Self.placed(Self.catalogue[8], index: 8)  // NA2 in ns1
        let compiled = AdmissionCompiler.compile([deny, allow])
        #expect(compiled.rules.filter { $0.action == .allow }.map { $0.rule.criteria } == [Self.catalogue[8].criteria])
        #expect(compiled.conflicts.isEmpty)
    }

    @Test func configsThatDisagreeAreAmbiguous() {
        let a = AdmissionConfig(enable: true, mode: "protect", clientMode: "service")
        let b = AdmissionConfig(enable: true, mode: "monitor", clientMode: "service")
        let source = Self.placed(Self.catalogue[0], index: 0).source
        var other = source
        other.file = "policies/global/other.yaml"
        let compiled = AdmissionCompiler.compile([], configs: [(a, source), (b, other)])
        #expect(compiled.conflicts.map(\.kind) == [.ambiguous])
        #expect(AdmissionCompiler.compile([], configs: [(a, source), (a, other)]).conflicts.isEmpty)
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
