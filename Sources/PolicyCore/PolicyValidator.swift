/// Validates a policy tree (SEMANTICS §2) into a `ValidatedPolicySet`, reporting every problem.
public struct PolicyValidator {
    private var diagnostics: [Diagnostic] = []

    private init() {}

    /// Checks every document and the tree as a whole. Returns the validated set when there is no error.
    ///
    /// Documents are checked independently, through `parallel` (the caller decides how: the pure core
    /// starts no threads); then the checks that span documents (identities, group definitions) run once.
    public static func validate(_ tree: PolicyTree, parallel: ParallelFor = .serial) -> Validation<ValidatedPolicySet> {
        var validator = PolicyValidator()
        var definitions: [String: GroupSelector] = [:]
        for object in tree.objects where object.kind == .groupDefinition {
            if let selector = validator.groupDefinitionSelector(object) { definitions[selector.name] = selector }
        }
        var firstPlace: [String: SourceLocation] = [:]
        var unique: [Int] = []
        for (index, object) in tree.objects.enumerated() {
            let identity = object.identity
            let key = identity.description
            if let first = firstPlace[key] {
                // admission documents are cluster-scoped: their names must differ across folders too
                let hint = object.kind == .admissionControl
                    ? " (admission documents are cluster-scoped, so each needs its own name, e.g. '\(object.metadata.name)-<namespace>'; all are compiled into 'local')" : ""
                validator.error("\(identity) is defined twice: first at \(first)\(hint)", object.origin.location)
                continue
            }
            firstPlace[key] = object.origin.location
            unique.append(index)
        }
        let slots = ResultSlots<(PlacedDocument?, [Diagnostic])>(count: unique.count)
        let objects = tree.objects
        let known = definitions
        let indices = unique
        parallel.run(indices.count) { slot in
            var local = PolicyValidator()
            let document = local.check(objects[indices[slot]], definitions: known)
            slots.set(slot, (document, local.diagnostics))
        }
        var placed: [PlacedDocument] = []
        for (document, diagnostics) in slots.values {
            if let document { placed.append(document) }
            validator.diagnostics += diagnostics
        }
        let sorted = validator.diagnostics.sorted()
        let set = sorted.hasErrors ? nil : ValidatedPolicySet(documents: placed, groupDefinitions: definitions)
        return Validation(value: set, diagnostics: sorted)
    }

    /// Network, process and file rules one document may hold: far above any real policy, and a bound on
    /// the work one document can ask for.
    public static let maximumRulesPerDocument = 50_000

    private mutating func error(_ message: String, _ at: SourceLocation) {
        diagnostics.append(.error(message, at: at, rule: "policy-rule"))
    }

    private mutating func warning(_ message: String, _ at: SourceLocation) {
        diagnostics.append(.warning(message, at: at, rule: "policy-rule"))
    }

    // MARK: - Documents

