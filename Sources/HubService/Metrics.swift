import CoreMetrics
import Foundation
import Prometheus

/// The daemon's counters, gauges and request-latency histograms, kept through apple/swift-metrics on a
/// swift-prometheus registry of its own, and written in the Prometheus text format at /metrics.
public final class HubMetrics: @unchecked Sendable {
    /// The registry /metrics writes out.
    public let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let lock = NSLock()
    private var counters: [String: CoreMetrics.Counter] = [:]
    private var gauges: [String: CoreMetrics.Gauge] = [:]
    private var timers: [String: CoreMetrics.Timer] = [:]
    /// Counter values as counted here, for `value` (the registry is write-only).
    private var values: [String: Double] = [:]

    static let requestDuration = "policyhub_http_request_duration_seconds"
    static let buckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[HubMetrics.requestDuration] =
            HubMetrics.buckets.map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }
        self.factory = factory
    }

    static func key(_ name: String, _ labels: [(String, String)]) -> String {
        name + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    /// Adds `amount` (a whole number of events) to a counter.
    public func increment(_ name: String, labels: [(String, String)] = [], by amount: Double = 1) {
        let key = HubMetrics.key(name, labels)
        let counter = lock.withLock { () -> CoreMetrics.Counter in
            values[key, default: 0] += amount
            if let known = counters[key] { return known }
            let made = CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
            counters[key] = made
            return made
        }
        counter.increment(by: Int64(amount.rounded()))
    }

    /// Sets a gauge.
    public func set(_ name: String, labels: [(String, String)] = [], _ value: Double) {
        let key = HubMetrics.key(name, labels)
        let gauge = lock.withLock { () -> CoreMetrics.Gauge in
            values[key] = value
            if let known = gauges[key] { return known }
            let made = CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
            gauges[key] = made
            return made
        }
        gauge.record(value)
    }

    /// Records one API request: its count by route, method and status, and its latency by route.
    public func observeRequest(route: String, method: String, status: Int, seconds: Double) {
        increment("policyhub_http_requests_total", labels: [("route", route), ("method", method), ("status", String(status))])
        let key = HubMetrics.key(HubMetrics.requestDuration, [("route", route)])
        let timer = lock.withLock { () -> CoreMetrics.Timer in
            if let known = timers[key] { return known }
            let made = CoreMetrics.Timer(label: HubMetrics.requestDuration, dimensions: [("route", route)], factory: factory)
            timers[key] = made
            return made
        }
        timer.recordNanoseconds(Int64((seconds * 1e9).rounded()))
    }

    /// The outcome of each cluster's push (`policyhub_cluster_pushes_total{cluster, result}`).
    public func recordPushes(_ outcomes: [(cluster: String, ok: Bool)]) {
        var ok = 0
        var failed = 0
        for outcome in outcomes {
            increment("policyhub_cluster_pushes_total", labels: [("cluster", outcome.cluster), ("result", outcome.ok ? "ok" : "failed")])
            if outcome.ok { ok += 1 } else { failed += 1 }
        }
        increment("policyhub_pushes_total", labels: [("result", "ok")], by: Double(ok))
        increment("policyhub_pushes_total", labels: [("result", "failed")], by: Double(failed))
    }

    /// The current value of a counter or gauge as counted here (tests).
    public func value(_ name: String, labels: [(String, String)] = []) -> Double {
        lock.withLock { values[HubMetrics.key(name, labels)] ?? 0 }
    }

    /// Everything, in the Prometheus text exposition format.
    public func exposition() -> String {
        registry.emitToString()
    }
}
