extension RenderState {
    /// Whether rule `a` matches all traffic rule `b` matches: same direction, target covers target, peer
    /// covers peer, ports and applications supersets.
    mutating func ruleCovers(_ a: EffectiveNetworkRule, _ b: EffectiveNetworkRule, targets: (Int, Int),
                             peers: (Int, Int)) -> Bool {
        a.direction == b.direction && selectors.covers(targets.0, targets.1) && selectors.covers(peers.0, peers.1)
            && a.ports.isSuperset(of: b.ports) && a.applications.isSuperset(of: b.applications)
    }

    /// Shadowed, redundant and ambiguous network rules (§3.8), found through the coverage index rather than
    /// by comparing every pair.
    mutating func findNetworkConflicts(_ rules: [EffectiveNetworkRule]) {
        let targetIDs = rules.map { selectors.intern($0.target) }
        let peerIDs = rules.map { selectors.intern($0.peer) }
        var byTarget: [Int: [Int]] = [:]
        for (index, id) in targetIDs.enumerated() { byTarget[id, default: []].append(index) }
        var reported = Set<Int>()
        for (a, ruleA) in rules.enumerated() {
            for coveredTarget in selectors.covered(by: targetIDs[a]) {
                for b in byTarget[coveredTarget] ?? [] where b != a {
                    let ruleB = rules[b]
                    guard ruleA.direction == ruleB.direction else { continue }
                    guard let kind = Precedence.conflict(
                        winnerTier: ruleA.source.tier, winnerPriority: ruleA.priority, winnerAction: ruleA.action,
                        otherTier: ruleB.source.tier, otherPriority: ruleB.priority, otherAction: ruleB.action)
                    else { continue }
                    guard ruleCovers(ruleA, ruleB, targets: (targetIDs[a], targetIDs[b]),
                                     peers: (peerIDs[a], peerIDs[b])) else { continue }
                    switch kind {
                    case .ambiguous:
                        let (first, second) = ruleA.source < ruleB.source ? (ruleA, ruleB) : (ruleB, ruleA)
                        let key = min(a, b) << 32 | max(a, b)
                        guard reported.insert(key).inserted else { continue }
                        conflicts.append(Conflict(
                            kind: .ambiguous, rule: second.source, by: first.source,
                            message: "rules '\(first.source.rule)' (\(first.action.rawValue)) and '\(second.source.rule)' (\(second.action.rawValue)) have the same priority \(first.priority) and overlapping \(first.direction.rawValue) traffic: NeuVector may apply either"))
                    case .shadowed:
                        conflicts.append(Conflict(
                            kind: .shadowed, rule: ruleB.source, by: ruleA.source,
                            message: "\(ruleB.source.tier.rawValue) rule '\(ruleB.source.rule)' (\(ruleB.action.rawValue)) never decides: \(ruleA.source.tier.rawValue) rule '\(ruleA.source.rule)' (\(ruleA.action.rawValue), priority \(ruleA.priority)) matches all of its traffic first"))
                    case .redundant:
                        conflicts.append(Conflict(
                            kind: .redundant, rule: ruleB.source, by: ruleA.source,
                            message: "\(ruleB.source.tier.rawValue) rule '\(ruleB.source.rule)' is redundant: \(ruleA.source.tier.rawValue) rule '\(ruleA.source.rule)' already \(ruleA.action == .allow ? "allows" : "denies") all of its traffic"))
                    case .overridden:
                        continue
                    }
                }
            }
        }
    }
}
