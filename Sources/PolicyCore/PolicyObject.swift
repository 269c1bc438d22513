/// Kubernetes object metadata, as far as the hub reads it.
public struct ObjectMeta: Sendable, Hashable {
    public var name: String
    public var namespace: String?
    public var labels: [String: String]
    public var annotations: [String: String]
    /// Where `name`, `namespace`, `labels` and `annotations` were written (for errors at the exact node).
    public var origin: Origin = .generated
    /// Where each annotation's value was written, by annotation key.
    public var annotationOrigin: Origin = .generated

    public init(name: String, namespace: String? = nil, labels: [String: String] = [:],
                annotations: [String: String] = [:]) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
    }

    /// The position of a metadata field's value, or of `fallback` when it was not read from a file.
    public func at(_ field: String, or fallback: SourceLocation) -> SourceLocation {
        origin.fields.contains { $0.name == field } ? origin.at(field) : fallback
    }

    /// The position of an annotation's value, or of `fallback`.
    public func annotationAt(_ key: String, or fallback: SourceLocation) -> SourceLocation {
        annotationOrigin.fields.contains { $0.name == key } ? annotationOrigin.at(key) : fallback
    }
}

/// One NeuVector object read from the policy repository.
public struct PolicyObject: Sendable, Hashable {
    /// The body of an object: a security rule spec the hub merges, or any other kind kept as written.
    public enum Body: Sendable, Hashable {
        case securityRule(SecurityRuleSpec)
        /// An admission control spec, compiled per cluster into `local` (SEMANTICS §3.9).
        case admission(AdmissionSpec)
        /// The object's `spec` (or `.null` when it has none), passed through unchanged.
        case opaque(Value)
    }

    public var apiVersion: String
    public var kind: ObjectKind
    public var metadata: ObjectMeta
    public var body: Body
    public var origin: Origin

    public init(apiVersion: String = ObjectKind.apiVersion, kind: ObjectKind, metadata: ObjectMeta, body: Body,
                origin: Origin = .generated) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.metadata = metadata
        self.body = body
        self.origin = origin
    }

    public var identity: ObjectIdentity {
        ObjectIdentity(kind: kind, namespace: metadata.namespace ?? "", name: metadata.name)
    }

    /// The security rule spec, for the kinds that have one.
    public var securityRule: SecurityRuleSpec? {
        if case .securityRule(let spec) = body { return spec }
        return nil
    }

    /// The admission spec, for `NvAdmissionControlSecurityRule`.
    public var admission: AdmissionSpec? {
        if case .admission(let spec) = body { return spec }
        return nil
    }
}

/// Allow or deny, for network and process rules and sensors.
public enum RuleAction: String, Sendable, Hashable, CaseIterable {
    case allow
    case deny

    public var opposite: RuleAction {
        switch self {
        case .allow: return .deny
        case .deny: return .allow
        }
    }
}

/// NeuVector's policy modes, in order of strictness.
public enum PolicyMode: String, Sendable, Hashable, CaseIterable, Comparable {
    case discover = "Discover"
    case monitor = "Monitor"
    case protect = "Protect"

    var rank: Int {
        switch self {
        case .discover: return 0
        case .monitor: return 1
        case .protect: return 2
        }
    }

    public static func < (a: PolicyMode, b: PolicyMode) -> Bool { a.rank < b.rank }
}

/// The `policymode` field of a target as written: a mode, or `N/A`/empty for groups without one.
public enum PolicyModeSetting: Sendable, Hashable {
    case mode(PolicyMode)
    case notApplicable

    public var text: String {
        switch self {
        case .mode(let m): return m.rawValue
        case .notApplicable: return "N/A"
        }
    }
}

/// The `spec` of an `NvSecurityRule` or `NvClusterSecurityRule`.
public struct SecurityRuleSpec: Sendable, Hashable {
    public var target: Target
    public var ingress: [NetworkRule]
    public var egress: [NetworkRule]
    public var process: [ProcessRule]
    public var file: [FileRule]
    public var processProfile: ProcessProfile?
    public var dlp: SensorSettings?
    public var waf: SensorSettings?
    /// Response rules inside the spec, passed through unchanged.
    public var response: [Value]?

    public init(target: Target, ingress: [NetworkRule] = [], egress: [NetworkRule] = [],
                process: [ProcessRule] = [], file: [FileRule] = [], processProfile: ProcessProfile? = nil,
                dlp: SensorSettings? = nil, waf: SensorSettings? = nil, response: [Value]? = nil) {
        self.target = target
        self.ingress = ingress
        self.egress = egress
        self.process = process
        self.file = file
        self.processProfile = processProfile
        self.dlp = dlp
        self.waf = waf
        self.response = response
    }
}

