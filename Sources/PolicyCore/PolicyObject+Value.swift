/// The wire form of model values: what is printed as YAML or JSON, and what is hashed.
extension PolicyObject {
    /// The whole object as a value, keys in the order NeuVector's own exports use (sorted).
    public var wireValue: Value {
        var meta = ValueMapBuilder()
        meta.set("name", .string(metadata.name))
        meta.set("namespace", metadata.namespace.map(Value.string))
        meta.set("labels", metadata.labels.isEmpty ? nil : .stringMap(metadata.labels))
        meta.set("annotations", metadata.annotations.isEmpty ? nil : .stringMap(metadata.annotations))
        var object = ValueMapBuilder()
        object.set("apiVersion", .string(apiVersion))
        object.set("kind", .string(kind.rawValue))
        object.set("metadata", meta.value)
        switch body {
        case .securityRule(let spec): object.set("spec", spec.wireValue)
        case .admission(let spec): object.set("spec", spec.wireValue)
        case .opaque(let spec): object.set("spec", spec == .null ? nil : spec)
        }
        return object.value.canonical
    }

    /// The canonical spec, the part of an object that `policyhub.dev/hash` covers.
    public var specValue: Value {
        switch body {
        case .securityRule(let spec): return spec.wireValue.canonical
        case .admission(let spec): return spec.wireValue.canonical
        case .opaque(let spec): return spec.canonical
        }
    }
}

extension Value {
    static func stringMap(_ map: [String: String]) -> Value {
        .map(map.sorted { $0.key < $1.key }.map { Value.MapEntry($0.key, .string($0.value)) })
    }

    static func strings(_ list: [String]) -> Value { .list(list.map(Value.string)) }
}

extension SecurityRuleSpec {
    public var wireValue: Value {
        var spec = ValueMapBuilder()
        spec.set("target", target.wireValue)
        spec.set("ingress", .list(ingress.map(\.wireValue)))
        spec.set("egress", .list(egress.map(\.wireValue)))
        spec.set("process", .list(process.map(\.wireValue)))
        spec.set("file", .list(file.map(\.wireValue)))
        spec.set("process_profile", processProfile?.wireValue)
        spec.set("dlp", dlp?.wireValue)
        spec.set("waf", waf?.wireValue)
        spec.set("response", response.map(Value.list))
        return spec.value
    }
}

extension Target {
    public var wireValue: Value {
        var target = ValueMapBuilder()
        target.set("policymode", policyMode.map { .string($0.text) })
        target.set("selector", selector.wireValue)
        return target.value
    }
}

extension GroupSelector {
    public var wireValue: Value {
        var sel = ValueMapBuilder()
        sel.set("name", .string(name))
        sel.set("original_name", originalName.map(Value.string))
        sel.set("comment", comment.map(Value.string))
        sel.set("name_referral", nameReferral.map(Value.bool))
        if !criteria.isEmpty || nameReferral != true {
            sel.set("criteria", .list(criteria.map(\.wireValue)))
        }
        sel.set("mon_metric", monMetric.map(Value.bool))
        sel.set("grp_sess_cur", grpSessCur.map(Value.int))
        sel.set("grp_sess_rate", grpSessRate.map(Value.int))
        sel.set("grp_band_width", grpBandWidth.map(Value.int))
        return sel.value
    }
}

extension Criterion {
    public var wireValue: Value {
        .map([Value.MapEntry("key", .string(key)), Value.MapEntry("op", .string(op.rawValue)), Value.MapEntry("value", .string(value))])
    }
}

extension NetworkRule {
    public var wireValue: Value {
        var rule = ValueMapBuilder()
        rule.set("name", .string(name))
        rule.set("selector", selector.wireValue)
        rule.set("action", .string(action.rawValue))
        rule.set("applications", .strings(applications))
        rule.set("ports", ports.map(Value.string))
        rule.set("priority", priority.map(Value.int))
        return rule.value
    }
}

extension ProcessRule {
    public var wireValue: Value {
        var rule = ValueMapBuilder()
        rule.set("name", .string(name))
        rule.set("path", .string(path))
        rule.set("action", .string(action.rawValue))
        rule.set("allow_update", allowUpdate.map(Value.bool))
        return rule.value
    }
}

extension FileRule {
    public var wireValue: Value {
        .map([Value.MapEntry("filter", .string(filter)), Value.MapEntry("recursive", .bool(recursive)),
              Value.MapEntry("behavior", .string(behavior.rawValue)), Value.MapEntry("app", .strings(app))])
    }
}

extension ProcessProfile {
    public var wireValue: Value {
        var profile = ValueMapBuilder()
        profile.set("baseline", baseline.map(Value.string))
        profile.set("mode", mode.map(Value.string))
        return profile.value
    }
}

extension SensorSettings {
    public var wireValue: Value {
        .map([
            Value.MapEntry("status", .bool(status)),
            Value.MapEntry("settings", .list(settings.map {
                .map([Value.MapEntry("name", .string($0.name)), Value.MapEntry("action", .string($0.action.rawValue))])
            })),
        ])
    }
}

extension AdmissionSpec {
    public var wireValue: Value {
        var spec = ValueMapBuilder()
        spec.set("config", config?.wireValue)
        spec.set("rules", rules.isEmpty ? nil : .list(rules.map(\.wireValue)))
        return spec.value.canonical
    }
}

extension AdmissionConfig {
    public var wireValue: Value {
        var map = ValueMapBuilder()
        map.set("client_mode", clientMode.map(Value.string))
        map.set("enable", enable.map(Value.bool))
        map.set("mode", mode.map(Value.string))
        return map.value
    }
}

extension AdmissionRule {
    public var wireValue: Value {
        var map = ValueMapBuilder()
        map.set("action", action.map(Value.string))
        map.set("comment", comment.map(Value.string))
        map.set("containers", containers.map(Value.strings))
        map.set("conversion_id_ref", conversionIdRef.map(Value.int))
        map.set("criteria", .list(criteria.map(\.wireValue)))
        map.set("disabled", disabled.map(Value.bool))
        map.set("id", id.map(Value.int))
        map.set("rule_mode", ruleMode.map(Value.string))
        return map.value
    }
}

extension AdmissionCriterion {
    public var wireValue: Value {
        var map = ValueMapBuilder()
        map.set("name", .string(name))
        map.set("op", .string(op))
        map.set("path", path.map(Value.string))
        map.set("sub_criteria", subCriteria.isEmpty ? nil : .list(subCriteria.map(\.wireValue)))
        map.set("template_kind", templateKind.map(Value.string))
        map.set("type", type.map(Value.string))
        map.set("value", .string(value))
        map.set("value_type", valueType.map(Value.string))
        return map.value
    }
}
