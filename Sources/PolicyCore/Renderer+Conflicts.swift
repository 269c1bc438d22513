extension RenderState {
    /// Shadowed, redundant and ambiguous network rules (§3.8), found through the coverage index rather than
    /// by comparing every pair. The inner loop reads small per-rule arrays, not the rules themselves.
    mutating func findNetworkConflicts(_ rules: [EffectiveNetworkRule]) {
        let targetIDs = rules.map { selectors.intern($0.target) }
        let peerIDs = rules.map { selectors.intern($0.peer) }
        let directions = rules.map(\.direction)
        let tiers = rules.map(\.source.tier)
        let priorities = rules.map(\.priority)
        let actions = rules.map(\.action)
        let ports = rules.map(\.ports)
        let applications = rules.map(\.applications)
        // rules by target, then by peer: a rule is compared only with rules whose target and peer its own
        // cover, found through the coverage index, so the work grows with the conflicts, not with n²
        var byTargetPeer: [Int: [Int: [Int]]] = [:]
        for index in rules.indices { byTargetPeer[targetIDs[index], default: [:]][peerIDs[index], default: []].append(index) }
        var reported = Set<Int>()
        for a in rules.indices {
            let coveredPeers = selectors.covered(by: peerIDs[a])
            for coveredTarget in selectors.covered(by: targetIDs[a]) {
                guard let peers = byTargetPeer[coveredTarget] else { continue }
                var candidates: [Int] = []
                if coveredPeers.count <= peers.count {
                    for peer in coveredPeers { candidates += peers[peer] ?? [] }
                } else {
                    for (peer, list) in peers where selectors.covers(peerIDs[a], peer) { candidates += list }
                }
                for b in candidates where b != a && directions[a] == directions[b] {
                    guard let kind = Precedence.conflict(
                        winnerTier: tiers[a], winnerPriority: priorities[a], winnerAction: actions[a],
                        otherTier: tiers[b], otherPriority: priorities[b], otherAction: actions[b])
                    else { continue }
                    guard ports[a].isSuperset(of: ports[b]), applications[a].isSuperset(of: applications[b]) else { continue }
                    report(kind, rules[a], rules[b], pair: min(a, b) << 32 | max(a, b), reported: &reported)
                }
            }
        }
    }

    private mutating func report(_ kind: Conflict.Kind, _ ruleA: EffectiveNetworkRule, _ ruleB: EffectiveNetworkRule,
                                 pair: Int, reported: inout Set<Int>) {
        switch kind {
        case .ambiguous:
            let (first, second) = ruleA.source < ruleB.source ? (ruleA, ruleB) : (ruleB, ruleA)
            guard reported.insert(pair).inserted else { return }
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
        case .overridden, .unresolved:
            return
        }
    }
}