    private mutating func check(_ object: PolicyObject, definitions: [String: GroupSelector]) -> PlacedDocument? {
        let file = object.origin.location.file
        let at = object.origin.location
        let metaAt = object.origin.at("metadata")
        guard let scope = DocumentScope.of(path: file) else {
            error("policy files belong under policies/global/ or policies/namespaces/<namespace>/", at)
            return nil
        }
        if !NeuVectorNames.isDNS1123Subdomain(object.metadata.name) {
            error("metadata.name '\(object.metadata.name)' is not a valid Kubernetes name (lower-case letters, digits, '-' and '.')",
                  object.metadata.at("name", or: metaAt))
        } else if object.metadata.name.utf8.count + ".yaml".utf8.count > 255 {
            // a directory member stores each object as NAME.yaml, and a file name is at most 255 bytes
            error("metadata.name is \(object.metadata.name.utf8.count) characters; a GitOps folder stores it as NAME.yaml and a file name holds at most 255 bytes, so it must be at most 250",
                  object.metadata.at("name", or: metaAt))
        }
        var tier = Tier.enforced
        switch scope {
        case .global:
            if object.kind == .securityRule {
                error("NvSecurityRule documents belong under policies/namespaces/<namespace>/; global rules are NvClusterSecurityRule",
                      at)
            }
            if let text = object.metadata.annotations[HubAnnotation.tier] {
                switch text {
                case "enforced": tier = .enforced
                case "baseline": tier = .baseline
                default: error("\(HubAnnotation.tier) must be 'enforced' or 'baseline', not '\(text)'",
                               object.metadata.annotationAt(HubAnnotation.tier, or: metaAt))
                }
            }
        case .namespace(let ns):
            tier = .namespace
            if !NeuVectorNames.isDNS1123Label(ns) {
                error("the folder policies/namespaces/\(ns)/ is not a namespace name (a DNS-1123 label: lower-case letters, digits and '-', at most 63)",
                      at)
            }
            if object.kind != .securityRule && object.kind != .admissionControl {
                error("only NvSecurityRule and NvAdmissionControlSecurityRule documents may live under policies/namespaces/\(ns)/, not \(object.kind.rawValue)",
                      at)
            }
            if object.metadata.annotations[HubAnnotation.tier] != nil {
                error("\(HubAnnotation.tier) is for global documents only; namespace rules always rank below enforced global rules",
                      object.metadata.annotationAt(HubAnnotation.tier, or: metaAt))
            }
            if object.kind == .admissionControl {
                // cluster-scoped: compiled into `local`, never pushed under its own name
                if let written = object.metadata.namespace, written != ns {
                    error("metadata.namespace must be '\(ns)', the folder the document lives in, or left out (found '\(written)')",
                          object.metadata.at("namespace", or: metaAt))
                }
            } else if object.metadata.namespace != ns {
                error("metadata.namespace must be '\(ns)', the folder the document lives in (found '\(object.metadata.namespace ?? "")')",
                      object.metadata.at("namespace", or: metaAt))
            }
        }
        if !object.kind.isNamespaced, object.kind != .admissionControl, let ns = object.metadata.namespace, !ns.isEmpty {
            warning("metadata.namespace '\(ns)' is ignored: \(object.kind.rawValue) is cluster-scoped", object.metadata.at("namespace", or: metaAt))
        }
        var placement = LabelSelector.everything
        if let text = object.metadata.annotations[HubAnnotation.placement] {
            do {
                placement = try LabelSelector.parse(text)
            } catch {
                self.error("\(HubAnnotation.placement): \(error.message) at column \(error.column) of '\(text)'",
                           object.metadata.annotationAt(HubAnnotation.placement, or: metaAt))
            }
        }
        switch object.body {
        case .securityRule(let spec): checkSecurityRule(object, spec, definitions: definitions)
        case .admission(let spec): checkAdmission(object, spec, scope: scope)
        case .opaque(let spec): checkOpaque(object, spec)
        }
        return PlacedDocument(object: object, source: file, scope: scope, tier: tier, placement: placement)
    }

