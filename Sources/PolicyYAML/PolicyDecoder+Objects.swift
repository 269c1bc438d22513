import PolicyCore

extension PolicyDecoder {
    /// Decodes one YAML document: an object or a `kind: List` of objects.
    mutating func decodeDocument(_ node: YAMLNode) -> [PolicyObject] {
        guard let pairs = pairs(node, "a document") else { return [] }
        let kind = pairs.first { $0.key.scalarText == "kind" }?.value
        let apiVersion = pairs.first { $0.key.scalarText == "apiVersion" }?.value
        if kind?.scalarText == "List" {
            if let apiVersion, apiVersion.scalarText != "v1" {
                error("a List must have apiVersion 'v1', not '\(apiVersion.scalarText ?? "")'", apiVersion)
            }
            guard let itemsNode = pairs.first(where: { $0.key.scalarText == "items" })?.value else {
                missing("items", in: "a List", node)
                return []
            }
            guard let items = list(itemsNode, "items") else { return [] }
            return items.compactMap { decodeObject($0) }
        }
        return decodeObject(node).map { [$0] } ?? []
    }

    /// Decodes one NeuVector object.
    mutating func decodeObject(_ node: YAMLNode) -> PolicyObject? {
        guard let pairs = pairs(node, "an object") else { return nil }
        var apiVersion: String?
        var kind: ObjectKind?
        var kindNode: YAMLNode?
        var metadata: ObjectMeta?
        var specNode: YAMLNode?
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "apiVersion": apiVersion = string(pair.value, "apiVersion")
            case "kind":
                kindNode = pair.value
                guard let text = string(pair.value, "kind") else { continue }
                kind = ObjectKind(rawValue: text)
                if kind == nil {
                    let kinds = ObjectKind.allCases.map(\.rawValue)
                    let near = EditDistance.nearest(text, among: kinds).map { "did you mean '\($0)'? " } ?? ""
                    error("unknown kind '\(text)'; \(near)the hub reads: \(kinds.joined(separator: ", "))", pair.value)
                }
            case "metadata": metadata = decodeMetadata(pair.value)
            case "spec": specNode = pair.value
            case "status": continue
            default: unknownField(pair, in: "the object", known: ["apiVersion", "kind", "metadata", "spec", "status"])
            }
        }
        guard let kindNode else {
            missing("kind", in: "the object", node)
            return nil
        }
        guard let kind else { return nil }
        if apiVersion == nil {
            missing("apiVersion", in: "the object", node)
        } else if apiVersion != ObjectKind.apiVersion {
            let at = pairs.first { $0.key.scalarText == "apiVersion" }?.value ?? kindNode
            error("unknown apiVersion '\(apiVersion ?? "")' for \(kind.rawValue); expected '\(ObjectKind.apiVersion)'", at)
        }
        guard let metadata else {
            missing("metadata", in: "the object", node)
            return nil
        }
        let body: PolicyObject.Body
        if kind.isSecurityRule {
            guard let specNode else {
                missing("spec", in: kind.rawValue, node)
                return nil
            }
            guard let spec = decodeSecurityRuleSpec(specNode) else { return nil }
            body = .securityRule(spec)
        } else if kind == .admissionControl {
            let decoded = specNode.map { decodeAdmissionSpec($0) } ?? AdmissionSpec()
            guard let decoded else { return nil }
            body = .admission(decoded)
        } else {
            if let specNode, let shape = OpaqueShape.spec(of: kind) { checkShape(specNode, shape, in: "spec") }
            body = .opaque(specNode?.value.canonical ?? .null)  // key order carries no meaning
        }
        return PolicyObject(apiVersion: apiVersion ?? ObjectKind.apiVersion, kind: kind, metadata: metadata,
                            body: body, origin: origin(node, pairs))
    }

    mutating func decodeMetadata(_ node: YAMLNode) -> ObjectMeta? {
        guard let pairs = pairs(node, "metadata") else { return nil }
        var meta = ObjectMeta(name: "")
        var sawName = false
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "name":
                sawName = true
                meta.name = string(pair.value, "metadata.name") ?? ""
            case "namespace": meta.namespace = optionalString(pair.value, "metadata.namespace")
            case "labels": meta.labels = stringMap(pair.value, "metadata.labels")
            case "annotations":
                meta.annotations = stringMap(pair.value, "metadata.annotations")
                checkHubAnnotations(pair.value)
                if case .mapping(let entries) = pair.value.content { meta.annotationOrigin = origin(pair.value, entries) }
            default: continue  // creationTimestamp, uid, resourceVersion...: Kubernetes' own
            }
        }
        meta.origin = origin(node, pairs)
        if !sawName {
            missing("name", in: "metadata", node)
            return nil
        }
        return meta
    }

    /// The `policyhub.dev/` annotations the hub knows; any other is an error at its key (a misspelt
    /// `policyhub.dev/placment` would otherwise place the document on every cluster).
    static let hubAnnotations = [HubAnnotation.tier, HubAnnotation.placement, HubAnnotation.revision, HubAnnotation.source,
                                 HubAnnotation.hash]

    mutating func checkHubAnnotations(_ node: YAMLNode) {
        guard case .mapping(let pairs) = node.content else { return }
        for pair in pairs {
            guard let key = pair.key.scalarText, key.hasPrefix("policyhub.dev/"), !PolicyDecoder.hubAnnotations.contains(key) else { continue }
            let near = EditDistance.nearest(key, among: PolicyDecoder.hubAnnotations)
            error("unknown annotation '\(key)'\(near.map { " (did you mean '\($0)'?)" } ?? ""); the hub knows \(HubAnnotation.tier) and \(HubAnnotation.placement)",
                  pair.key)
        }
    }

    mutating func decodeSecurityRuleSpec(_ node: YAMLNode) -> SecurityRuleSpec? {
        guard let pairs = pairs(node, "spec") else { return nil }
        var target: Target?
        var spec = SecurityRuleSpec(target: Target(selector: GroupSelector(name: "")))
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "target": target = decodeTarget(pair.value)
            case "ingress": spec.ingress = decodeList(pair.value, "ingress") { $0.decodeNetworkRule($1) }
            case "egress": spec.egress = decodeList(pair.value, "egress") { $0.decodeNetworkRule($1) }
            case "process": spec.process = decodeList(pair.value, "process") { $0.decodeProcessRule($1) }
            case "file": spec.file = decodeList(pair.value, "file") { $0.decodeFileRule($1) }
            case "process_profile": spec.processProfile = decodeProcessProfile(pair.value)
            case "dlp": spec.dlp = decodeSensorSettings(pair.value, "dlp")
            case "waf": spec.waf = decodeSensorSettings(pair.value, "waf")
            case "response":
                if pair.value.isNull { continue }
                if let items = list(pair.value, "response") { spec.response = items.map(\.value) }
            default: unknownField(pair, in: "spec", known: ["target", "ingress", "egress", "process", "file", "process_profile", "dlp", "waf", "response"])
            }
        }
        guard let target else {
            missing("target", in: "spec", node)
            return nil
        }
        spec.target = target
        return spec
    }

    mutating func decodeList<T>(_ node: YAMLNode, _ what: String, _ item: (inout PolicyDecoder, YAMLNode) -> T?)
        -> [T]
    {
        guard let items = list(node, what) else { return [] }
        var out: [T] = []
        out.reserveCapacity(items.count)
        for node in items {
            if let value = item(&self, node) { out.append(value) }
        }
        return out
    }

    mutating func decodeTarget(_ node: YAMLNode) -> Target? {
        guard let pairs = pairs(node, "target") else { return nil }
        var mode: PolicyModeSetting?
        var selector: GroupSelector?
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "policymode":
                guard let text = optionalString(pair.value, "policymode") else { continue }
                if text.isEmpty || text == "N/A" {
                    mode = .notApplicable
                } else if let m = PolicyMode(rawValue: text) {
                    mode = .mode(m)
                } else {
                    error("policymode '\(text)' is not one of: Discover, Monitor, Protect, N/A", pair.value)
                }
            case "selector": selector = decodeSelector(pair.value, "target.selector")
            default: unknownField(pair, in: "target", known: ["policymode", "selector"])
            }
        }
        guard let selector else {
            missing("selector", in: "target", node)
            return nil
        }
        return Target(policyMode: mode, selector: selector, origin: origin(node, pairs))
    }

    /// Decodes a group selector on its own (used by tests and tools that take selectors as input).
    public mutating func decodeSelectorNode(_ node: YAMLNode) -> GroupSelector? {
        decodeSelector(node, "selector")
    }

    mutating func decodeSelector(_ node: YAMLNode, _ what: String) -> GroupSelector? {
        guard let pairs = pairs(node, what) else { return nil }
        var selector = GroupSelector(name: "")
        var sawName = false
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "name":
                sawName = true
                selector.name = string(pair.value, "\(what).name") ?? ""
            case "original_name": selector.originalName = optionalString(pair.value, "original_name")
            case "comment": selector.comment = optionalString(pair.value, "comment")
            case "name_referral": selector.nameReferral = bool(pair.value, "name_referral")
            case "criteria": selector.criteria = decodeList(pair.value, "criteria") { $0.decodeCriterion($1) }
            case "mon_metric": selector.monMetric = bool(pair.value, "mon_metric")
            case "grp_sess_cur": selector.grpSessCur = int(pair.value, "grp_sess_cur")
            case "grp_sess_rate": selector.grpSessRate = int(pair.value, "grp_sess_rate")
            case "grp_band_width": selector.grpBandWidth = int(pair.value, "grp_band_width")
            default: unknownField(pair, in: "selector", known: ["name", "original_name", "comment", "name_referral", "criteria", "mon_metric", "grp_sess_cur", "grp_sess_rate", "grp_band_width"])
            }
        }
        if !sawName {
            missing("name", in: what, node)
            return nil
        }
        selector.origin = origin(node, pairs)
        return selector
    }

    mutating func decodeCriterion(_ node: YAMLNode) -> Criterion? {
        guard let pairs = pairs(node, "a criterion") else { return nil }
        var key: String?
        var op: CriterionOp?
        var value: String?
        var opNode: YAMLNode?
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "key": key = string(pair.value, "criterion key")
            case "op":
                opNode = pair.value
                guard let text = string(pair.value, "criterion op") else { continue }
                op = CriterionOp(rawValue: text)
                if op == nil {
                    error("criterion op '\(text)' is not one of: =, !=, contains, prefix, regex, !regex", pair.value)
                }
            case "value": value = string(pair.value, "criterion value")
            default: unknownField(pair, in: "criterion", known: ["key", "op", "value"])
            }
        }
        for (field, present) in [("key", key != nil), ("op", opNode != nil), ("value", value != nil)] where !present {
            missing(field, in: "a criterion", node)
        }
        guard let key, let op, let value else { return nil }
        return Criterion(key, op, value, origin: origin(node, pairs))
    }

    mutating func decodeNetworkRule(_ node: YAMLNode) -> NetworkRule? {
        guard let pairs = pairs(node, "a network rule") else { return nil }
        var name: String?
        var selector: GroupSelector?
        var action: RuleAction?
        var sawAction = false
        var rule = NetworkRule(name: "", selector: GroupSelector(name: ""), action: .allow)
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "name": name = string(pair.value, "rule name")
            case "selector": selector = decodeSelector(pair.value, "selector")
            case "action":
                sawAction = true
                action = enumeration(pair.value, "action", RuleAction.self)
            case "applications": rule.applications = strings(pair.value, "applications") ?? []
            case "ports": rule.ports = optionalString(pair.value, "ports")
            case "priority": rule.priority = int(pair.value, "priority")
            default: unknownField(pair, in: "network rule", known: ["name", "selector", "action", "applications", "ports", "priority"])
            }
        }
        if name == nil { missing("name", in: "a network rule", node) }
        if !sawAction { missing("action", in: "a network rule", node) }
        if selector == nil, !pairs.contains(where: { $0.key.scalarText == "selector" }) {
            missing("selector", in: "a network rule", node)
        }
        guard let name, let selector, let action else { return nil }
        rule.name = name
        rule.selector = selector
        rule.action = action
        rule.origin = origin(node, pairs)
        return rule
    }

    mutating func decodeProcessRule(_ node: YAMLNode) -> ProcessRule? {
        guard let pairs = pairs(node, "a process rule") else { return nil }
        var rule = ProcessRule(name: "", path: "", action: .allow)
        var action: RuleAction?
        var sawAction = false
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "name": rule.name = string(pair.value, "process name") ?? ""
            case "path": rule.path = string(pair.value, "process path") ?? ""
            case "action":
                sawAction = true
                action = enumeration(pair.value, "process action", RuleAction.self)
            case "allow_update": rule.allowUpdate = bool(pair.value, "allow_update")
            default: unknownField(pair, in: "process rule", known: ["name", "path", "action", "allow_update"])
            }
        }
        if !sawAction { missing("action", in: "a process rule", node) }
        guard let action else { return nil }
        rule.action = action
        rule.origin = origin(node, pairs)
        return rule
    }

    mutating func decodeFileRule(_ node: YAMLNode) -> FileRule? {
        guard let pairs = pairs(node, "a file rule") else { return nil }
        var rule = FileRule(filter: "", behavior: .monitorChange)
        var filter: String?
        var behavior: FileBehavior?
        var sawBehavior = false
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "filter": filter = string(pair.value, "filter")
            case "recursive": rule.recursive = bool(pair.value, "recursive") ?? false
            case "behavior":
                sawBehavior = true
                behavior = enumeration(pair.value, "behavior", FileBehavior.self)
            case "app": rule.app = strings(pair.value, "app") ?? []
            default: unknownField(pair, in: "file rule", known: ["filter", "recursive", "behavior", "app"])
            }
        }
        if filter == nil { missing("filter", in: "a file rule", node) }
        if !sawBehavior { missing("behavior", in: "a file rule", node) }
        guard let filter, let behavior else { return nil }
        rule.filter = filter
        rule.behavior = behavior
        rule.origin = origin(node, pairs)
        return rule
    }

    mutating func decodeProcessProfile(_ node: YAMLNode) -> ProcessProfile? {
        if node.isNull { return nil }
        guard let pairs = pairs(node, "process_profile") else { return nil }
        var profile = ProcessProfile()
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "baseline": profile.baseline = optionalString(pair.value, "process_profile.baseline")
            case "mode": profile.mode = optionalString(pair.value, "process_profile.mode")
            default: unknownField(pair, in: "process_profile", known: ["baseline", "mode"])
            }
        }
        profile.origin = origin(node, pairs)
        return profile
    }

    mutating func decodeSensorSettings(_ node: YAMLNode, _ what: String) -> SensorSettings? {
        if node.isNull { return nil }
        guard let pairs = pairs(node, what) else { return nil }
        var settings = SensorSettings(status: false, settings: [])
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "status": settings.status = bool(pair.value, "\(what).status") ?? false
            case "settings":
                settings.settings = decodeList(pair.value, "\(what).settings") { decoder, item in
                    guard let fields = decoder.pairs(item, "a sensor setting") else { return nil }
                    var name: String?
                    var action: RuleAction?
                    for field in fields {
                        switch field.key.scalarText ?? "" {
                        case "name": name = decoder.string(field.value, "sensor name")
                        case "action": action = decoder.enumeration(field.value, "sensor action", RuleAction.self)
                        default: decoder.unknownField(field, in: "sensor setting", known: ["name", "action"])
                        }
                    }
                    guard let name, let action else {
                        decoder.error("a sensor setting needs 'name' and 'action'", item)
                        return nil
                    }
                    return SensorSettings.Setting(name: name, action: action, origin: decoder.origin(item, fields))
                }
            default: unknownField(pair, in: what, known: ["status", "settings"])
            }
        }
        return settings
    }

    // MARK: - Admission control (api.NvSecurityAdmCtrlSpec, controller/api/admission_api.go)

    mutating func decodeAdmissionSpec(_ node: YAMLNode) -> AdmissionSpec? {
        if node.isNull { return AdmissionSpec() }
        guard let pairs = pairs(node, "spec") else { return nil }
        var spec = AdmissionSpec()
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "config": spec.config = decodeAdmissionConfig(pair.value)
            case "rules": spec.rules = decodeList(pair.value, "rules") { $0.decodeAdmissionRule($1) }
            default: unknownField(pair, in: "the admission spec", known: ["config", "rules"])
            }
        }
        return spec
    }

    mutating func decodeAdmissionConfig(_ node: YAMLNode) -> AdmissionConfig? {
        if node.isNull { return nil }
        guard let pairs = pairs(node, "config") else { return nil }
        var config = AdmissionConfig(enable: nil, mode: nil, clientMode: nil)
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "enable": config.enable = bool(pair.value, "config.enable")
            case "mode": config.mode = optionalString(pair.value, "config.mode")
            case "client_mode": config.clientMode = optionalString(pair.value, "config.client_mode")
            default: unknownField(pair, in: "config", known: ["enable", "mode", "client_mode"])
            }
        }
        config.origin = origin(node, pairs)
        return config
    }

    mutating func decodeAdmissionRule(_ node: YAMLNode) -> AdmissionRule? {
        guard let pairs = pairs(node, "an admission rule") else { return nil }
        var rule = AdmissionRule(action: nil, criteria: [])
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "id": rule.id = int(pair.value, "id")
            case "conversion_id_ref": rule.conversionIdRef = int(pair.value, "conversion_id_ref")
            case "action": rule.action = optionalString(pair.value, "action")
            case "rule_mode": rule.ruleMode = optionalString(pair.value, "rule_mode")
            case "comment": rule.comment = optionalString(pair.value, "comment")
            case "disabled": rule.disabled = bool(pair.value, "disabled")
            case "containers": rule.containers = pair.value.isNull ? nil : strings(pair.value, "containers")
            case "criteria": rule.criteria = decodeList(pair.value, "criteria") { $0.decodeAdmissionCriterion($1) }
            default:
                unknownField(pair, in: "admission rule",
                             known: ["id", "conversion_id_ref", "action", "rule_mode", "comment", "disabled", "containers", "criteria"])
            }
        }
        rule.origin = origin(node, pairs)
        return rule
    }

    mutating func decodeAdmissionCriterion(_ node: YAMLNode) -> AdmissionCriterion? {
        guard let pairs = pairs(node, "an admission criterion") else { return nil }
        var name: String?
        var op: String?
        var value: String?
        var criterion = AdmissionCriterion("", "", "")
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "name": name = string(pair.value, "criterion name")
            case "op": op = string(pair.value, "criterion op")
            case "value":
                value = string(pair.value, "criterion value")
                switch pair.value.value {
                case .bool, .int, .number:
                    // the CRD types `value` as a string: NeuVector's importer refuses an unquoted true or 5
                    // (crdsecurityrule_test.go L225)
                    error("criterion value must be a string: write \"\(value ?? "")\" in quotes (NeuVector refuses an unquoted \(value ?? ""))",
                          pair.value)
                case .null, .string, .list, .map: break
                }
            case "sub_criteria":
                criterion.subCriteria = decodeList(pair.value, "sub_criteria") { $0.decodeAdmissionCriterion($1) }
            case "type": criterion.type = optionalString(pair.value, "type")
            case "template_kind": criterion.templateKind = optionalString(pair.value, "template_kind")
            case "path": criterion.path = optionalString(pair.value, "path")
            case "value_type": criterion.valueType = optionalString(pair.value, "value_type")
            default:
                unknownField(pair, in: "admission criterion",
                             known: ["name", "op", "value", "sub_criteria", "type", "template_kind", "path", "value_type"])
            }
        }
        for (field, present) in [("name", name != nil), ("op", op != nil)] where !present {
            missing(field, in: "an admission criterion", node)
        }
        guard let name, let op else { return nil }
        criterion.name = name
        criterion.op = op
        criterion.value = value ?? ""
        criterion.origin = origin(node, pairs)
        return criterion
    }

    // MARK: - The other kinds: their fields, strictly (NeuVector's schema would drop an unknown one)

    mutating func checkShape(_ node: YAMLNode, _ shape: OpaqueShape, in what: String) {
        if node.isNull { return }
        switch (shape, node.content) {
        case (.any, _): return
        case (.map(let fields), .mapping(let pairs)):
            let known = fields.map(\.0)
            for pair in pairs {
                let key = pair.key.scalarText ?? ""
                guard let field = fields.first(where: { $0.0 == key }) else {
                    unknownField(pair, in: what, known: known)
                    continue
                }
                checkShape(pair.value, field.1, in: key)
            }
        case (.list(let item), .sequence(let items)):
            for element in items { checkShape(element, item, in: "an item of \(what)") }
        case (.map, .scalar), (.map, .sequence):
            error("\(what) must be a mapping, not \(node.kindName)", node)
        case (.list, .scalar), (.list, .mapping):
            error("\(what) must be a list, not \(node.kindName)", node)
        case (.map, .mapping), (.list, .sequence):
            return
        }
    }
}

