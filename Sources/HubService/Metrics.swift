import Foundation

/// The daemon's counters, gauges and request-latency histograms, written in the Prometheus text format
/// (version 0.0.4) at /metrics.
public final class HubMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var counters: [String: [String: Double]] = [:]
    private var gauges: [String: [String: Double]] = [:]
    private var histograms: [String: Histogram] = [:]
    static let buckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    static let help: [String: (type: String, help: String)] = [
        "policyhub_pushes_total": ("counter", "Cluster pushes by result (ok, failed)."),
        "policyhub_drift_reports_total": ("counter", "Drift reports run, by trigger (schedule, api)."),
        "policyhub_drift_findings": ("gauge", "Drift findings in the latest report."),
        "policyhub_scheduled_jobs_total": ("counter", "Scheduled jobs run, by job and result."),
        "policyhub_webhook_deliveries_total": ("counter", "Webhook deliveries by result."),
        "policyhub_http_requests_total": ("counter", "API requests by route, method and status."),
        "policyhub_http_request_duration_seconds": ("histogram", "API request latency by route."),
    ]

    struct Histogram {
        var counts: [Int] = Array(repeating: 0, count: HubMetrics.buckets.count)
        var sum = 0.0
        var count = 0
    }

    public init() {}

    public func increment(_ name: String, labels: [(String, String)] = [], by amount: Double = 1) {
        let key = HubMetrics.labelText(labels)
        lock.lock()
        counters[name, default: [:]][key, default: 0] += amount
        lock.unlock()
    }

    public func set(_ name: String, labels: [(String, String)] = [], _ value: Double) {
        let key = HubMetrics.labelText(labels)
        lock.lock()
        gauges[name, default: [:]][key] = value
        lock.unlock()
    }

    /// Records one API request.
    public func observeRequest(route: String, method: String, status: Int, seconds: Double) {
        increment("policyhub_http_requests_total", labels: [("route", route), ("method", method), ("status", String(status))])
        lock.lock()
        var histogram = histograms[route] ?? Histogram()
        for (index, bound) in HubMetrics.buckets.enumerated() where seconds <= bound { histogram.counts[index] += 1 }
        histogram.sum += seconds
        histogram.count += 1
        histograms[route] = histogram
        lock.unlock()
    }

    /// The current value of a counter (tests).
    public func value(_ name: String, labels: [(String, String)] = []) -> Double {
        lock.lock()
        defer { lock.unlock() }
        return counters[name]?[HubMetrics.labelText(labels)] ?? gauges[name]?[HubMetrics.labelText(labels)] ?? 0
    }

    /// Everything, in the Prometheus text exposition format.
    public func exposition() -> String {
        lock.lock()
        defer { lock.unlock() }
        var out = ""
        func header(_ name: String) {
            if let meta = HubMetrics.help[name] { out += "# HELP \(name) \(meta.help)\n# TYPE \(name) \(meta.type)\n" }
        }
        for name in Set(counters.keys).union(gauges.keys).sorted() {
            header(name)
            for (labels, value) in (counters[name] ?? gauges[name] ?? [:]).sorted(by: { $0.key < $1.key }) {
                out += "\(name)\(labels) \(HubMetrics.number(value))\n"
            }
        }
        let histogramName = "policyhub_http_request_duration_seconds"
        if !histograms.isEmpty { header(histogramName) }
        for (route, histogram) in histograms.sorted(by: { $0.key < $1.key }) {
            let routeLabel = "route=\"\(HubMetrics.escape(route))\""
            for (index, bound) in HubMetrics.buckets.enumerated() {
                out += "\(histogramName)_bucket{\(routeLabel),le=\"\(HubMetrics.number(bound))\"} \(histogram.counts[index])\n"
            }
            out += "\(histogramName)_bucket{\(routeLabel),le=\"+Inf\"} \(histogram.count)\n"
            out += "\(histogramName)_sum{\(routeLabel)} \(HubMetrics.number(histogram.sum))\n"
            out += "\(histogramName)_count{\(routeLabel)} \(histogram.count)\n"
        }
        return out
    }

    static func labelText(_ labels: [(String, String)]) -> String {
        labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
