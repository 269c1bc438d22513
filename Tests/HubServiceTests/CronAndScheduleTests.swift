import Foundation
import HubService
import PolicyCore
import Testing

@Suite struct CronAndScheduleTests {
    // 2026-11-27T10:17:00Z, a Friday
    static let friday = 1_795_774_620.0

    static func iso(_ seconds: Double?) -> String {
        guard let seconds else { return "never" }
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: seconds))
    }

    @Test(arguments: [
        ("0 */6 * * *", "2026-11-27T12:00:00Z", "2026-11-27T06:00:00Z"),
        ("*/15 * * * *", "2026-11-27T10:30:00Z", "2026-11-27T10:15:00Z"),
        ("17 10 * * *", "2026-11-28T10:17:00Z", "2026-11-27T10:17:00Z"),
        ("0 9 * * 1", "2026-11-30T09:00:00Z", "2026-11-23T09:00:00Z"),
        ("0 0 1 1 *", "2027-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("30 2 29 2 *", "2028-02-29T02:30:00Z", "2024-02-29T02:30:00Z"),
        ("0 12 1 * 5", "2026-11-27T12:00:00Z", "2026-11-20T12:00:00Z"),  // day-of-month OR day-of-week
        ("0 0 * * 7", "2026-11-29T00:00:00Z", "2026-11-22T00:00:00Z"),
    ])
    func nextAndPrevious(_ text: String, _ next: String, _ previous: String) throws {
        let cron = try CronExpression(text)
        #expect(Self.iso(cron.next(after: Self.friday)) == next)
        #expect(Self.iso(cron.previous(atOrBefore: Self.friday)) == previous)
    }

    @Test func aDateThatNeverComes() throws {
        #expect(try CronExpression("0 0 31 2 *").next(after: Self.friday) == nil)
    }

    @Test(arguments: ["", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *", "a * * * *", "5-2 * * * *"])
    func badExpressionsAreRefused(_ text: String) {
        #expect(throws: CronError.self) { try CronExpression(text) }
    }

    @Test func aReportMissedWhileDownRunsOnceAtStart() throws {
        var schedule = Schedule(drift: try CronExpression("0 */6 * * *"), reconcileInterval: 300)
        // the last report is from 05:00; 06:00 passed while the hub was down
        let jobs = schedule.start(now: Self.friday, lastDriftReport: Self.friday - 5 * 3600 - 17 * 60)
        #expect(jobs == [.driftReport, .reconcile])
        #expect(Self.iso(schedule.nextDrift) == "2026-11-27T12:00:00Z")
        #expect(schedule.nextReconcile == Self.friday + 300)
    }

    @Test func noMissedReportWhenTheLastOneIsRecent() throws {
        var schedule = Schedule(drift: try CronExpression("0 */6 * * *"), reconcileInterval: nil)
        #expect(schedule.start(now: Self.friday, lastDriftReport: Self.friday - 60).isEmpty)
    }

    @Test func dueJobsRunOnceAndMoveOn() throws {
        var schedule = Schedule(drift: try CronExpression("0 */6 * * *"), reconcileInterval: 600)
        _ = schedule.start(now: Self.friday, lastDriftReport: Self.friday)
        #expect(schedule.due(now: Self.friday + 599).isEmpty)
        #expect(schedule.due(now: Self.friday + 600) == [.reconcile])
        // a long pause: each job once, not once per missed turn
        let later = Self.friday + 3 * 86400
        #expect(schedule.due(now: later) == [.driftReport, .reconcile])
        #expect(schedule.nextReconcile == later + 600)
        #expect(try #require(schedule.wakeTime) > later)
    }
}
