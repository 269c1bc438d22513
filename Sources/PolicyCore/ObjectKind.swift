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

extension ObjectIdentity {
    /// The identity of an object a member listed, or why the hub must not act on it: its name must be a DNS-1123
    /// subdomain and, for a namespaced kind, its namespace a DNS-1123 label (what the API server itself
    /// enforces), because these words go into request paths sent with the hub's credentials.
    public static func listed(kind: ObjectKind, namespace: String?, name: String) -> Result<ObjectIdentity, ListedNameProblem> {
        let namespace = namespace ?? ""
        let nameOK = NeuVectorNames.isDNS1123Subdomain(name)
        let namespaceOK = kind.isNamespaced ? NeuVectorNames.isDNS1123Label(namespace) : namespace.isEmpty
        guard nameOK && namespaceOK else { return .failure(ListedNameProblem(kind: kind, namespace: namespace, name: name)) }
        return .success(ObjectIdentity(kind: kind, namespace: namespace, name: name))
    }
}

/// An object a member listed under a name or namespace that is not a valid Kubernetes name: reported, never
/// acted on (no request is ever built from it).
public struct ListedNameProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var kind: ObjectKind
    public var namespace: String
    public var name: String

    public var description: String {
        let place = namespace.isEmpty ? "" : " in namespace \(ListedNameProblem.quoted(namespace))"
        return "the member listed a \(kind.rawValue) named \(ListedNameProblem.quoted(name))\(place), which is not a valid Kubernetes name; it was not acted on"
    }

    /// A member's words, printable: quoted, control characters escaped, at most 120 characters.
    static func quoted(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(120) {
            if scalar.value < 0x20 || scalar.value == 0x7f || scalar == "'" || scalar == "\\" {
                out += scalar.escaped(asASCII: true)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return "'" + out + (text.unicodeScalars.count > 120 ? "…" : "") + "'"
    }
}
