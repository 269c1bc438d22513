/// A workload as admission control sees it, described by the values its criteria read.
public struct AdmissionWorkload: Sendable, Hashable {
    public var namespace: String
    /// The image as written in the pod spec (`registry/repo:tag`, `repo:tag` or `repo`).
    public var image: String?
    public var labels: [String: String]
    public var annotations: [String: String]
    public var user: String?
    /// Values of the other criteria that take one value (`runAsPrivileged: true`, `cveHighCount: 3`); a
    /// true/false property not given is false.
    public var properties: [String: String]

    public init(namespace: String, image: String? = nil, labels: [String: String] = [:],
                annotations: [String: String] = [:], user: String? = nil, properties: [String: String] = [:]) {
        self.namespace = namespace
        self.image = image
        self.labels = labels
        self.annotations = annotations
        self.user = user
        self.properties = properties
    }

    /// The criterion names that take true/false.
    public static let booleanCriteria: Set<String> = Set(AdmissionOption.deny.filter { $0.value.values.contains("false") || $0.value.values == ["true"] }.keys)
}

/// NeuVector's admission matching (controller/cache/admission.go `isAdmissionRuleMet`, `isSetCriterionMet`,
/// `isComplexMapCriterionMet`, `matchImageValue`), for the criteria a workload description carries.
public enum AdmissionMatch {
    /// Criteria of one name: AND'd while every one so far is negative, OR'd once one is positive.
    public static func combine(_ results: [(met: Bool, positive: Bool)]) -> Bool {
        guard var (met, positive) = results.first else { return false }
        for result in results.dropFirst() {
            met = (!positive && !result.positive) ? (met && result.met) : (met || result.met)
            positive = positive || result.positive
        }
        return met
    }

    /// A criterion on a set of strings (`isSetCriterionMet`; a single string reads as a set of one).
    public static func set(_ c: AdmissionCriterion, _ values: Set<String>) -> Bool {
        let wanted = c.values
        func any(_ value: String) -> Bool { wanted.contains { Glob.matches($0, value) } }
        switch c.op {
        case "containsAny": return values.contains(where: any)
        case "notContainsAny": return !values.contains(where: any)
        case "containsAll":
            return !values.isEmpty && wanted.allSatisfy { w in values.contains { Glob.matches(w, $0) } }
        case "containsOtherThan": return values.contains { !any($0) }
        case "regex", "regexContainsAnyEx":
            return values.contains { v in wanted.contains { Coverage.regexMatches($0, v) } }
        case "!regex", "!regexContainsAnyEx":
            return !values.contains { v in wanted.contains { Coverage.regexMatches($0, v) } }
        case "=": return values.contains { Glob.matches(c.value.trimmed, $0) }
        case "!=": return !values.contains { Glob.matches(c.value.trimmed, $0) }
        default: return false
        }
    }

    /// A criterion on a map (labels, annotations): values are `key=value` or `key` (the key is there).
    public static func map(_ c: AdmissionCriterion, _ properties: [String: String]) -> Bool {
        func holds(_ wanted: String) -> Bool {
            if let eq = wanted.firstIndex(of: "=") {
                let key = String(wanted[..<eq]).trimmed
                let value = String(wanted[wanted.index(after: eq)...]).trimmed
                guard let actual = properties[key] else { return false }
                return Glob.matches(value, actual)
            }
            return properties[wanted.trimmed] != nil
        }
        let wanted = c.values
        switch c.op {
        case "containsAny": return wanted.contains(where: holds)
        case "notContainsAny": return !wanted.contains(where: holds)
        case "containsAll": return !properties.isEmpty && wanted.allSatisfy(holds)
        case "containsOtherThan":
            return properties.contains { key, value in
                !wanted.contains { w in
                    if let eq = w.firstIndex(of: "=") {
                        return String(w[..<eq]).trimmed == key && Glob.matches(String(w[w.index(after: eq)...]).trimmed, value)
                    }
                    return w.trimmed == key
                }
            }
        default: return false
        }
    }

    /// The registry of an image as NeuVector names it (`https://host/`), Docker Hub when none is written.
    public static func registry(of image: String) -> String {
        let first = image.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        let host = first.split(separator: ":").first.map(String.init) ?? ""
        if image.contains("/") && (host.contains(".") || host == "localhost") { return "https://\(first.lowercased())/" }
        return "https://docker.io/"
    }

    /// An `imageRegistry` criterion value as NeuVector stores it (`normalizeImageValue`, registry only).
    static func normalizedRegistry(_ value: String) -> String {
        var text = value.hasPrefix("https://") ? String(value.dropFirst("https://".count)) : value
        if let slash = text.firstIndex(of: "/") { text = String(text[..<slash]) }
        return "https://\(text.lowercased())/"
    }