    private mutating func checkSecurityRule(_ object: PolicyObject, _ spec: SecurityRuleSpec,
                                            definitions: [String: GroupSelector]) {
        let target = spec.target.selector
        let targetClass = GroupClass.of(target)
        checkSelector(target, role: "target", definitions: definitions)
        if object.kind == .securityRule, let ns = object.metadata.namespace {
            checkConfinement(target, namespace: ns, definitions: definitions)
        }
        switch spec.target.policyMode {
        case .none: break
        case .notApplicable?:
            if targetClass.hasPolicyMode {
                error("policymode N/A is not valid for '\(target.name)', a group with a policy mode; use Discover, Monitor or Protect, or leave it out for the environment's default",
                      spec.target.origin.at("policymode"))
            }
        case .mode?:
            if !targetClass.hasPolicyMode {
                error("policymode is only for 'nodes' and learned nv.* groups; '\(target.name)' has none (use N/A or leave it out)",
                      spec.target.origin.at("policymode"))
            }
        }
        if let profile = spec.processProfile {
            if let baseline = profile.baseline, !["default", "shield", "basic", "zero-drift"].contains(baseline) {
                error("process_profile.baseline '\(baseline)' is not one of: default, shield, basic, zero-drift",
                      profile.origin.at("baseline"))
            }
            if let mode = profile.mode, PolicyMode(rawValue: mode) == nil {
                error("process_profile.mode '\(mode)' is not one of: Discover, Monitor, Protect", profile.origin.at("mode"))
            }
        }
        let ruleCount = spec.ingress.count + spec.egress.count + spec.process.count + spec.file.count
        if ruleCount > PolicyValidator.maximumRulesPerDocument {
            error("this document holds \(ruleCount) rules, more than the \(PolicyValidator.maximumRulesPerDocument) one document may hold; split it into several documents",
                  object.origin.location)
        }
        var groups: [String: (criteria: [Criterion], at: SourceLocation)] = [:]
        func sameGroup(_ selector: GroupSelector) {
            // one group name means one group in a document (crdsecurityrule.go L2344-2360), nv.ip.* aside
            let kind = GroupClass.of(selector)
            guard selector.nameReferral != true, kind == .custom || kind == .learned || kind == .address else { return }
            let here = selector.origin.at("name")
            guard let first = groups[selector.name] else {
                groups[selector.name] = (selector.criteria, here)
                return
            }
            var rest = first.criteria
            let same = selector.criteria.count == rest.count && selector.criteria.allSatisfy { c in
                guard let i = rest.firstIndex(of: c) else { return false }
                rest.remove(at: i)
                return true
            }
            if !same {
                error("group '\(selector.name)' is used with different criteria than at \(first.at); NeuVector refuses a document that defines one group two ways (\"added with different criteria\")",
                      here)
            }
        }
        sameGroup(target)
        var ruleNames: [String: SourceLocation] = [:]
        for rule in spec.ingress + spec.egress {
            sameGroup(rule.selector)
            let at = rule.origin.at("name")
            if rule.name.isEmpty || !NeuVectorNames.isObjectName(rule.name) {
                error("rule name '\(rule.name)' must start with a letter or digit and hold only letters, digits and .:_-",
                      at)
            } else if let first = ruleNames[rule.name] {
                error("rule name '\(rule.name)' is used twice in this document (first at \(first))", at)
            } else {
                ruleNames[rule.name] = at
            }
            if let p = rule.priority, !(0...100).contains(p) {
                error("priority \(p) is outside 0..100", rule.origin.at("priority"))
            }
            if case .failure(let problem) = PortSet.parse(rule.ports) {
                error("ports: \(problem.message)", rule.origin.at("ports"))
            }
            var seenApps = Set<String>()
            for app in rule.applications where app.lowercased() != "any" {
                guard let name = ApplicationSet.canonicalName(app) else {
                    error("unknown application '\(app)'; NeuVector knows: \(ApplicationSet.known.joined(separator: ", "))",
                          rule.origin.at("applications"))
                    continue
                }
                if !seenApps.insert(name).inserted {
                    error("application '\(app)' is listed twice", rule.origin.at("applications"))
                }
            }
            checkSelector(rule.selector, role: "rule '\(rule.name)' selector", definitions: definitions)
        }
        if !spec.process.isEmpty && !targetClass.hasProfiles {
            error("'\(target.name)' cannot carry process rules (external, address and nv.ip.* groups have no profiles)",
                  spec.process[0].origin.location)
        }
        for rule in spec.process {
            if let problem = NeuVectorNames.processRuleProblem(name: rule.name, path: rule.path, action: rule.action) {
                error(problem, rule.origin.at(rule.path.isEmpty ? "name" : "path"))
            }
        }
        if !spec.file.isEmpty && (!targetClass.hasProfiles || targetClass == .nodes) {
            error("'\(target.name)' cannot carry file rules (not allowed on nodes, external, address and nv.ip.* groups)",
                  spec.file[0].origin.location)
        }
        var fileKeys: [String: SourceLocation] = [:]
        for rule in spec.file {
            if let problem = NeuVectorNames.fileFilterProblem(rule.filter) {
                error(problem, rule.origin.at("filter"))
                continue
            }
            let key = "\(NeuVectorNames.cleanPath(rule.filter))|\(rule.behavior.rawValue)|\(rule.recursive)"
            if let first = fileKeys[key] {
                error("file rule for '\(rule.filter)' with the same behavior and recursion is listed twice (first at \(first))",
                      rule.origin.at("filter"))
            } else {
                fileKeys[key] = rule.origin.at("filter")
            }
        }
        for (what, settings) in [("dlp", spec.dlp), ("waf", spec.waf)] {
            guard let settings else { continue }
            if targetClass == .address {
                error("an address group cannot carry \(what) sensors", spec.target.origin.location)
            }
            for setting in settings.settings {
                if setting.name == "sensor.dlpdfltnv" || setting.name == "sensor.wafdfltnv" {
                    error("sensor '\(setting.name)' is reserved by NeuVector", setting.origin.at("name"))
                } else if !NeuVectorNames.isObjectName(setting.name) {
                    error("sensor name '\(setting.name)' is not a valid NeuVector name", setting.origin.at("name"))
                }
            }
        }
    }