/// The group a rule document protects, and its policy mode.
public struct Target: Sendable, Hashable {
    public var policyMode: PolicyModeSetting?
    public var selector: GroupSelector
    public var origin: Origin

    public init(policyMode: PolicyModeSetting? = nil, selector: GroupSelector, origin: Origin = .generated) {
        self.policyMode = policyMode
        self.selector = selector
        self.origin = origin
    }
}

/// A NeuVector group: a name and the criteria that select workloads.
public struct GroupSelector: Sendable, Hashable {
    public var name: String
    public var originalName: String?
    public var comment: String?
    public var nameReferral: Bool?
    public var criteria: [Criterion]
    public var monMetric: Bool?
    public var grpSessCur: Int?
    public var grpSessRate: Int?
    public var grpBandWidth: Int?
    public var origin: Origin

    public init(name: String, criteria: [Criterion] = [], originalName: String? = nil, comment: String? = nil,
                nameReferral: Bool? = nil, origin: Origin = .generated) {
        self.name = name
        self.criteria = criteria
        self.originalName = originalName
        self.comment = comment
        self.nameReferral = nameReferral
        self.origin = origin
    }
}

/// The operators NeuVector accepts in group criteria.
public enum CriterionOp: String, Sendable, Hashable, CaseIterable {
    case equal = "="
    case notEqual = "!="
    case contains
    case prefix
    case regex
    case notRegex = "!regex"

    /// Negative operators are AND'd with each other; positive ones are OR'd (NeuVector's matching).
    public var isNegative: Bool {
        switch self {
        case .notEqual, .notRegex: return true
        case .equal, .contains, .prefix, .regex: return false
        }
    }
}

/// One criterion of a group: `key op value`.
public struct Criterion: Sendable, Hashable {
    public var key: String
    public var op: CriterionOp
    public var value: String
    public var origin: Origin

    public init(_ key: String, _ op: CriterionOp, _ value: String, origin: Origin = .generated) {
        self.key = key
        self.op = op
        self.value = value
        self.origin = origin
    }
}

/// An ingress or egress rule.
public struct NetworkRule: Sendable, Hashable {
    public var name: String
    public var selector: GroupSelector
    public var applications: [String]
    public var ports: String?
    public var action: RuleAction
    public var priority: Int?
    public var origin: Origin

    public init(name: String, selector: GroupSelector, action: RuleAction, applications: [String] = [],
                ports: String? = nil, priority: Int? = nil, origin: Origin = .generated) {
        self.name = name
        self.selector = selector
        self.action = action
        self.applications = applications
        self.ports = ports
        self.priority = priority
        self.origin = origin
    }
}

/// A process rule: allow or deny a process by name and path.
public struct ProcessRule: Sendable, Hashable {
    public var name: String
    public var path: String
    public var action: RuleAction
    public var allowUpdate: Bool?
    public var origin: Origin

    public init(name: String, path: String, action: RuleAction, allowUpdate: Bool? = nil, origin: Origin = .generated) {
        self.name = name
        self.path = path
        self.action = action
        self.allowUpdate = allowUpdate
        self.origin = origin
    }
}

/// What a file rule does on access.
public enum FileBehavior: String, Sendable, Hashable, CaseIterable {
    case monitorChange = "monitor_change"
    case blockAccess = "block_access"
}

/// A file rule: monitor or block access to files matching a filter.
public struct FileRule: Sendable, Hashable {
    public var filter: String
    public var recursive: Bool
    public var behavior: FileBehavior
    public var app: [String]
    public var origin: Origin

    public init(filter: String, behavior: FileBehavior, recursive: Bool = false, app: [String] = [],
                origin: Origin = .generated) {
        self.filter = filter
        self.behavior = behavior
        self.recursive = recursive
        self.app = app
        self.origin = origin
    }
}

/// `process_profile`: the process baseline and, since 5.4.1, a mode for process/file profiles.
public struct ProcessProfile: Sendable, Hashable {
    public var baseline: String?
    public var mode: String?
    public var origin: Origin

    public init(baseline: String? = nil, mode: String? = nil, origin: Origin = .generated) {
        self.baseline = baseline
        self.mode = mode
        self.origin = origin
    }
}

/// `dlp` or `waf` on a group: whether sensors are on, and which with what action.
public struct SensorSettings: Sendable, Hashable {
    public struct Setting: Sendable, Hashable {
        public var name: String
        public var action: RuleAction
        public var origin: Origin
        public init(name: String, action: RuleAction, origin: Origin = .generated) {
            self.name = name
            self.action = action
            self.origin = origin
        }
    }

    public var status: Bool
    public var settings: [Setting]

    public init(status: Bool, settings: [Setting]) {
        self.status = status
        self.settings = settings
    }
}
