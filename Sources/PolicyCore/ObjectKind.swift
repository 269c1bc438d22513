/// The NeuVector custom resource kinds the hub understands (API group `neuvector.com`, version `v1`).
public enum ObjectKind: String, Sendable, Hashable, CaseIterable, Comparable {
    case clusterSecurityRule = "NvClusterSecurityRule"
    case securityRule = "NvSecurityRule"
    case groupDefinition = "NvGroupDefinition"
    case admissionControl = "NvAdmissionControlSecurityRule"
    case dlp = "NvDlpSecurityRule"
    case waf = "NvWafSecurityRule"
    case responseRule = "NvResponseRuleSecurityRule"
    case vulnerabilityProfile = "NvVulnerabilityProfile"
    case complianceProfile = "NvComplianceProfile"

    /// The API version every NeuVector kind is served under.
    public static let apiVersion = "neuvector.com/v1"

    /// Whether objects of this kind live in a namespace.
    public var isNamespaced: Bool {
        switch self {
        case .securityRule, .groupDefinition: return true
        case .clusterSecurityRule, .admissionControl, .dlp, .waf, .responseRule, .vulnerabilityProfile,
             .complianceProfile:
            return false
        }
    }

    /// The resource name in API paths.
    public var plural: String { rawValue.lowercased() + "s" }

    /// Whether the kind carries a network/process/file rule spec that the hub merges.
    public var isSecurityRule: Bool {
        switch self {
        case .securityRule, .clusterSecurityRule: return true
        case .groupDefinition, .admissionControl, .dlp, .waf, .responseRule, .vulnerabilityProfile,
             .complianceProfile:
            return false
        }
    }

    public static func < (a: ObjectKind, b: ObjectKind) -> Bool { a.rawValue < b.rawValue }
}

/// The identity of an object on a cluster: kind, namespace (empty for cluster-scoped kinds) and name.
public struct ObjectIdentity: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var kind: ObjectKind
    public var namespace: String
    public var name: String

    public init(kind: ObjectKind, namespace: String, name: String) {
        self.kind = kind
        self.namespace = kind.isNamespaced ? namespace : ""
        self.name = name
    }

    /// `KIND/NAMESPACE/NAME`, with an empty namespace for cluster-scoped kinds.
    public var description: String { "\(kind.rawValue)/\(namespace)/\(name)" }

    public static func < (a: ObjectIdentity, b: ObjectIdentity) -> Bool {
        (a.kind.rawValue, a.namespace, a.name) < (b.kind.rawValue, b.namespace, b.name)
    }
}
