import PolicyCore

/// Decodes `clusters/*.yaml`: `MemberCluster` documents and the `EnvironmentList`.
extension PolicyDecoder {
    /// The hub's own API version for cluster and environment files.
    public static let hubAPIVersion = "policyhub.dev/v1alpha1"

    /// Reads one file of `clusters/`, which may hold an `EnvironmentList` and `MemberCluster` documents.
    public static func decodeFleetFile(_ bytes: [UInt8], file: String, limits: YAMLLimits = .default)
        -> (environments: [Environment], clusters: [MemberCluster], diagnostics: [Diagnostic])
    {
        switch YAMLParser.parseDocuments(bytes, file: file, limits: limits) {
        case .failure(let diagnostic):
            return ([], [], [diagnostic])
        case .success(let documents):
            var decoder = PolicyDecoder(file: file)
            var environments: [Environment] = []
            var clusters: [MemberCluster] = []
            for document in documents where !document.isNull {
                guard let pairs = decoder.pairs(document, "a document") else { continue }
                let kindNode = pairs.first { $0.key.scalarText == "kind" }?.value
                let apiNode = pairs.first { $0.key.scalarText == "apiVersion" }?.value
                if let apiNode, apiNode.scalarText != hubAPIVersion {
                    decoder.error("apiVersion must be '\(hubAPIVersion)'", apiNode)
                }
                switch kindNode?.scalarText {
                case "MemberCluster":
                    if let cluster = decoder.decodeCluster(document, pairs) { clusters.append(cluster) }
                case "EnvironmentList":
                    environments += decoder.decodeEnvironments(pairs)
                case let other?:
                    decoder.error("unknown kind '\(other)' in clusters/; expected MemberCluster or EnvironmentList",
                                  kindNode ?? document)
                case nil:
                    decoder.missing("kind", in: "the document", document)
                }
            }
            return (environments, clusters, decoder.diagnostics)
        }
    }

