import Foundation
import HubTransport
import PolicyCore

/// Posts a JSON summary of a drift report with new findings to the configured URL, through the
/// project's libcurl transport (which retries connection errors, 429 and 5xx with backoff).
public struct Webhook: Sendable {
    public var url: String
    public var tls: TLSSettings
    /// Sent as `Authorization: Bearer ...` when set; never logged.
    public var bearerToken: String?

    public init(url: String, tls: TLSSettings = TLSSettings(), bearerToken: String? = nil) {
        self.url = url
        self.tls = tls
        self.bearerToken = bearerToken
    }

    /// The summary a receiver gets: counts and the new findings (at most 100).
    public static func summary(of run: DriftRun) -> Value {
        var newFindings: [Value] = []
        if case .list(let findings)? = run.report["findings"] {
            newFindings = findings.filter { $0["new"] == .bool(true) }
        }
        return .map([
            Value.MapEntry("event", .string(run.repaired.isEmpty ? "drift-report" : "self-heal")),
            Value.MapEntry("repaired", .list(run.repaired.map(Value.string))),
            Value.MapEntry("at", run.report["at"] ?? .null),
            Value.MapEntry("driftFindings", .int(run.driftFindings)),
            Value.MapEntry("newFindings", .int(run.newFindings)),
            Value.MapEntry("findings", .list(Array(newFindings.prefix(100)))),
        ])
    }

    /// Delivers `body`; returns nil on a 2xx answer, otherwise what went wrong (the URL, not the token).
    public func deliver(_ body: Value, transport: CurlTransport) async -> String? {
        var headers = [HTTPHeader("Content-Type", "application/json")]
        if let bearerToken { headers.append(HTTPHeader("Authorization", "Bearer \(bearerToken)")) }
        let request = HTTPRequest(method: "POST", url: url, headers: headers, body: JSONWriter.compactBytes(body))
        switch await transport.send(request, tls: tls) {
        case .success(let response) where (200..<300).contains(response.status): return nil
        case .success(let response): return "webhook \(url) answered \(response.status) after \(response.attempts) attempt(s)"
        case .failure(let error): return "webhook: \(error)"
        }
    }
}
