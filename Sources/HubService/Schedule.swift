import PolicyCore

/// The scheduler's state machine (no I/O, no clock of its own): given the time, it says which jobs are
/// due and when to wake next. `SchedulerService` executes what it returns.
public struct Schedule: Sendable {
    public enum Job: String, Sendable, Hashable, CaseIterable {
        case driftReport = "drift-report"
        case reconcile
        case selfHeal = "self-heal"
    }

    public let drift: CronExpression?
    public let reconcileInterval: Double?
    public private(set) var nextDrift: Double?
    public private(set) var nextReconcile: Double?
    /// Tamper detection and self-heal (`HubEngine.heal`), every so many seconds.
    public let selfHealInterval: Double?
    public private(set) var nextSelfHeal: Double?

    public init(drift: CronExpression?, reconcileInterval: Double?, selfHealInterval: Double? = nil) {
        self.drift = drift
        self.reconcileInterval = reconcileInterval
        self.selfHealInterval = selfHealInterval
    }

    /// The jobs to run when the daemon starts at `now`: a drift report when the cron fired while the daemon
    /// was down (its last firing is later than the last stored report), and a reconcile (pushing what is not
    /// applied). Sets the following times.
    public mutating func start(now: Double, lastDriftReport: Double?) -> [Job] {
        var jobs: [Job] = []
        if let drift {
            if let fired = drift.previous(atOrBefore: now), (lastDriftReport ?? -Double.infinity) < fired { jobs.append(.driftReport) }
            nextDrift = drift.next(after: now)
        }
        if let reconcileInterval {
            jobs.append(.reconcile)
            nextReconcile = now + reconcileInterval
        }
        if let selfHealInterval { nextSelfHeal = now + selfHealInterval }
        return jobs
    }

    /// Sets the next times from `now` without running anything (a schedule read again on SIGHUP: a
    /// missed report is not run again, the interval starts over).
    public mutating func resume(now: Double) {
        nextDrift = drift?.next(after: now)
        nextReconcile = reconcileInterval.map { now + $0 }
        nextSelfHeal = selfHealInterval.map { now + $0 }
    }

    /// The jobs due at `now`, each once however many times it was due; moves their next times past `now`.
    public mutating func due(now: Double) -> [Job] {
        var jobs: [Job] = []
        if let drift, let next = nextDrift, next <= now {
            jobs.append(.driftReport)
            nextDrift = drift.next(after: now)
        }
        if let reconcileInterval, let next = nextReconcile, next <= now {
            jobs.append(.reconcile)
            var following = next + reconcileInterval
            if following <= now { following = now + reconcileInterval }
            nextReconcile = following
        }
        if let selfHealInterval, let next = nextSelfHeal, next <= now {
            jobs.append(.selfHeal)
            nextSelfHeal = max(next + selfHealInterval, now + selfHealInterval / 2)
        }
        return jobs
    }

    /// When to wake next, or nil when nothing is scheduled.
    public var wakeTime: Double? {
        [nextDrift, nextReconcile, nextSelfHeal].compactMap { $0 }.min()
    }
}