    /// A namespace document's target selects workloads of its own namespace only (SEMANTICS §1.4), whatever
    /// its flags: never a reserved cluster-wide group; `domain = <ns>` among its criteria (NeuVector's own
    /// rule); no other `domain`/`namespace` criterion (criteria of one key are OR'd, so a second one widens
    /// the group); and, through `name_referral`, a group definition that is confined the same way.
    private mutating func checkConfinement(_ target: GroupSelector, namespace ns: String,
                                           definitions: [String: GroupSelector]) {
        switch GroupClass.of(target) {
        case .containers, .nodes, .external:
            error("the target of an NvSecurityRule in namespace '\(ns)' cannot be the reserved cluster-wide group '\(target.name)'; select the namespace's own workloads (criterion 'domain = \(ns)')",
                  target.origin.at("name"))
            return
        case .federal, .reserved, .learned, .serviceIP, .address, .custom:
            break
        }
        for problem in PolicyValidator.confinementProblems(target.criteria, namespace: ns) {
            error("the target of an NvSecurityRule in namespace '\(ns)' \(problem.message) (NeuVector: \"SecurityRule in nameSpace \(ns) need target group \(target.name) belong to it\")",
                  problem.at ?? target.origin.at("criteria"))
        }
        if target.nameReferral == true, let definition = definitions[target.name] {
            for problem in PolicyValidator.confinementProblems(definition.criteria, namespace: ns) {
                error("name_referral: the NvGroupDefinition of '\(target.name)' at \(definition.origin.location) \(problem.message), so it cannot be the target of a document in namespace '\(ns)'",
                      target.origin.at("name_referral"))
            }
        }
    }

    /// Why criteria do not confine a group to namespace `ns` (empty when they do).
    static func confinementProblems(_ criteria: [Criterion], namespace ns: String) -> [(message: String, at: SourceLocation?)] {
        var problems: [(message: String, at: SourceLocation?)] = []
        var confined = false
        for c in criteria where Coverage.normalisedKey(c.key) == "domain" {
            if c.key == "domain" && c.op == .equal && c.value == ns {
                confined = true
            } else {
                problems.append(("has the criterion '\(c.key) \(c.op.rawValue) \(c.value)', which reaches beyond namespace '\(ns)' (criteria of one key are OR'd); 'domain = \(ns)' must be the only domain criterion",
                                 c.origin.at("value")))
            }
        }
        if !confined { problems.insert(("must have the criterion 'domain = \(ns)'", nil), at: 0) }
        return problems
    }

