import Foundation
import HubEngine
import HubService
import Logging
import Testing

/// A schedule read again (SIGHUP) takes effect at once, on the injected clock, over the real engine.
@Suite struct SchedulerReloadTests {
    static func waitFor(_ condition: () async -> Bool) async throws {
        for _ in 0..<200 {
            if await condition() { return }
            try await Task.sleep(nanoseconds: 25_000_000)
        }
        Issue.record("timed out waiting")
    }

    @Test func aRescheduledReconcileRunsOnTheNewInterval() async throws {
        try await Fleet.with { fleet in
            _ = try await fleet.apply()
            var logger = Logger(label: "policyhub-scheduler-test")
            logger.logLevel = .critical
            let scheduler = SchedulerService(schedule: Schedule(drift: nil, reconcileInterval: nil),
                                             operations: EngineOperations(engine: fleet.engine, logger: logger), clock: fleet.clock,
                                             metrics: HubMetrics(), logger: logger, afterDriftReport: { _, _ in })
            let running = Task { try await scheduler.run() }
            defer { running.cancel() }
            // nothing scheduled: nothing sleeps on the hub's clock and nothing runs (once the loop has started: on a
            // busy machine it could start after the reload below, and then ran the reload's start jobs)
            try await Self.waitFor { await scheduler.isWaiting }
            try await Task.sleep(nanoseconds: 200_000_000)
            #expect(await scheduler.started.isEmpty && fleet.clock.sleeperCount == 0)
            await scheduler.reschedule(Schedule(drift: nil, reconcileInterval: 60))
            try await Self.waitFor { fleet.clock.sleeperCount == 1 }
            // the interval counts from the reload, and a reload runs nothing by itself
            fleet.clock.advance(to: fleet.clock.now() + 59)
            try await Task.sleep(nanoseconds: 200_000_000)
            #expect(await scheduler.started.isEmpty)
            fleet.clock.advance(to: fleet.clock.now() + 1)
            try await Self.waitFor { await scheduler.started == [.reconcile] }
            // switched off again: the next interval never comes
            await scheduler.reschedule(Schedule(drift: nil, reconcileInterval: nil))
            try await Self.waitFor { await !scheduler.isRunning(.reconcile) && fleet.clock.sleeperCount == 0 }
            fleet.clock.advance(to: fleet.clock.now() + 3600)
            try await Task.sleep(nanoseconds: 200_000_000)
            #expect(await scheduler.started == [.reconcile])
            running.cancel()
            _ = await running.result
        }
    }
}
