/// The hub's precedence, in one place (SEMANTICS §3.2): tiers become priority bands, so that every
/// enforced global rule outranks every namespace rule, which outranks every baseline global rule.
public enum Precedence {
    /// The NeuVector `priority` a rule of `tier` with its own priority `p` (0...100) is pushed with.
    public static func outputPriority(tier: Tier, priority p: Int) -> Int {
        let p = min(max(p, 0), 100)
        switch tier {
        case .enforced: return 67 + p * 33 / 100
        case .namespace: return 34 + p * 32 / 100
        case .baseline: return p * 33 / 100
        }
    }

    /// The band of output priorities of a tier.
    public static func band(_ tier: Tier) -> ClosedRange<Int> {
        outputPriority(tier: tier, priority: 0)...outputPriority(tier: tier, priority: 100)
    }

    /// What it means when rule `winner` fully covers rule `other` and decides first
    /// (SEMANTICS §3.8), or nil when the two do not conflict.
    public static func conflict(winnerTier: Tier, winnerPriority: Int, winnerAction: RuleAction,
                                otherTier: Tier, otherPriority: Int, otherAction: RuleAction) -> Conflict.Kind? {
        if winnerPriority == otherPriority {
            switch (winnerAction, otherAction) {
            case (.allow, .deny), (.deny, .allow): return .ambiguous
            case (.allow, .allow), (.deny, .deny): return nil
            }
        }
        guard winnerTier < otherTier else { return nil }
        switch (winnerAction, otherAction) {
        case (.allow, .deny), (.deny, .allow): return .shadowed
        case (.allow, .allow), (.deny, .deny): return .redundant
        }
    }

    /// First-match order: higher output priority first; ties (which NeuVector would order arbitrarily)
    /// broken by tier, then source position, so that output and explanations are stable.
    public static func evaluatesBefore(_ a: EffectiveNetworkRule, _ b: EffectiveNetworkRule) -> Bool {
        SortKey(a) < SortKey(b)
    }

    /// The order of `evaluatesBefore` as a small value, so that sorting many rules moves no rule.
    struct SortKey: Comparable {
        var priority: Int
        var tier: Tier
        var source: RuleSource

        init(_ rule: EffectiveNetworkRule) {
            priority = rule.priority
            tier = rule.source.tier
            source = rule.source
        }

        static func < (a: SortKey, b: SortKey) -> Bool {
            if a.priority != b.priority { return a.priority > b.priority }
            if a.tier != b.tier { return a.tier < b.tier }
            return a.source < b.source
        }

        static func == (a: SortKey, b: SortKey) -> Bool { !(a < b) && !(b < a) }
    }
}