/// The fields of the NeuVector kinds the hub passes through, from NeuVector's own types
/// (controller/resource/nvsecurityrule_def.go, controller/k8sapi/v1/securityrule_types.go, controller/api/apis.go).
indirect enum OpaqueShape: Sendable {
    case any
    case map([(String, OpaqueShape)])
    case list(OpaqueShape)

    static let criteria: OpaqueShape = .list(.map([("key", .any), ("op", .any), ("value", .any)]))
    static let patterns: OpaqueShape = .list(.map([("key", .any), ("op", .any), ("value", .any), ("context", .any)]))
    static let sensor: OpaqueShape = .map([("sensor", .map([
        ("name", .any), ("comment", .any), ("rules", .list(.map([("name", .any), ("patterns", patterns)]))),
    ]))])

    static func spec(of kind: ObjectKind) -> OpaqueShape? {
        switch kind {
        case .groupDefinition:
            return .map([("selector", .map([("name", .any), ("comment", .any), ("criteria", criteria)]))])
        case .dlp, .waf:
            return sensor
        case .responseRule:
            return .map([("rule", .map([
                ("policy_name", .any), ("event", .any), ("group", .any), ("actions", .list(.any)), ("comment", .any),
                ("disable", .any), ("webhooks", .list(.any)), ("conditions", .list(.map([("type", .any), ("value", .any)]))),
            ]))])
        case .vulnerabilityProfile:
            return .map([("profile", .map([("entries", .list(.map([
                ("name", .any), ("comment", .any), ("days", .any), ("domains", .list(.any)), ("images", .list(.any)),
            ])))]))])
        case .complianceProfile:
            return .map([("templates", .map([("disable_system", .any), ("entries", .list(.map([("test_number", .any), ("tags", .list(.any))])))]))])
        case .clusterSecurityRule, .securityRule, .admissionControl:
            return nil
        }
    }
}
