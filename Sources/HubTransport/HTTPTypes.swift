/// One HTTP request.
public struct HTTPRequest: Sendable, Hashable {
    public var method: String
    public var url: String
    public var headers: [HTTPHeader]
    public var body: [UInt8]?
    /// When the whole exchange, retries included, must be over (seconds since 1970); nil: only the
    /// transport's own timeouts apply.
    public var deadline: Double?
    /// Whose request this is (a cluster's name), for the transport's `ActivityBoard`; nil: nobody's.
    public var tag: String?

    public init(method: String, url: String, headers: [HTTPHeader] = [], body: [UInt8]? = nil, deadline: Double? = nil,
                tag: String? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.deadline = deadline
        self.tag = tag
    }
}

/// A header name and value.
public struct HTTPHeader: Sendable, Hashable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// One HTTP response.
public struct HTTPResponse: Sendable, Hashable {
    public var status: Int
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// How many attempts it took (1 without retries).
    public var attempts: Int

    public init(status: Int, headers: [HTTPHeader], body: [UInt8], attempts: Int = 1) {
        self.status = status
        self.headers = headers
        self.body = body
        self.attempts = attempts
    }

    /// The first header of that name, compared without case.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// TLS for one endpoint. Verification is on unless `verifyPeer` is set false on purpose.
public struct TLSSettings: Sendable, Hashable {
    public var verifyPeer = true
    /// Trusted CA certificates, PEM, from memory or from a file.
    public var caPEM: [UInt8]?
    public var caFile: String?
    /// A client certificate and key, PEM, from memory or from files.
    public var clientCertificatePEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?
    public var clientCertificateFile: String?
    public var clientKeyFile: String?
    /// `HOST:PORT:REALHOST:REALPORT` entries (libcurl's CONNECT_TO): how `tls-server-name` is honoured,
    /// by putting that name in the URL and connecting to the real address.
    public var connectTo: [String] = []
    /// A proxy for this destination (kubeconfig `proxy-url`: `http://`, `https://` or `socks5://`); nil:
    /// libcurl's default (the `https_proxy`/`no_proxy` environment, as client-go does).
    public var proxy: String?
    /// Ask for gzip (`Accept-Encoding`); off for a kubeconfig with `disable-compression: true`.
    public var compression = true

    public init() {}
}

/// Timeouts, retries and the bound on transfers in flight.
public struct TransportSettings: Sendable, Hashable {
    public var connectTimeout: Double = 10
    public var totalTimeout: Double = 60
    /// Attempts per request, the first included, for connection errors, 429 and 5xx.
    public var maxAttempts = 4
    /// First backoff delay in seconds, doubled each retry, capped by `maxDelay`; `Retry-After` wins when sent.
    public var baseDelay: Double = 0.2
    public var maxDelay: Double = 10
    /// Transfers running at once; more wait in a queue.
    public var maxInFlight = 64
    public var userAgent = "policyhub/0.1"
    /// The largest response body accepted, counted both as received and as decoded (gzip): larger answers
    /// fail that request. Sized for the largest legitimate list of NeuVector objects of one kind.
    public var maxResponseBytes = 64 << 20
    /// The largest total of response header bytes accepted.
    public var maxHeaderBytes = 128 << 10

    public init() {}
}

/// A transfer that produced no HTTP response, with the URL and libcurl's own words.
public enum TransportError: Error, Sendable, Hashable, CustomStringConvertible {
    case connection(url: String, message: String)
    case timeout(url: String, message: String)
    case tls(url: String, message: String)
    /// The answer broke a bound (body or header size) or the request would not go where it was built to go.
    case refused(url: String, message: String)
    case other(url: String, message: String)

    public var description: String {
        switch self {
        case .connection(let url, let message): return "cannot connect to \(url): \(message)"
        case .timeout(let url, let message): return "timed out talking to \(url): \(message)"
        case .tls(let url, let message): return "TLS failure with \(url): \(message)"
        case .refused(let url, let message): return "refused \(url): \(message)"
        case .other(let url, let message): return "request to \(url) failed: \(message)"
        }
    }

    /// libcurl's words alone, without the URL (a progress line names the cluster already).
    public var reason: String {
        switch self {
        case .connection(_, let message), .timeout(_, let message), .tls(_, let message), .refused(_, let message),
             .other(_, let message):
            return message
        }
    }

    /// Whether another attempt may succeed.
    var isTransient: Bool {
        switch self {
        case .connection, .timeout: return true
        case .tls, .refused, .other: return false
        }
    }
}

/// Sends HTTP requests (the seam members talk through).
public protocol HTTPTransport: Sendable {
    func send(_ request: HTTPRequest, tls: TLSSettings) async -> Result<HTTPResponse, TransportError>

    /// A long answer read as it arrives (a Kubernetes watch): the body of a 2xx answer goes to `receive` piece by
    /// piece, on the transport's own thread (so `receive` must be quick), and is not kept; any other answer's
    /// body is kept in the response, bounded as `send` bounds it. Not retried; it ends at the request's
    /// deadline (nil: none), when the server closes it, or when the calling task is cancelled.
    func stream(_ request: HTTPRequest, tls: TLSSettings, receive: @escaping @Sendable ([UInt8]) -> Void) async
        -> Result<HTTPResponse, TransportError>
}
