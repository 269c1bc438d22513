/// The spec of an `NvAdmissionControlSecurityRule` (NeuVector `api.NvSecurityAdmCtrlSpec`,
/// controller/api/admission_api.go), kept with the positions of its nodes so that every error points at the
/// field that is wrong.
public struct AdmissionSpec: Sendable, Hashable {
    public var config: AdmissionConfig?
    public var rules: [AdmissionRule]

    public init(config: AdmissionConfig? = nil, rules: [AdmissionRule] = []) {
        self.config = config
        self.rules = rules
    }
}

/// `spec.config`: NeuVector's admission control state. All three fields are required when it is present
/// (crdsecurityrule.go `parseCurCrdAdmCtrlContent`).
public struct AdmissionConfig: Sendable, Hashable {
    public var enable: Bool?
    public var mode: String?
    public var clientMode: String?
    public var origin: Origin

    public init(enable: Bool?, mode: String?, clientMode: String?, origin: Origin = .generated) {
        self.enable = enable
        self.mode = mode
        self.clientMode = clientMode
        self.origin = origin
    }
}

/// One admission rule (`api.NvSecurityAdmCtrlRule`).
public struct AdmissionRule: Sendable, Hashable {
    public var id: Int?
    /// `conversion_id_ref`: written by NeuVector's exports, ignored by its importer.
    public var conversionIdRef: Int?
    /// `allow` or `deny` as written (checked by the validator).
    public var action: String?
    public var ruleMode: String?
    public var comment: String?
    public var disabled: Bool?
    public var containers: [String]?
    public var criteria: [AdmissionCriterion]
    public var origin: Origin

    public init(id: Int? = nil, conversionIdRef: Int? = nil, action: String?, ruleMode: String? = nil,
                comment: String? = nil, disabled: Bool? = nil, containers: [String]? = nil,
                criteria: [AdmissionCriterion], origin: Origin = .generated) {
        self.id = id
        self.conversionIdRef = conversionIdRef
        self.action = action
        self.ruleMode = ruleMode
        self.comment = comment
        self.disabled = disabled
        self.containers = containers
        self.criteria = criteria
        self.origin = origin
    }

    public var ruleAction: RuleAction? { action.flatMap(RuleAction.init(rawValue:)) }
    public var isDisabled: Bool { disabled ?? false }

    /// The container kinds the rule applies to; NeuVector's default is `containers` (admission.go
    /// `getAdmCtrlRuleContainers`).
    public var containerKinds: Set<String> {
        let written = Set(containers ?? [])
        return written.isEmpty ? ["containers"] : written
    }
}

/// One admission criterion (`api.RESTAdmRuleCriterion`).
public struct AdmissionCriterion: Sendable, Hashable {
    public var name: String
    public var op: String
    public var value: String
    public var subCriteria: [AdmissionCriterion]
    public var type: String?
    public var templateKind: String?
    public var path: String?
    public var valueType: String?
    public var origin: Origin

    public init(_ name: String, _ op: String, _ value: String, subCriteria: [AdmissionCriterion] = [],
                type: String? = nil, templateKind: String? = nil, path: String? = nil, valueType: String? = nil,
                origin: Origin = .generated) {
        self.name = name
        self.op = op
        self.value = value
        self.subCriteria = subCriteria
        self.type = type
        self.templateKind = templateKind
        self.path = path
        self.valueType = valueType
        self.origin = origin
    }

    /// The values of a set operator as NeuVector reads them: split at commas, trimmed, empty ones dropped
    /// (cache/admission.go `AdmCriteria2CLUS`); one trimmed value for the other operators.
    public var values: [String] {
        guard AdmissionOp.setOps.contains(op) else { return [value.trimmed] }
        return value.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmed }.filter { !$0.isEmpty }
    }

    /// Whether NeuVector counts this criterion as positive when it combines criteria of one name: negative
    /// ones are AND'd while all are negative, any positive one makes the group an OR
    /// (cache/admission.go `isAdmissionRuleMet`).
    public var isPositive: Bool { !AdmissionOp.negative.contains(op) }

    public var text: String { "\(name) \(op) \(value)" }
}

extension String {
    var trimmed: String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}

/// NeuVector's admission operators (share/criteria.go).
public enum AdmissionOp {
    public static let setOps: Set<String> = ["containsAll", "containsAny", "notContainsAny", "containsOtherThan",
                                             "regexContainsAnyEx", "!regexContainsAnyEx"]
    public static let negative: Set<String> = ["!=", "!regex", "notContainsAny", "!regexContainsAnyEx"]
    static let allSet = ["containsAll", "containsAny", "notContainsAny", "containsOtherThan"]
    static let set1 = ["containsAny", "notContainsAny"]
    static let user = ["containsAny", "notContainsAny", "regex", "!regex"]
    static let userGroups = ["containsAll", "containsAny", "notContainsAny", "containsOtherThan", "regex", "!regex"]
    static let verifiers = ["containsAll", "containsAny", "notContainsAny"]
}

/// What NeuVector accepts for one criterion name in one kind of rule: the options tables
/// `getAdmK8sDenyRuleOptions` and `getAdmK8sExceptRuleOptions` of
/// controller/nvk8sapi/nvvalidatewebhookcfg/admission/admission.go (L274-681), applied by
/// controller/rest/admission.go `validateAdmCtrlCriteria` (L72-187).
public struct AdmissionOption: Sendable {
    /// Allowed operators; empty means any.
    public var ops: [String]
    /// Allowed values; empty means any (a number when an operator is numeric).
    public var values: [String] = []
    public var sub: [String: AdmissionOption] = [:]

    static func ops(_ ops: [String], values: [String] = [], sub: [String: AdmissionOption] = [:]) -> AdmissionOption {
        AdmissionOption(ops: ops, values: values, sub: sub)
    }

