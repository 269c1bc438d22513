/// Where the hub pushes a cluster's effective policy.
public enum MemberTarget: Sendable, Hashable {
    case kubernetes(kubeconfig: String, context: String?)
    case directory(path: String)
}

/// A member cluster registered in `clusters/*.yaml`.
public struct MemberCluster: Sendable, Hashable {
    public var name: String
    public var labels: [String: String]
    public var environment: String
    public var target: MemberTarget
    public var origin: Origin

    public init(name: String, labels: [String: String] = [:], environment: String, target: MemberTarget,
                origin: Origin = .generated) {
        self.name = name
        self.labels = labels
        self.environment = environment
        self.target = target
        self.origin = origin
    }

    /// The labels placement selectors see: the cluster's own plus `environment`.
    public var placementLabels: [String: String] {
        var all = labels
        all["environment"] = environment
        return all
    }
}

/// Promotion gates of an environment (SEMANTICS §1.2).
public struct PromotionGates: Sendable, Hashable {
    public var requireInSync: Bool
    public var requireNoDrift: Bool
    /// Seconds the source revision must have been applied before promotion.
    public var minimumSoakSeconds: Int?
    /// Revisions only from git commits signed by a key the operator trusts (`--force` cannot override).
    public var requireSignedCommits: Bool

    public init(requireInSync: Bool = false, requireNoDrift: Bool = false, minimumSoakSeconds: Int? = nil,
                requireSignedCommits: Bool = false) {
        self.requireSignedCommits = requireSignedCommits
        self.requireInSync = requireInSync
        self.requireNoDrift = requireNoDrift
        self.minimumSoakSeconds = minimumSoakSeconds
    }
}

/// An environment from `clusters/environments.yaml`.
public struct Environment: Sendable, Hashable {
    public var name: String
    public var promotesFrom: String?
    public var defaultPolicyMode: PolicyMode
    public var minimumPolicyMode: PolicyMode
    public var gates: PromotionGates
    /// The daemon restores hand-made changes on this environment's clusters by itself (SEMANTICS §6).
    public var selfHeal: Bool
    /// Change freezes: while one is open, promotions into this environment and pushes to its clusters are
    /// refused (rollbacks excepted) unless forced with a reason.
    public var freeze: [FreezeWindow] = []
    public var origin: Origin

    /// The freeze window open at `time` (seconds since 1970, UTC), with when it opened and closes; nil when
    /// none is (deny wins: any open window freezes).
    public func frozen(at time: Double) -> (window: FreezeWindow, from: Double, until: Double)? {
        for window in freeze {
            guard let start = window.schedule.previous(atOrBefore: time) else { continue }
            let end = start + Double(window.durationSeconds)
            if time < end { return (window, start, end) }
        }
        return nil
    }

    public init(name: String, promotesFrom: String? = nil, defaultPolicyMode: PolicyMode = .monitor,
                minimumPolicyMode: PolicyMode = .discover, gates: PromotionGates = PromotionGates(),
                selfHeal: Bool = false, origin: Origin = .generated) {
        self.selfHeal = selfHeal
        self.name = name
        self.promotesFrom = promotesFrom
        self.defaultPolicyMode = defaultPolicyMode
        self.minimumPolicyMode = minimumPolicyMode
        self.gates = gates
        self.origin = origin
    }
}

/// A change freeze: it opens each time `schedule` fires (cron, UTC) and stays open `durationSeconds`.
public struct FreezeWindow: Sendable, Hashable {
    public var schedule: CronExpression
    public var durationSeconds: Int
    /// The duration as written (`2h`).
    public var durationText: String

    public init(schedule: CronExpression, durationSeconds: Int, durationText: String) {
        self.schedule = schedule
        self.durationSeconds = durationSeconds
        self.durationText = durationText
    }

    /// `"0 18 * * 5" for 2h`.
    public var description: String { "\"\(schedule)\" for \(durationText)" }
}

/// Parses durations such as `1h`, `30m`, `90s`, `1h30m`, `2d` into seconds.
public enum DurationText {
    public static func seconds(_ text: String) -> Int? {
        guard !text.isEmpty else { return nil }
        var total = 0
        var number = 0
        var sawDigit = false
        for c in text.unicodeScalars {
            if let digit = Int(String(c)), ("0"..."9").contains(c) {
                number = number * 10 + digit
                sawDigit = true
                if number > 10_000_000 { return nil }
                continue
            }
            guard sawDigit else { return nil }
            switch c {
            case "s": total += number
            case "m": total += number * 60
            case "h": total += number * 3600
            case "d": total += number * 86400
            default: return nil
            }
            number = 0
            sawDigit = false
        }
        return sawDigit ? nil : total
    }
}