    mutating func decodeCluster(_ node: YAMLNode, _ pairs: [YAMLPair]) -> MemberCluster? {
        var name: String?
        var labels: [String: String] = [:]
        var environment: String?
        var target: MemberTarget?
        var fields = origin(node, pairs).fields
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "apiVersion", "kind": continue
            case "metadata":
                guard let meta = self.pairs(pair.value, "metadata") else { continue }
                for field in meta {
                    switch field.key.scalarText ?? "" {
                    case "name":
                        name = string(field.value, "metadata.name")
                        fields.append((name: "name", line: field.value.line, column: field.value.column))
                    case "labels":
                        labels = stringMap(field.value, "metadata.labels")
                        fields.append((name: "labels", line: field.value.line, column: field.value.column))
                    case "annotations": continue
                    default: unknownField(field, in: "metadata", known: ["name", "labels", "annotations"], strict: false)
                    }
                }
            case "spec":
                guard let spec = self.pairs(pair.value, "spec") else { continue }
                for field in spec {
                    switch field.key.scalarText ?? "" {
                    case "environment":
                        environment = string(field.value, "spec.environment")
                        fields.append((name: "environment", line: field.value.line, column: field.value.column))
                    case "target":
                        fields.append((name: "target", line: field.value.line, column: field.value.column))
                        target = decodeMemberTarget(field.value, origins: &fields)
                    default: unknownField(field, in: "spec", known: ["environment", "target"], strict: false)
                    }
                }
                if environment == nil { missing("environment", in: "spec", pair.value) }
                if !spec.contains(where: { $0.key.scalarText == "target" }) { missing("target", in: "spec", pair.value) }
            default: unknownField(pair, in: "MemberCluster", known: ["apiVersion", "kind", "metadata", "spec"], strict: false)
            }
        }
        guard let name else {
            missing("metadata.name", in: "MemberCluster", node)
            return nil
        }
        guard let environment, let target else { return nil }
        return MemberCluster(name: name, labels: labels, environment: environment, target: target,
                             origin: Origin(location: node.location(in: file), fields: fields))
    }

    mutating func decodeMemberTarget(_ node: YAMLNode, origins: inout [(name: String, line: Int32, column: Int32)]) -> MemberTarget? {
        guard let pairs = pairs(node, "target") else { return nil }
        var targets: [MemberTarget] = []
        for pair in pairs {
            switch pair.key.scalarText ?? "" {
            case "kubernetes":
                guard let fields = self.pairs(pair.value, "target.kubernetes") else { continue }
                var kubeconfig: String?
                var context: String?
                for field in fields {
                    switch field.key.scalarText ?? "" {
                    case "kubeconfig": kubeconfig = string(field.value, "kubeconfig")
                    case "context": context = optionalString(field.value, "context")
                    default:
                        error("unknown field '\(field.key.scalarText ?? "?")' in target.kubernetes; credentials belong in the kubeconfig file, never here",
                              field.key)
                    }
                }
                guard let kubeconfig else {
                    missing("kubeconfig", in: "target.kubernetes", pair.value)
                    continue
                }
                targets.append(.kubernetes(kubeconfig: kubeconfig, context: context))
            case "directory":
                guard let fields = self.pairs(pair.value, "target.directory") else { continue }
                guard let pathNode = fields.first(where: { $0.key.scalarText == "path" })?.value,
                      let path = string(pathNode, "path") else {
                    missing("path", in: "target.directory", pair.value)
                    continue
                }
                origins.append((name: "target.directory.path", line: pathNode.line, column: pathNode.column))
                targets.append(.directory(path: path))
            default: unknownField(pair, in: "target", known: ["kubernetes", "directory"], strict: false)
            }
        }
        guard targets.count == 1, let target = targets.first else {
            error("target must have exactly one of 'kubernetes' or 'directory' (found \(targets.count))", node)
            return nil
        }
        return target
    }

    /// `freeze: [{schedule: "0 18 * * 5", duration: 2h}]`: each window located on its own node when wrong.
    mutating func decodeFreeze(_ node: YAMLNode) -> [FreezeWindow] {
        guard let items = list(node, "freeze") else { return [] }
        var out: [FreezeWindow] = []
        for item in items {
            guard let fields = pairs(item, "a freeze window") else { continue }
            var schedule: CronExpression?
            var duration: (Int, String)?
            for field in fields {
                switch field.key.scalarText ?? "" {
                case "schedule":
                    guard let text = string(field.value, "schedule") else { continue }
                    do {
                        schedule = try CronExpression(text)
                    } catch {
                        self.error("freeze schedule '\(text)': \(error.message)", field.value)
                    }
                case "duration":
                    guard let text = string(field.value, "duration") else { continue }
                    if let seconds = DurationText.seconds(text), seconds > 0 {
                        duration = (seconds, text)
                    } else {
                        self.error("freeze duration '\(text)' is not a duration such as 30m, 2h or 1d", field.value)
                    }
                default: unknownField(field, in: "freeze window", known: ["schedule", "duration"], strict: true)
                }
            }
            if !fields.contains(where: { $0.key.scalarText == "schedule" }) { missing("schedule", in: "a freeze window", item) }
            if !fields.contains(where: { $0.key.scalarText == "duration" }) { missing("duration", in: "a freeze window", item) }
            if let schedule, let duration {
                out.append(FreezeWindow(schedule: schedule, durationSeconds: duration.0, durationText: duration.1))
            }
        }
        return out
    }

    mutating func decodeEnvironments(_ pairs: [YAMLPair]) -> [Environment] {
        guard let listNode = pairs.first(where: { $0.key.scalarText == "environments" })?.value,
              let items = list(listNode, "environments") else { return [] }
        var out: [Environment] = []
        for item in items {
            guard let fields = self.pairs(item, "an environment") else { continue }
            var env = Environment(name: "", origin: origin(item, fields))
            var sawName = false
            for field in fields {
                switch field.key.scalarText ?? "" {
                case "name":
                    sawName = true
                    env.name = string(field.value, "name") ?? ""
                case "promotesFrom": env.promotesFrom = optionalString(field.value, "promotesFrom")
                case "selfHeal": env.selfHeal = bool(field.value, "selfHeal") ?? false
                case "freeze": env.freeze = decodeFreeze(field.value)
                case "defaultPolicyMode":
                    env.defaultPolicyMode = enumeration(field.value, "defaultPolicyMode", PolicyMode.self)
                        ?? env.defaultPolicyMode
                case "minimumPolicyMode":
                    env.minimumPolicyMode = enumeration(field.value, "minimumPolicyMode", PolicyMode.self)
                        ?? env.minimumPolicyMode
                case "gates":
                    guard let gates = self.pairs(field.value, "gates") else { continue }
                    for gate in gates {
                        switch gate.key.scalarText ?? "" {
                        case "requireInSync": env.gates.requireInSync = bool(gate.value, "requireInSync") ?? false
                        case "requireNoDrift": env.gates.requireNoDrift = bool(gate.value, "requireNoDrift") ?? false
                        case "requireSignedCommits":
                            env.gates.requireSignedCommits = bool(gate.value, "requireSignedCommits") ?? false
                        case "minimumSoak":
                            guard let text = string(gate.value, "minimumSoak") else { continue }
                            if let seconds = DurationText.seconds(text) {
                                env.gates.minimumSoakSeconds = seconds
                            } else {
                                error("minimumSoak '\(text)' is not a duration such as 30m, 1h or 1h30m", gate.value)
                            }
                        default: unknownField(gate, in: "gates", known: ["requireInSync", "requireNoDrift", "minimumSoak", "requireSignedCommits"], strict: false)
                        }
                    }
                default: unknownField(field, in: "environment", known: ["name", "promotesFrom", "defaultPolicyMode", "minimumPolicyMode", "selfHeal", "gates", "freeze"], strict: false)
                }
            }
            if !sawName {
                missing("name", in: "an environment", item)
                continue
            }
            out.append(env)
        }
        return out
    }
}
