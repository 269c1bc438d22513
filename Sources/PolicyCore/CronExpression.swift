/// A five-field cron expression (minute hour day-of-month month day-of-week), evaluated in UTC:
/// `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`; day-of-week 0-7 (0 and 7 are
/// Sunday). When both day fields are restricted a day matches either, as in Vixie cron.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let domRestricted: Bool
    let dowRestricted: Bool
    public let description: String

    /// Parses `text`; throws a message naming the bad field.
    public init(_ text: String) throws(CronError) {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else { throw CronError(message: "'\(text)' has \(fields.count) fields; cron needs 5 (minute hour day month weekday)") }
        minutes = try CronExpression.field(fields[0], name: "minute", range: 0...59)
        hours = try CronExpression.field(fields[1], name: "hour", range: 0...23)
        daysOfMonth = try CronExpression.field(fields[2], name: "day of month", range: 1...31)
        months = try CronExpression.field(fields[3], name: "month", range: 1...12)
        daysOfWeek = Set(try CronExpression.field(fields[4], name: "day of week", range: 0...7).map { $0 % 7 })
        domRestricted = fields[2] != "*"
        dowRestricted = fields[4] != "*"
        description = text
    }

    static func field(_ text: String, name: String, range: ClosedRange<Int>) throws(CronError) -> Set<Int> {
        var out = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw CronError(message: "bad \(name) '\(part)'") }
            var step = 1
            if pieces.count == 2 {
                guard let parsed = Int(pieces[1]), parsed > 0 else { throw CronError(message: "bad step in \(name) '\(part)'") }
                step = parsed
            }
            let span: ClosedRange<Int>
            if pieces[0] == "*" {
                span = range
            } else {
                let bounds = pieces[0].split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2, let low = Int(bounds[0]), let high = Int(bounds.count == 2 ? bounds[1] : bounds[0]),
                      range.contains(low), range.contains(high), low <= high else {
                    throw CronError(message: "\(name) '\(part)' is outside \(range.lowerBound)-\(range.upperBound)")
                }
                span = low...(pieces.count == 2 && bounds.count == 1 ? range.upperBound : high)
            }
            for value in stride(from: span.lowerBound, through: span.upperBound, by: step) { out.insert(value) }
        }
        return out
    }

    func matches(day: Int) -> Bool {
        let date = CivilDate(days: day)
        guard months.contains(date.month) else { return false }
        let weekday = ((day % 7) + 11) % 7  // 1970-01-01 was a Thursday (4)
        switch (domRestricted, dowRestricted) {
        case (true, true): return daysOfMonth.contains(date.day) || daysOfWeek.contains(weekday)
        case (true, false): return daysOfMonth.contains(date.day)
        case (false, true): return daysOfWeek.contains(weekday)
        case (false, false): return true
        }
    }

    /// The first time strictly after `time` (seconds since 1970, UTC) that the expression fires, within
    /// eight years; nil when it never does (such as 31 February).
    public func next(after time: Double) -> Double? {
        let start = Int((time / 60).rounded(.down)) + 1  // the next whole minute
        var day = start.floorDiv(1440)
        let firstMinute = start - day * 1440
        for offset in 0..<(366 * 8) {
            defer { day += 1 }
            guard matches(day: day) else { continue }
            for hour in hours.sorted() {
                for minute in minutes.sorted() {
                    let inDay = hour * 60 + minute
                    if offset == 0 && inDay < firstMinute { continue }
                    return Double((day * 1440 + inDay) * 60)
                }
            }
        }
        return nil
    }

    /// The last time at or before `time` that the expression fired, within eight years.
    public func previous(atOrBefore time: Double) -> Double? {
        let end = Int((time / 60).rounded(.down))
        var day = end.floorDiv(1440)
        let lastMinute = end - day * 1440
        for offset in 0..<(366 * 8) {
            defer { day -= 1 }
            guard matches(day: day) else { continue }
            for hour in hours.sorted(by: >) {
                for minute in minutes.sorted(by: >) {
                    let inDay = hour * 60 + minute
                    if offset == 0 && inDay > lastMinute { continue }
                    return Double((day * 1440 + inDay) * 60)
                }
            }
        }
        return nil
    }
}

/// A bad cron expression, in words.
public struct CronError: Error, Sendable, Equatable {
    public var message: String
}

/// A calendar date from days since 1970-01-01 (proleptic Gregorian, Howard Hinnant's algorithm).
struct CivilDate {
    var year: Int
    var month: Int
    var day: Int

    init(days: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = doy - (153 * mp + 2) / 5 + 1
        month = mp < 10 ? mp + 3 : mp - 9
        year = yoe + era * 400 + (month <= 2 ? 1 : 0)
    }
}

extension Int {
    func floorDiv(_ divisor: Int) -> Int {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }
}