    /// Whether an `image` criterion value names the image: with a registry when the value has one, with the
    /// tag when the value has one (`matchImageValue`).
    static func image(_ value: String, matches image: String) -> Bool {
        let imageRegistry = registry(of: image)
        var rest = image
        if imageRegistry != "https://docker.io/" || image.hasPrefix("docker.io/") {
            rest = String(image.drop { $0 != "/" }.dropFirst())
        }
        if !rest.contains("/") && imageRegistry == "https://docker.io/" { rest = "library/" + rest }
        let colon = rest.lastIndex(of: ":")
        let repo = colon.map { String(rest[..<$0]) } ?? rest
        let tag = colon.map { String(rest[rest.index(after: $0)...]) } ?? "latest"
        var wanted = value.hasPrefix("https://") ? String(value.dropFirst("https://".count)) : value
        var withRegistry = false
        if let slash = wanted.firstIndex(of: "/") {
            let host = wanted[..<slash].split(separator: ":").first.map(String.init) ?? ""
            withRegistry = host.contains(".") || host == "localhost" || value.hasPrefix("https://")
        }
        var registryPart = ""
        if withRegistry, let slash = wanted.firstIndex(of: "/") {
            registryPart = "https://\(wanted[..<slash].lowercased())/"
            wanted = String(wanted[wanted.index(after: slash)...])
        }
        let withTag = wanted.contains(":")
        let name = withTag ? "\(repo):\(tag)" : repo
        if withRegistry {
            let registries = imageRegistry == "https://docker.io/"
                ? ["https://docker.io/", "https://index.docker.io/", "https://registry.hub.docker.com/"] : [imageRegistry]
            return registries.contains { $0 == registryPart } && (Glob.matches(wanted, name) || Glob.matches(wanted, String(name.dropFirst("library/".count))))
        }
        return Glob.matches(wanted, name) || (name.hasPrefix("library/") && Glob.matches(wanted, String(name.dropFirst("library/".count))))
    }

    /// Whether one criterion holds for the workload, or nil when the description does not carry what it reads.
    public static func criterion(_ c: AdmissionCriterion, _ w: AdmissionWorkload) -> Bool? {
        switch c.name {
        case "namespace": return set(c, [w.namespace])
        case "labels": return map(c, w.labels)
        case "annotations": return map(c, w.annotations)
        case "user": return w.user.map { set(c, [$0]) }
        case "imageRegistry":
            guard let image = w.image else { return nil }
            var normalized = c
            normalized.value = c.values.map(normalizedRegistry).joined(separator: ",")
            return set(normalized, [registry(of: image)])
        case "image":
            guard let image = w.image else { return nil }
            let hits = c.values.map { AdmissionMatch.image($0, matches: image) }
            switch c.op {
            case "containsAny": return hits.contains(true)
            case "notContainsAny": return !hits.contains(true)
            case "containsAll": return hits.allSatisfy { $0 }
            case "containsOtherThan": return hits.contains(false)
            case "regex": return Coverage.regexMatches(c.value, image)
            default: return false
            }
        default:
            if AdmissionWorkload.booleanCriteria.contains(c.name), c.op == "=" {
                return set(c, [w.properties[c.name] ?? "false"])
            }
            guard let value = w.properties[c.name], c.subCriteria.isEmpty, let number = Double(value),
                  let wanted = Double(c.value.trimmed) else { return nil }
            switch c.op {
            case ">=": return number >= wanted
            case ">": return number > wanted
            case "<=": return number <= wanted
            default: return nil
            }
        }
    }

    /// Whether a rule matches the workload, or nil when one of its criteria cannot be decided from it.
    public static func rule(_ rule: AdmissionRule, _ w: AdmissionWorkload) -> Bool? {
        var groups: [String: [(met: Bool, positive: Bool)]] = [:]
        for c in rule.criteria {
            guard let met = criterion(c, w) else { return nil }
            groups[c.name, default: []].append((met, c.isPositive))
        }
        if groups.isEmpty { return false }
        return groups.values.allSatisfy { combine($0) }
    }
}

/// Which rule of a cluster's `local` admission object decides a workload, in NeuVector's order: every allow
/// rule, then every deny rule, then allow (SEMANTICS §3.9).
public struct AdmissionDecision: Sendable {
    public var action: RuleAction
    public var deciding: PlacedAdmissionRule?
    /// Denies that match but come after the deciding allow.
    public var beaten: [PlacedAdmissionRule]
    /// Rules whose criteria the workload description does not carry (the answer assumes they do not match).
    public var undecided: [PlacedAdmissionRule]
    public var notes: [String]
}

extension CompiledAdmission {
    public func decide(_ workload: AdmissionWorkload) -> AdmissionDecision {
        var undecided: [PlacedAdmissionRule] = []
        var matching: [PlacedAdmissionRule] = []
        for entry in rules where !entry.rule.isDisabled && entry.rule.containerKinds.contains("containers") {
            switch AdmissionMatch.rule(entry.rule, workload) {
            case true?: matching.append(entry)
            case false?: continue
            case nil: undecided.append(entry)
            }
        }
        var notes: [String] = []
        if config?.enable == false { notes.append("admission control is disabled in spec.config (enable: false): NeuVector admits everything") }
        if config?.mode == "monitor" { notes.append("spec.config mode is monitor: a deny is logged, not enforced") }
        let allows = matching.filter { $0.action == .allow }
        let denies = matching.filter { $0.action == .deny }
        if let first = allows.first {
            return AdmissionDecision(action: .allow, deciding: first, beaten: denies, undecided: undecided, notes: notes)
        }
        if let first = denies.first {
            if first.rule.ruleMode == "monitor" { notes.append("the deciding deny has rule_mode monitor: it is logged, not enforced") }
            return AdmissionDecision(action: .deny, deciding: first, beaten: [], undecided: undecided, notes: notes)
        }
        notes.append("no rule matches: NeuVector admits the workload")
        return AdmissionDecision(action: .allow, deciding: nil, beaten: [], undecided: undecided, notes: notes)
    }
}