    private mutating func checkSelector(_ selector: GroupSelector, role: String,
                                        definitions: [String: GroupSelector]) {
        let at = selector.origin.at("name")
        let criteriaAt = selector.origin.at("criteria")
        let name = selector.name
        let kind = GroupClass.of(selector)
        if name.isEmpty || !NeuVectorNames.isObjectName(name) {
            error("group name '\(name)' in \(role) must start with a letter or digit and hold only letters, digits and .:_-",
                  at)
            return
        }
        switch kind {
        case .federal:
            error("'\(name)' is a NeuVector federation (fed.) group; the hub distributes policy itself and does not use federation",
                  at)
            return
        case .reserved:
            error("'\(name)' is a name NeuVector reserves (Host:*, Workload:*)", at)
            return
        case .containers:
            let ok = selector.criteria.count == 1 && selector.criteria[0].key == "container"
                && selector.criteria[0].op == .equal && selector.criteria[0].value == "*"
            if !ok && !(selector.nameReferral == true && selector.criteria.isEmpty) {
                error("the reserved group 'containers' must have exactly the criterion 'container = *'", criteriaAt)
            }
        case .nodes, .external:
            if !selector.criteria.isEmpty {
                error("the reserved group '\(name)' must have no criteria", criteriaAt)
            }
        case .learned:
            checkLearnedGroup(selector)
        case .serviceIP:
            checkServiceIPGroup(selector)
        case .address, .custom:
            break
        }
        if selector.nameReferral == true {
            if definitions[name] == nil && kind != .containers && kind != .nodes && kind != .external {
                error("NvGroupDefinition of referred group \(name) is not found in policies/global/", at)
            }
        } else if selector.criteria.isEmpty && (kind == .custom || kind == .learned || kind == .serviceIP) {
            error("group '\(name)' in \(role) needs criteria (or name_referral: true and an NvGroupDefinition)", at)
        }
        var seen = Set<Criterion>()  // origins do not count in equality
        let hasAddress = selector.criteria.contains { $0.key == "address" }
        for c in selector.criteria {
            let cAt = c.origin.location
            if !NeuVectorNames.isCriteriaKey(c.key) {
                error("criterion key '\(c.key)' must start with a letter, digit or '/' and hold only letters, digits and /.:_-",
                      c.origin.at("key"))
            }
            if !seen.insert(c).inserted {
                error("criterion '\(c.key) \(c.op.rawValue) \(c.value)' is listed twice", cAt)
            }
            switch c.op {
            case .regex, .notRegex:
                if let problem = Coverage.regexProblem(c.value) {
                    error("criterion regex '\(c.value)' does not compile: \(problem)", c.origin.at("value"))
                }
            case .equal, .notEqual:
                // a glob may not carry regex anchors (group.go validateGroupConfigCriteria L530-538)
                if (c.value.contains("*") || c.value.contains("?")) && (c.value.contains("^") || c.value.contains("$")) {
                    error("criterion value '\(c.value)' mixes a glob (* ?) with regex anchors (^ $); use op regex instead",
                          c.origin.at("value"))
                }
            case .contains, .prefix: break
            }
            if c.key == "address" && c.op != .equal {
                error("the address criterion only takes op '='", c.origin.at("op"))
            } else if c.key == "address", let problem = NeuVectorNames.addressProblem(c.value) {
                error(problem, c.origin.at("value"))
            }
            if hasAddress && c.key != "address" && kind != .serviceIP {
                error("an address criterion cannot be mixed with other keys ('\(c.key)')", c.origin.at("key"))
            }
            // an empty value is allowed for exact matches only (group.go L502-506): `service = ""` is fine
            if c.value.isEmpty && c.op != .equal && c.op != .notEqual {
                error("criterion '\(c.key)' has an empty value; only '=' and '!=' may match an empty value", c.origin.at("value"))
            }
        }
    }

    /// `validateLearnGroupConfig` for `nv.ip.*` groups (group.go L359-444): ops all `=`, no `service`
    /// criterion, at most one `domain` criterion, equal to the name's last part.
    private mutating func checkServiceIPGroup(_ selector: GroupSelector) {
        let name = selector.name
        let tokens = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        var domains = 0
        for c in selector.criteria {
            guard c.op == .equal else {
                error("criteria of the service IP group '\(name)' must all use op '='", c.origin.at("op"))
                continue
            }
            switch c.key {
            case "service":
                error("a service IP group (nv.ip.*) takes no 'service' criterion (NeuVector: \"Learned ip service group does not allow service criteria\")",
                      c.origin.at("key"))
            case "domain":
                domains += 1
                if domains > 1 {
                    error("the service IP group '\(name)' may have one 'domain' criterion only", c.origin.at("key"))
                } else if tokens.count < 3 || tokens.last != c.value {
                    error("the service IP group '\(name)' must have 'domain = \(tokens.count >= 3 ? tokens.last ?? "" : "<namespace>")', not '\(c.value)' (the name's last part is its namespace)",
                          c.origin.at("value"))
                }
            default:
                continue  // NeuVector keeps only the domain criterion of a CRD nv.ip.* group
            }
        }
    }

