import HubEngine
import HubStore
import Foundation
import PolicyCore
import Logging
import ServiceLifecycle

/// Runs `Schedule`'s jobs on a clock: scheduled drift reports and the reconcile interval, each job at most
/// once at a time, beside the API (never blocking it). On graceful shutdown it stops scheduling and waits
/// for the job in progress (a push finishes and is recorded; a restart resumes whatever is not applied).
public actor SchedulerService: Service {
    let operations: any HubOperations
    let clock: any HubClock
    let logger: Logger
    let metrics: HubMetrics
    let afterDriftReport: @Sendable (DriftRun, String) async -> Void
    var schedule: Schedule
    var running: [Schedule.Job: Task<Void, Never>] = [:]
    /// The sleep in progress, cancelled when the schedule is replaced.
    var sleeper: Task<Void, any Error>?
    var replaced = false
    /// Jobs started so far, in order (tests read it).
    public private(set) var started: [Schedule.Job] = []
    /// With replicas on one store: the lease that says whether this one runs the leader's jobs.
    let leadership: Leadership?
    /// The leadership terms already caught up on.
    var termsSeen = 0
    /// Jobs whose skipped turn was logged during their current run.
    var skipNoted: Set<Schedule.Job> = []

    public init(schedule: Schedule, operations: any HubOperations, clock: any HubClock, metrics: HubMetrics, logger: Logger,
                leadership: Leadership? = nil, afterDriftReport: @escaping @Sendable (DriftRun, String) async -> Void) {
        self.leadership = leadership
        self.schedule = schedule
        self.operations = operations
        self.clock = clock
        self.metrics = metrics
        self.logger = logger
        self.afterDriftReport = afterDriftReport
    }

    public func run() async throws {
        leadership?.renew()
        termsSeen = leadership?.termsBegun ?? 0
        let renewing = leadership.map { leadership in Task.detached { await leadership.run() } }
        let last = try? await operations.lastDriftReportTime()
        for job in schedule.start(now: clock.now(), lastDriftReport: last ?? nil) {
            if job == .driftReport && leads { logger.info("a scheduled drift report was missed while the hub was down: running it now") }
            launch(job)
        }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let clock = self.clock
            // nothing scheduled: wait (for shutdown, or a schedule read again on SIGHUP); a replica also wakes
            // to see whether it became the leader
            let sleep: Task<Void, any Error>
            let check = leadership.map { clock.now() + $0.ttl / 3 }
            if let wake = [schedule.wakeTime, check].compactMap({ $0 }).min() {
                sleep = Task { try await clock.sleep(until: wake) }
            } else {
                sleep = Task { while true { try await Task.sleep(nanoseconds: 3_600_000_000_000) } }
            }
            sleeper = sleep
            do {
                try await cancelWhenGracefulShutdown {
                    try await withTaskCancellationHandler { try await sleep.value } onCancel: { sleep.cancel() }
                }
            } catch {
                sleep.cancel()
                if replaced && !Task.isShuttingDownGracefully && !Task.isCancelled {
                    replaced = false
                    continue
                }
                break
            }
            await catchUpOnNewTerm()
            for job in schedule.due(now: clock.now()) { launch(job) }
        }
        sleeper = nil
        for task in running.values { await task.value }
        renewing?.cancel()
        await renewing?.value
    }

    /// Whether this replica runs the leader's jobs (always, without replicas).
    var leads: Bool { leadership == nil || leadership?.fence != nil }

    /// A replica that has just become the leader runs the drift report its predecessor missed (the
    /// schedule fired after the last stored report: the old leader died or was cut off before storing it).
    func catchUpOnNewTerm() async {
        guard let leadership, leadership.termsBegun != termsSeen else { return }
        termsSeen = leadership.termsBegun
        guard leads, let drift = schedule.drift, let fired = drift.previous(atOrBefore: clock.now()) else { return }
        let last = (try? await operations.lastDriftReportTime()) ?? nil
        if (last ?? -Double.infinity) < fired {
            logger.info("the drift report of \(timestamp(fired)) was not stored by the previous leader: running it now")
            launch(.driftReport)
        }
    }

    func launch(_ job: Schedule.Job) {
        if running[job] != nil {
            // said once per run: a short interval (replicas reconcile every second or so) would repeat it
            if skipNoted.insert(job).inserted { logger.info("\(job.rawValue) is still running; its turns are skipped until it ends") }
            return
        }
        // drift reports and self-heal turns are the leader's, fenced by its term; every replica reconciles
        // (its pushes divided by claims)
        var fence: StoreFence?
        if job != .reconcile, let leadership {
            guard let held = leadership.fence else { return }
            fence = held
        }
        started.append(job)
        let operations = self.operations
        let metrics = self.metrics
        let logger = self.logger
        let after = self.afterDriftReport
        running[job] = Task {
            await StoreFence.with(fence) { await SchedulerService.execute(job, operations: operations, metrics: metrics, logger: logger, after: after) }
            await self.finished(job)
        }
    }

    static func execute(_ job: Schedule.Job, operations: any HubOperations, metrics: HubMetrics, logger: Logger,
                        after: @Sendable (DriftRun, String) async -> Void) async {
        var result = "ok"
        do throws(OperationError) {
            switch job {
            case .driftReport:
                let run = try await operations.runDriftReport(author: "scheduler")
                await after(run, "schedule")
                logger.info("scheduled drift report: \(run.driftFindings) finding(s), \(run.newFindings) new")
            case .reconcile:
                let run = try await operations.reconcile(author: "scheduler")
                metrics.recordPushes(run.outcomes)
                if run.pushed + run.failed > 0 {
                    logger.info("reconcile: \(run.pushed) pushed, \(run.failed) failed, \(run.inStep) in step")
                }
                for failure in run.failures { logger.warning("reconcile: \(failure)") }
            case .selfHeal:
                let run = try await operations.heal(author: "self-heal")
                await run.announce(metrics: metrics, logger: logger, after: after)
            }
        } catch {
            result = "failed"
            logger.error("\(job.rawValue) failed: \(error.message)")
        }
        metrics.increment("policyhub_scheduled_jobs_total", labels: [("job", job.rawValue), ("result", result)])
    }

    /// Replaces the schedule (hub.yaml read again on SIGHUP): its next times count from now, and the
    /// sleep in progress ends so that the new times apply at once. A job in progress finishes.
    public func reschedule(_ new: Schedule) {
        var next = new
        next.resume(now: clock.now())
        schedule = next
        replaced = true
        sleeper?.cancel()
    }

    func finished(_ job: Schedule.Job) {
        running[job] = nil
        skipNoted.remove(job)
    }

    /// Whether a job is running now (tests).
    public func isRunning(_ job: Schedule.Job) -> Bool { running[job] != nil }

    /// Whether the loop of `run` has started and waits for its next turn (tests).
    public var isWaiting: Bool { sleeper != nil }
}

extension SelfHealRun {
    /// What a self-heal turn did, told: each repair counted per cluster and logged, failures logged, the drift
    /// report it recorded sent on (to the webhook).
    func announce(metrics: HubMetrics, logger: Logger, after: @Sendable (DriftRun, String) async -> Void) async {
        for (cluster, findings) in repaired.sorted(by: { $0.key < $1.key }) {
            metrics.increment("policyhub_self_heal_repairs_total", labels: [("cluster", cluster)])
            logger.notice("self-heal: restored \(cluster) (\(findings) hand-made change\(findings == 1 ? "" : "s"))")
        }
        for failure in failures { logger.warning("self-heal: \(failure)") }
        if let report { await after(report, "tamper") }
    }
}
