/// The traffic a rule's `ports` field selects, normalised as NeuVector does.
public struct PortSet: Sendable, Hashable, CustomStringConvertible {
    public enum Proto: String, Sendable, Hashable, CaseIterable {
        case tcp, udp
    }

    /// A closed range of ports of one protocol.
    public struct Range: Sendable, Hashable {
        public var proto: Proto
        public var low: Int
        public var high: Int
    }

    /// True for `any`: every protocol and port.
    public var any: Bool
    public var icmp: Bool
    /// Disjoint, sorted ranges.
    public var ranges: [Range]

    public static let all = PortSet(any: true, icmp: true, ranges: [])

    init(any: Bool, icmp: Bool, ranges: [Range]) {
        self.any = any
        self.icmp = icmp
        self.ranges = any ? [] : PortSet.normalise(ranges)
    }

    /// Parses `any`, `tcp/any`, `udp/any`, `icmp`, `80` (tcp), `8500-8508`, `tcp/80`, `UDP/53`, separated by
    /// commas or spaces. Empty or absent means any. Returns an error message for malformed text.
    public static func parse(_ text: String?) -> Result<PortSet, PortSetError> {
        guard let text, !text.trimmingSpaces.isEmpty else { return .success(.all) }
        var ranges: [Range] = []
        var icmp = false
        let items = text.split { $0 == "," || $0 == " " }
        for item in items {
            let lower = item.lowercased()
            if lower == "any" { return .success(.all) }
            if lower == "icmp" {
                icmp = true
                continue
            }
            var proto = Proto.tcp
            var rest = Substring(lower)
            if let slash = lower.firstIndex(of: "/") {
                guard let p = Proto(rawValue: String(lower[..<slash])) else {
                    return .failure(PortSetError(message: "unknown protocol in '\(item)'; use tcp/ or udp/"))
                }
                proto = p
                rest = lower[lower.index(after: slash)...]
            }
            if rest == "any" {
                ranges.append(Range(proto: proto, low: 0, high: 65535))
                continue
            }
            let bounds = rest.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count <= 2, let low = Int(bounds[0]), let high = Int(bounds.last ?? bounds[0]),
                  low >= 0, high <= 65535, low <= high else {
                return .failure(PortSetError(message: "'\(item)' is not a port, a range such as 8500-8508, or any"))
            }
            ranges.append(Range(proto: proto, low: low, high: high))
        }
        return .success(PortSet(any: false, icmp: icmp, ranges: ranges))
    }

    static func normalise(_ ranges: [Range]) -> [Range] {
        let sorted = ranges.sorted { ($0.proto.rawValue, $0.low, $0.high) < ($1.proto.rawValue, $1.low, $1.high) }
        var out: [Range] = []
        for r in sorted {
            if let last = out.last, last.proto == r.proto, r.low <= last.high + 1 {
                out[out.count - 1].high = max(last.high, r.high)
            } else {
                out.append(r)
            }
        }
        return out
    }

    /// Whether every port `other` selects is selected by this set.
    public func isSuperset(of other: PortSet) -> Bool {
        if any { return true }
        if other.any { return false }
        if other.icmp && !icmp { return false }
        return other.ranges.allSatisfy { r in
            ranges.contains { $0.proto == r.proto && $0.low <= r.low && r.high <= $0.high }
        }
    }

    /// Whether the set selects `port` of `proto` (nil port: ICMP).
    public func contains(proto: Proto?, port: Int?) -> Bool {
        if any { return true }
        guard let proto, let port else { return icmp }
        return ranges.contains { $0.proto == proto && $0.low <= port && port <= $0.high }
    }

    /// Normalised text, e.g. `tcp/22,udp/53`.
    public var description: String {
        if any { return "any" }
        var parts = ranges.map { r in
            r.low == 0 && r.high == 65535 ? "\(r.proto.rawValue)/any"
                : r.low == r.high ? "\(r.proto.rawValue)/\(r.low)" : "\(r.proto.rawValue)/\(r.low)-\(r.high)"
        }
        if icmp { parts.append("icmp") }
        return parts.joined(separator: ",")
    }
}

/// A malformed `ports` field.
public struct PortSetError: Error, Sendable, Equatable {
    public var message: String
}

/// The applications a rule selects: any, or a set of NeuVector application names.
public struct ApplicationSet: Sendable, Hashable {
    /// NeuVector's application names (`common.AppNameMap`), in their canonical spelling.
    public static let known: [String] = [
        "HTTP", "SSL", "SSH", "DNS", "DHCP", "NTP", "TFTP", "Echo", "RTSP", "SIP", "MySQL", "Redis", "ZooKeeper",
        "Cassandra", "MongoDB", "PostgreSQL", "Kafka", "Couchbase", "Wordpress", "ActiveMQ", "CouchDB",
        "ElasticSearch", "Memcached", "RabbitMQ", "Radius", "VoltDB", "Consul", "Syslog", "etcd", "Spark", "Apache",
        "nginx", "Jetty", "Oracle", "MSSQL", "GRPC",
    ]
    static let byLowercase: [String: String] = Dictionary(uniqueKeysWithValues: known.map { ($0.lowercased(), $0) })

    public var any: Bool
    public var names: Set<String>

    public static let all = ApplicationSet(any: true, names: [])

    /// The canonical spelling of an application name, or nil when NeuVector does not know it.
    public static func canonicalName(_ name: String) -> String? { byLowercase[name.lowercased()] }

    /// The set a rule's `applications` list selects; unknown names are left out (validation reports them).
    public init(_ list: [String]) {
        if list.isEmpty || list.contains(where: { $0.lowercased() == "any" }) {
            self = .all
            return
        }
        self.any = false
        self.names = Set(list.compactMap(ApplicationSet.canonicalName))
    }

    init(any: Bool, names: Set<String>) {
        self.any = any
        self.names = names
    }

    public func isSuperset(of other: ApplicationSet) -> Bool {
        if any { return true }
        if other.any { return false }
        return other.names.isSubset(of: names)
    }

    public func contains(_ app: String?) -> Bool {
        if any { return true }
        guard let app, let name = ApplicationSet.canonicalName(app) else { return false }
        return names.contains(name)
    }
}

extension String {
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
