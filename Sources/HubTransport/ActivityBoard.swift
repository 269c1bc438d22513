import Foundation

/// What each member of a run is doing now, for progress that never goes quiet: the push marks a cluster
/// started and finished, the transport and the member note each retry they schedule, and `due` says, for
/// every cluster that has been quiet for a while, what it is waiting for ("retrying 2/4 after ...,
/// next in 4 s", "waiting for an answer, 12 s so far"). Keyed by `HTTPRequest.tag` (the cluster's name).
public final class ActivityBoard: @unchecked Sendable {
    struct Entry {
        var started: Double
        var deadline: Double?
        var lastShown: Double
        var retry: (attempt: Int, of: Int, reason: String, next: Double)?
    }

    private let lock = NSLock()
    private var running: [String: Entry] = [:]
    private var gates: [UUID: @Sendable (String) -> String?] = [:]

    public init() {}

    /// Adds a gate that every request of a tag passes before it is sent: a reason refuses it (a replica
    /// whose claim on a cluster lapsed sends nothing more to it). Returns the key that removes it.
    public func addGate(_ gate: @escaping @Sendable (String) -> String?) -> UUID {
        let key = UUID()
        lock.withLock { gates[key] = gate }
        return key
    }

    public func removeGate(_ key: UUID) {
        _ = lock.withLock { gates.removeValue(forKey: key) }
    }

    /// Why a request of `tag` may not be sent now, or nil.
    public func refusal(_ tag: String) -> String? {
        let all = lock.withLock { Array(gates.values) }
        return all.lazy.compactMap { $0(tag) }.first
    }

    /// `tag` started; it gives up at `deadline` (seconds since 1970), if it has one.
    public func started(_ tag: String, deadline: Double? = nil, at now: Double = Date().timeIntervalSince1970) {
        lock.withLock { running[tag] = Entry(started: now, deadline: deadline, lastShown: now) }
    }

    public func finished(_ tag: String) {
        _ = lock.withLock { running.removeValue(forKey: tag) }
    }

    /// A retry of one of `tag`'s requests is scheduled: attempt `attempt` of `of`, after `reason`, sent at `next`.
    public func retrying(_ tag: String, attempt: Int, of: Int, after reason: String, next: Double) {
        lock.withLock {
            guard running[tag] != nil else { return }
            running[tag]?.retry = (attempt, of, reason, next)
        }
    }

    /// The tags still running, by name.
    public var stillRunning: [String] { lock.withLock { running.keys.sorted() } }

    /// One line for each tag quiet for `every` seconds or more (since it started or since its last line),
    /// the first `limit` by name and a count of the rest; each one shown is then quiet again from `now`.
    public func due(every: Double, limit: Int = 5, at now: Double = Date().timeIntervalSince1970) -> [String] {
        lock.withLock {
            let quiet = running.filter { now - $0.value.lastShown >= every }.keys.sorted()
            var lines: [String] = []
            for tag in quiet.prefix(limit) {
                guard let entry = running[tag] else { continue }
                running[tag]?.lastShown = now
                let since = Int((now - entry.started).rounded())
                var line: String
                if let retry = entry.retry, retry.next > now {
                    line = "\(tag): retrying \(retry.attempt)/\(retry.of) after \(retry.reason), next in \(Int((retry.next - now).rounded(.up))) s"
                } else if let retry = entry.retry {
                    line = "\(tag): waiting for an answer to retry \(retry.attempt)/\(retry.of) (after \(retry.reason)), \(since) s so far"
                } else {
                    line = "\(tag): waiting for an answer, \(since) s so far"
                }
                if let deadline = entry.deadline { line += "; gives up in \(max(0, Int((deadline - now).rounded(.up)))) s" }
                lines.append(line)
            }
            if quiet.count > limit { lines.append("... and \(quiet.count - limit) more clusters still working") }
            return lines
        }
    }
}