    /// `validateLearnGroupConfig`: `nv.<svc>.<ns>` with `service=<svc>.<ns>` and `domain=<ns>`, ops all `=`.
    private mutating func checkLearnedGroup(_ selector: GroupSelector) {
        let name = selector.name
        let criteriaAt = selector.origin.at("criteria")
        let service = String(name.dropFirst(3))
        let domain = service.split(separator: ".").last.map(String.init) ?? ""
        var services = 0
        var domains = 0
        for c in selector.criteria {
            guard c.op == .equal else {
                error("criteria of the learned group '\(name)' must all use op '='", c.origin.at("op"))
                continue
            }
            switch c.key {
            case "service":
                services += 1
                let special: Set<UInt8> = [0x2f, 0x3f, 0x25, 0x26, 0x20]  // / ? % & and space become ':'
                let normalised = service.utf8.contains(where: special.contains)
                    ? String(decoding: service.utf8.map { special.contains($0) ? 0x3a : $0 }, as: UTF8.self) : service
                if c.value != normalised {
                    error("the learned group '\(name)' must have 'service = \(normalised)', not '\(c.value)'",
                          c.origin.at("value"))
                }
            case "domain":
                domains += 1
                if c.value != domain {
                    error("the learned group '\(name)' must have 'domain = \(domain)', not '\(c.value)'",
                          c.origin.at("value"))
                }
            default:
                error("a learned group (nv.*) may only use the keys 'service' and 'domain', not '\(c.key)'",
                      c.origin.at("key"))
            }
        }
        if services > 1 || domains > 1 {
            error("the learned group '\(name)' may have at most one 'service' and one 'domain' criterion", criteriaAt)
        }
    }

    // MARK: - Other kinds

    private mutating func groupDefinitionSelector(_ object: PolicyObject) -> GroupSelector? {
        guard case .opaque(let spec) = object.body, let selector = spec["selector"],
              let name = selector["name"]?.stringValue else { return nil }
        var criteria: [Criterion] = []
        if case .list(let items)? = selector["criteria"] {
            for item in items {
                guard let key = item["key"]?.stringValue, let opText = item["op"]?.stringValue,
                      let op = CriterionOp(rawValue: opText), let value = item["value"]?.stringValue else { continue }
                criteria.append(Criterion(key, op, value))
            }
        }
        return GroupSelector(name: name, criteria: criteria, origin: object.origin)
    }

    private mutating func checkOpaque(_ object: PolicyObject, _ spec: Value) {
        let at = object.origin.at("spec")
        let name = object.metadata.name
        switch object.kind {
        case .groupDefinition:
            guard let selectorName = spec["selector"]?["name"]?.stringValue else {
                error("NvGroupDefinition needs spec.selector.name", at)
                return
            }
            if selectorName != name {
                error("NvGroupDefinition spec.selector.name '\(selectorName)' must equal metadata.name '\(name)'", at)
            }
            if ["containers", "nodes", "external"].contains(selectorName) || selectorName.hasPrefix("fed.")
                || selectorName.hasPrefix("nv.") && !selectorName.hasPrefix("nv.ip.") {
                error("group \(selectorName) cannot be defined by an NvGroupDefinition (reserved, learned or federal name)", at)
            }
            if case .list(let items)? = spec["selector"]?["criteria"] {
                for item in items {
                    if let op = item["op"]?.stringValue, CriterionOp(rawValue: op) == nil {
                        error("criterion op '\(op)' is not one of: =, !=, contains, prefix, regex, !regex", at)
                    }
                }
            }
        case .dlp, .waf:
            let sensorName = spec["sensor"]?["name"]?.stringValue
            if sensorName != name {
                error("\(object.kind.rawValue) spec.sensor.name '\(sensorName ?? "")' must equal metadata.name '\(name)'", at)
            }
            checkSensor(object.kind, name: name, spec["sensor"] ?? .null, at: at)
        case .vulnerabilityProfile, .complianceProfile:
            if name != "default" {
                error("\(object.kind.rawValue) must be named 'default'", object.metadata.at("name", or: object.origin.at("metadata")))
            }
        case .responseRule, .securityRule, .clusterSecurityRule, .admissionControl:
            break
        }
    }

