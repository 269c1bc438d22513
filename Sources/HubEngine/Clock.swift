import Foundation

/// Time for the scheduler: wall-clock seconds since 1970 and a sleep until such a time. The daemon uses
/// `SystemClock`; tests inject `ManualClock` and move it by hand.
public protocol HubClock: Sendable {
    func now() -> Double
    /// Returns at `time` or later; throws when the task is cancelled.
    func sleep(until time: Double) async throws
}

/// The system's clock.
public struct SystemClock: HubClock {
    public init() {}
    public func now() -> Double { Date().timeIntervalSince1970 }
    public func sleep(until time: Double) async throws {
        let seconds = time - now()
        if seconds > 0 { try await Task.sleep(nanoseconds: UInt64(seconds * 1e9)) }
    }
}

/// A clock that moves only when told to: sleepers wake when `advance(to:)` passes their time.
public final class ManualClock: HubClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Double
    private var sleepers: [(time: Double, continuation: CheckedContinuation<Void, any Error>)] = []

    public init(now: Double) { current = now }

    public func now() -> Double {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    /// How many tasks are sleeping on this clock (tests wait for the scheduler to be asleep).
    public var sleeperCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return sleepers.count
    }

    public func advance(to time: Double) {
        lock.lock()
        current = max(current, time)
        let woken = sleepers.filter { $0.time <= current }
        sleepers.removeAll { $0.time <= current }
        lock.unlock()
        for sleeper in woken { sleeper.continuation.resume() }
    }

    public func sleep(until time: Double) async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                lock.lock()
                if time <= current || Task.isCancelled {
                    lock.unlock()
                    if Task.isCancelled { continuation.resume(throwing: CancellationError()) } else { continuation.resume() }
                    return
                }
                sleepers.append((time, continuation))
                lock.unlock()
            }
        } onCancel: {
            lock.lock()
            let cancelled = sleepers
            sleepers.removeAll()
            lock.unlock()
            for sleeper in cancelled { sleeper.continuation.resume(throwing: CancellationError()) }
        }
    }
}
