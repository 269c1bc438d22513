/// A placement selector that selects no cluster of the fleet is an error (SEMANTICS §2): a misspelt
/// `environment=prodution` would otherwise silently drop an enforced rule. A label value or key that no
/// cluster carries gets "did you mean" when a known one is at most two edits away.
public enum PlacementCheck {
    public static func problems(_ policy: ValidatedPolicySet, fleet: ValidatedFleet) -> [Diagnostic] {
        let labelSets = fleet.clusters.map(\.placementLabels)
        var valuesByKey: [String: Set<String>] = [:]
        for labels in labelSets { for (key, value) in labels { valuesByKey[key, default: []].insert(value) } }
        var out: [Diagnostic] = []
        for document in policy.documents where !document.placement.requirements.isEmpty {
            guard !labelSets.contains(where: document.placement.matches) else { continue }
            var hints: [String] = []
            for requirement in document.placement.requirements {
                let (key, wanted): (String, [String])
                switch requirement {
                case .equals(let k, let v): (key, wanted) = (k, [v])
                case .isIn(let k, let values): (key, wanted) = (k, values)
                case .exists(let k): (key, wanted) = (k, [])
                case .notEquals, .notIn, .doesNotExist: continue
                }
                guard let known = valuesByKey[key] else {
                    let near = EditDistance.nearest(key, among: Array(valuesByKey.keys))
                    hints.append("no cluster has the label '\(key)'\(near.map { " (did you mean '\($0)'?)" } ?? "")")
                    continue
                }
                for value in wanted where !known.contains(value) {
                    let near = EditDistance.nearest(value, among: Array(known))
                    hints.append("no cluster has \(key)=\(value)\(near.map { " (did you mean '\($0)'?)" } ?? "")")
                }
            }
            let count = fleet.clusters.count
            out.append(.error("\(HubAnnotation.placement) '\(document.placement.text)' selects no cluster of the fleet (\(count) cluster\(count == 1 ? "" : "s")), so this document would be pushed nowhere\(hints.isEmpty ? "" : ": " + hints.joined(separator: "; "))",
                              at: document.object.metadata.annotationAt(HubAnnotation.placement, or: document.object.origin.at("metadata")),
                              rule: "placement-empty"))
        }
        return out
    }
}

/// Edit distance (Levenshtein) for "did you mean".
public enum EditDistance {
    public static func between(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous = Array(0...y.count)
        var current = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            current[0] = i
            for j in 1...y.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[y.count]
    }

    /// `unknown WHAT 'word'; did you mean 'x'? (known: a, b, c)`: the message for a name that is not one of
    /// `known`, with the nearest one when it is one or two edits away, and at most 20 of the known ones.
    /// A word of three or more letters that begins a known name suggests the shortest such name.
    public static func unknown(_ what: String, _ word: String, known: [String]) -> String {
        let started = word.count >= 3 ? known.filter { $0.hasPrefix(word) }.min { ($0.count, $0) < ($1.count, $1) } : nil
        let near = (nearest(word, among: known) ?? started).map { "; did you mean '\($0)'?" } ?? ""
        let listed = known.prefix(20).joined(separator: ", ") + (known.count > 20 ? ", ... (\(known.count) in all)" : "")
        return "unknown \(what) '\(word)'\(near) (known: \(listed))"
    }

    /// The candidate nearest to `word`, when it is at most `limit` edits away (ties: the first in sorted order).
    public static func nearest(_ word: String, among candidates: [String], limit: Int = 2) -> String? {
        var best: (String, Int)?
        for candidate in candidates.sorted() where candidate != word {
            let distance = between(word, candidate)
            if distance <= limit && distance < (best?.1 ?? Int.max) { best = (candidate, distance) }
        }
        return best?.0
    }
}

/// An `ambiguous` conflict (SEMANTICS §3.8: two rules of opposite actions at one priority over
/// overlapping traffic, which NeuVector may apply in either order) is an error wherever a tree is
/// checked: `validate`, `plan`, `apply` and the API alike, not only `render`.
public enum AmbiguityCheck {
    /// Error-severity findings of every cluster, without rendering every cluster: an ambiguous pair of
    /// network rules is a property of the two rules alone, so the network rules of every document are
    /// analysed once, and a pair is reported on the clusters where both documents are placed. The checks
    /// that depend on what one cluster holds together (sensors, admission configs) are cheap and run per
    /// placement class.
    public static func problems(_ policy: ValidatedPolicySet, fleet: ValidatedFleet, parallel: ParallelFor = .serial) -> [Diagnostic] {
        var state = RenderState(policy: policy, environment: Environment(name: ""), revision: "check", cache: DocumentCache())
        var rules: [EffectiveNetworkRule] = []
        var byIdentity: [ObjectIdentity: PlacedDocument] = [:]
        for document in policy.documents {
            byIdentity[document.object.identity] = document
            guard let spec = document.object.securityRule else { continue }
            rules += state.networkRules(document, spec)
        }
        state.findNetworkConflicts(rules)
        var clusters: [Conflict: [String]] = [:]
        var order: [Conflict] = []
        func note(_ conflict: Conflict, on names: [String]) {
            guard !names.isEmpty else { return }
            if clusters[conflict] == nil { order.append(conflict) }
            clusters[conflict, default: []] += names
        }
        for conflict in state.conflicts where conflict.kind == .ambiguous {
            guard let a = byIdentity[conflict.rule.document], let b = byIdentity[conflict.by.document] else { continue }
            note(conflict, on: fleet.clusters.filter {
                a.placement.matches($0.placementLabels) && b.placement.matches($0.placementLabels)
            }.map(\.name))
        }
        // per placement class: what only the documents placed together can get wrong
        var classes: [Renderer.PlacementClass: [String]] = [:]
        for cluster in fleet.clusters {
            classes[Renderer.PlacementClass(environment: cluster.environment, labels: cluster.placementLabels), default: []].append(cluster.name)
        }
        for (placement, names) in classes.sorted(by: { $0.value[0] < $1.value[0] }) {
            let placed = policy.documents.filter { $0.placement.matches(placement.labels) }
            var found = state.unresolvedSensors(placed)
            let admission = placed.filter { $0.object.kind == .admissionControl }
            if !admission.isEmpty { found += state.compileAdmission(admission).admission.conflicts.filter { $0.severity == .error } }
            for conflict in found { note(conflict, on: names) }
        }
        return order.sorted().map { conflict in
            let on = clusters[conflict] ?? []
            let other = conflict.by.location == conflict.rule.location ? "" : "the other rule: \(conflict.by.location); "
            return .error("\(conflict.kind.rawValue): \(conflict.message) (\(other)on \(on.count == fleet.clusters.count ? "every cluster" : on.sorted().joined(separator: ", ")))",
                          at: conflict.rule.location, rule: "precedence-\(conflict.kind.rawValue)")
        }
    }
}