    // MARK: - DLP and WAF sensors (crdsecurityrule.go parseCurCrdDlpContent/parseCurCrdWafContent L3409-3543,
    // dlp_rule.go validateDlpRuleConfig, waf_rule.go; limits from controller/api/apis.go L141-145)

    private mutating func checkSensor(_ kind: ObjectKind, name: String, _ sensor: Value, at: SourceLocation) {
        let reserved = kind == .dlp ? "sensor.dlpdfltnv" : "sensor.wafdfltnv"
        let predefined: Set<String> = kind == .dlp ? ["sensor.ssn", "sensor.creditcard"] : ["sensor.log4shell", "sensor.spring4shell"]
        if name == reserved {
            error("cannot create a sensor with NeuVector's reserved name '\(name)'", at)
        } else if predefined.contains(name) {
            error("'\(name)' is one of NeuVector's predefined sensors, which cannot be modified; name yours differently", at)
        } else if !NeuVectorNames.isObjectName(name) {
            error("sensor name '\(name)' holds characters NeuVector refuses (letters, digits and .:_- only)", at)
        }
        if let comment = sensor["comment"]?.stringValue, comment.count > 256 {
            error("the sensor comment is \(comment.count) characters; NeuVector allows at most 256", at)
        }
        guard case .list(let rules)? = sensor["rules"] else { return }
        for rule in rules {
            let ruleName = rule["name"]?.stringValue ?? ""
            if !NeuVectorNames.isObjectName(ruleName) || ruleName.count > 256 {
                error("sensor rule name '\(ruleName)' is not a valid NeuVector name (at most 256 of letters, digits and .:_-)", at)
            }
            let patterns: [Value]
            if case .list(let list)? = rule["patterns"] { patterns = list } else { patterns = [] }
            if patterns.isEmpty {
                error("sensor rule '\(ruleName)' has no pattern; NeuVector needs one to 16", at)
            } else if patterns.count > 16 {
                error("sensor rule '\(ruleName)' has \(patterns.count) patterns; NeuVector allows at most 16", at)
            }
            var total = 0
            for pattern in patterns {
                let op = pattern["op"]?.stringValue ?? ""
                guard op == "regex" || op == "!regex" else {
                    error("sensor rule '\(ruleName)': pattern op '\(op)' is not one of: regex, !regex", at)
                    continue
                }
                let value = pattern["value"]?.stringValue ?? ""
                total += value.utf8.count
                if value.utf8.count > 512 {
                    error("sensor rule '\(ruleName)': a pattern of \(value.utf8.count) characters; NeuVector allows at most 512", at)
                } else if total > 1024 {
                    error("sensor rule '\(ruleName)': its patterns total \(total) characters; NeuVector allows at most 1024", at)
                }
                if let context = pattern["context"]?.stringValue, !context.isEmpty, !["url", "header", "body", "packet"].contains(context) {
                    error("sensor rule '\(ruleName)': pattern context '\(context)' is not one of: url, header, body, packet", at)
                }
                if let problem = Coverage.regexProblem(value) {
                    error("sensor rule '\(ruleName)': pattern '\(value)' is not a valid regular expression (\(problem))", at)
                }
            }
        }
    }

    // MARK: - Admission control (crdsecurityrule.go parseCurCrdAdmCtrlContent, admission.go validateAdmCtrlCriteria)