    var isNumeric: Bool { ops.contains { [">=", ">", "<="].contains($0) } }

    static let bool = ops(["="], values: ["true", "false"])
    static let boolTrue = ops(["="], values: ["true"])
    static let count = ops([">="], sub: ["publishDays": ops([">="])])
    static let allowCount = ops(["<=", ">="])
    static let limit = ops([">", "<="])

    /// Options of deny rules.
    public static let deny: [String: AdmissionOption] = [
        "image": ops(AdmissionOp.set1), "imageRegistry": ops(AdmissionOp.set1), "namespace": ops(AdmissionOp.set1),
        "user": ops(AdmissionOp.user), "userGroups": ops(AdmissionOp.userGroups),
        "labels": ops(AdmissionOp.allSet), "annotations": ops(AdmissionOp.allSet), "mountVolumes": ops(AdmissionOp.allSet),
        "envVars": ops(AdmissionOp.allSet), "cveNames": ops(AdmissionOp.allSet), "modules": ops(AdmissionOp.allSet),
        "cveCriticalCount": count, "cveHighCountNoCritical": count, "cveHighCount": count, "cveMediumCount": count,
        "cveCriticalWithFixCount": count, "cveHighWithFixCount": count, "cveHighWithFixCountNoCritical": count,
        "cveScoreCount": ops([">="], sub: ["count": ops([">="])]),
        "imageScanned": bool, "runAsPrivileged": bool, "runAsRoot": bool, "imageSigned": bool, "imageCompliance": bool,
        "envVarSecrets": bool, "imageNoOS": bool, "sharePidWithHost": bool, "shareIpcWithHost": bool,
        "shareNetWithHost": bool, "allowPrivEscalation": boolTrue, "pspCompliance": boolTrue,
        "resourceLimit": ops([], sub: ["cpuRequest": limit, "cpuLimit": limit, "memoryRequest": limit, "memoryLimit": limit]),
        "violatePssPolicy": ops(["="], values: ["restricted", "baseline"]),
        "customPath": ops([]), "saBindRiskyRole": ops(["containsTagAny"]),
        "imageVerifiers": ops(AdmissionOp.verifiers), "storageClassName": ops(AdmissionOp.set1),
    ]

    /// Options of allow (exception) rules: fewer criteria than deny rules.
    public static let allow: [String: AdmissionOption] = [
        "image": ops(AdmissionOp.set1), "imageRegistry": ops(AdmissionOp.set1), "namespace": ops(AdmissionOp.set1),
        "user": ops(AdmissionOp.user), "userGroups": ops(AdmissionOp.userGroups),
        "labels": ops(AdmissionOp.allSet), "annotations": ops(AdmissionOp.allSet), "mountVolumes": ops(AdmissionOp.allSet),
        "envVars": ops(AdmissionOp.allSet), "cveNames": ops(AdmissionOp.allSet), "modules": ops(AdmissionOp.allSet),
        "cveCriticalCount": allowCount, "cveHighCount": allowCount, "cveHighCountNoCritical": allowCount,
        "cveMediumCount": allowCount, "cveCriticalWithFixCount": allowCount, "cveHighWithFixCount": allowCount,
        "cveHighWithFixCountNoCritical": allowCount,
        "imageScanned": bool, "runAsPrivileged": bool, "runAsRoot": bool, "imageSigned": bool, "imageCompliance": bool,
        "envVarSecrets": bool, "imageVerifiers": ops(AdmissionOp.verifiers),
    ]

    public static func table(for action: RuleAction) -> [String: AdmissionOption] {
        action == .allow ? allow : deny
    }

    /// Why NeuVector refuses `criterion` in a rule of `action`, or nil when it accepts it.
    public static func problem(_ criterion: AdmissionCriterion, in table: [String: AdmissionOption], action: RuleAction)
        -> (message: String, field: String)?
    {
        if criterion.type == "customPath" || criterion.type == "saBindRiskyRole" {
            // special criteria: deny rules only (admission.go L92-94)
            return action == .deny ? nil : ("criterion type '\(criterion.type ?? "")' is for deny rules only", "type")
        }
        guard let option = table[criterion.name] else {
            let near = EditDistance.nearest(criterion.name, among: Array(table.keys)).map { " (did you mean '\($0)'?)" } ?? ""
            return ("unsupported criterion name '\(criterion.name)' in an admission \(action.rawValue) rule\(near)", "name")
        }
        if !option.ops.isEmpty && !option.ops.contains(criterion.op) {
            return ("criterion '\(criterion.name)' does not take the operator '\(criterion.op)'; NeuVector allows \(option.ops.joined(separator: ", ")) here",
                    "op")
        }
        if criterion.op == "regex" || criterion.op == "!regex" || criterion.op == "regexContainsAnyEx" || criterion.op == "!regexContainsAnyEx" {
            for value in criterion.values where Coverage.regexProblem(value) != nil {
                return ("'\(value)' is not a valid regular expression", "value")
            }
        }
        if !option.values.isEmpty {
            if !option.values.contains(criterion.value) {
                return ("criterion '\(criterion.name)' takes \(option.values.joined(separator: " or ")), not '\(criterion.value)'", "value")
            }
        } else if option.isNumeric && Double(criterion.value.trimmed) == nil {
            return ("criterion '\(criterion.name)' takes a number, not '\(criterion.value)'", "value")
        }
        if criterion.values.isEmpty && criterion.name != "resourceLimit" {
            return ("criterion '\(criterion.name)' has no value (NeuVector drops it)", "value")
        }
        for sub in criterion.subCriteria {
            if let problem = problem(sub, in: option.sub, action: action) { return problem }
        }
        return nil
    }
}