    private mutating func checkAdmission(_ object: PolicyObject, _ spec: AdmissionSpec, scope: DocumentScope) {
        if object.metadata.name == "fed" {
            error("NvAdmissionControlSecurityRule 'fed' is NeuVector federation, which the hub does not use; any other name is compiled into 'local'",
                  object.metadata.at("name", or: object.origin.at("metadata")))
        }
        var namespace: String?
        if case .namespace(let ns) = scope { namespace = ns }
        if let config = spec.config {
            if let namespace {
                error("spec.config comes from global documents only; a document of namespace '\(namespace)' cannot set NeuVector's admission state",
                      config.origin.location)
            }
            for field in ["enable", "mode", "client_mode"] where !config.origin.fields.contains(where: { $0.name == field }) {
                error("config needs '\(field)': NeuVector requires enable, mode and client_mode together (\"validation error\")", config.origin.location)
            }
            if let mode = config.mode, mode != "monitor" && mode != "protect" {
                error("config.mode '\(mode)' is not one of: monitor, protect", config.origin.at("mode"))
            }
            if let client = config.clientMode, client != "service" && client != "url" {
                error("config.client_mode '\(client)' is not one of: service, url", config.origin.at("client_mode"))
            }
        }
        if spec.rules.count > PolicyValidator.maximumRulesPerDocument {
            error("this document holds \(spec.rules.count) admission rules, more than the \(PolicyValidator.maximumRulesPerDocument) one document may hold; split it into several documents",
                  object.origin.location)
        }
        for (index, rule) in spec.rules.enumerated() {
            checkAdmissionRule(rule, index: index, namespace: namespace)
        }
    }

    private mutating func checkAdmissionRule(_ rule: AdmissionRule, index: Int, namespace: String?) {
        let at = rule.origin
        guard let text = rule.action else {
            error("admission rule #\(index) needs 'action' (allow or deny)", at.location)
            return
        }
        guard let action = RuleAction(rawValue: text) else {
            error("admission rule action '\(text)' is not one of: allow, deny", at.at("action"))
            return
        }
        if rule.criteria.isEmpty {
            error("admission rule #\(index) has no criteria; NeuVector refuses it (\"no criteria\")", at.at("criteria"))
        }
        if let mode = rule.ruleMode {
            if action == .allow && !mode.isEmpty {
                error("rule_mode '\(mode)' is for deny rules; an allow rule takes \"\" or none", at.at("rule_mode"))
            } else if action == .deny && !["", "monitor", "protect"].contains(mode) {
                error("rule_mode '\(mode)' is not one of: \"\", monitor, protect", at.at("rule_mode"))
            }
        }
        for kind in rule.containers ?? [] where !["containers", "init_containers", "ephemeral_containers"].contains(kind) {
            error("containers value '\(kind)' is not one of: containers, init_containers, ephemeral_containers", at.at("containers"))
        }
        if let id = rule.id, id > 0, id < 1000, namespace != nil {
            error("id \(id) is one of NeuVector's default admission rules, which a namespace document cannot change", at.at("id"))
        }
        let table = AdmissionOption.table(for: action)
        for criterion in rule.criteria {
            if let problem = AdmissionOption.problem(criterion, in: table, action: action) {
                error(problem.message, criterion.origin.at(problem.field))
            }
        }
        if rule.criteria.contains(where: { $0.name == "storageClassName" }) {
            for criterion in rule.criteria where criterion.name != "storageClassName" && criterion.name != "namespace" {
                error("the storageClassName criterion can only be combined with namespace criteria, not '\(criterion.name)'",
                      criterion.origin.at("name"))
            }
        }
        guard let namespace else { return }
        let own = rule.criteria.filter { $0.name == "namespace" }
        if own.isEmpty {
            error("an admission rule of namespace '\(namespace)' needs the criterion 'namespace containsAny \(namespace)', so that it decides only its own namespace",
                  at.at("criteria"))
        } else if AdmissionCompiler.literalNamespaces(own) != [namespace] {
            error("an admission rule of namespace '\(namespace)' may admit only '\(namespace)': its namespace criteria must all be 'containsAny \(namespace)' (criteria of one name are OR'd, so any other widens it)",
                  own[0].origin.at("value"))
        }
    }
}
