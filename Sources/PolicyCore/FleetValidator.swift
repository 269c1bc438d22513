/// The member clusters and environments as read from `clusters/`, before validation.
public struct FleetConfig: Sendable, Hashable {
    public var environments: [Environment]
    public var clusters: [MemberCluster]
    /// Repository path of the environments file, for problems that concern the whole list.
    public var environmentsFile: String

    public init(environments: [Environment], clusters: [MemberCluster],
                environmentsFile: String = "clusters/environments.yaml") {
        self.environments = environments
        self.clusters = clusters
        self.environmentsFile = environmentsFile
    }
}

/// A fleet that passed validation: one root environment, a promotion tree, clusters in known environments.
public struct ValidatedFleet: Sendable, Hashable {
    /// Environments, the root first, then each after the one it promotes from.
    public let environments: [Environment]
    /// Clusters sorted by name.
    public let clusters: [MemberCluster]

    public var root: Environment? { environments.first }

    public func environment(named name: String) -> Environment? { environments.first { $0.name == name } }

    public func cluster(named name: String) -> MemberCluster? { clusters.first { $0.name == name } }
}

/// Validates `clusters/` (SEMANTICS §1.1, §1.2, §2).
public enum FleetValidator {
    /// Checks environments and clusters. `checkTarget` looks at what lies outside the repository (a
    /// kubeconfig file, its context and its user) and returns its problems, each located (at the
    /// cluster's target, or at the kubeconfig's own line); `parallel` spreads those checks (file reads)
    /// over cores.
    public static func validate(_ fleet: FleetConfig, parallel: ParallelFor = .serial,
                                checkTarget: @escaping @Sendable (MemberCluster) -> [Diagnostic] = { _ in [] })
        -> Validation<ValidatedFleet>
    {
        let clusters = fleet.clusters
        let problems = ResultSlots<[Diagnostic]>(count: clusters.count)
        parallel.run(clusters.count) { index in problems.set(index, checkTarget(clusters[index])) }
        let targetProblems = problems.values
        var diagnostics: [Diagnostic] = []
        func error(_ message: String, _ at: SourceLocation) { diagnostics.append(.error(message, at: at, rule: "fleet")) }
        let fileStart = SourceLocation.start(of: fleet.environmentsFile)

        var byName: [String: Environment] = [:]
        for env in fleet.environments {
            if !NeuVectorNames.isDNS1123Label(env.name) {
                error("environment name '\(env.name)' must be a DNS-1123 label (lower-case letters, digits, '-')",
                      env.origin.at("name"))
            }
            if byName[env.name] != nil {
                error("environment '\(env.name)' is defined twice", env.origin.at("name"))
            }
            byName[env.name] = env
            if env.defaultPolicyMode < env.minimumPolicyMode {
                diagnostics.append(.warning(
                    "defaultPolicyMode \(env.defaultPolicyMode.rawValue) is below minimumPolicyMode \(env.minimumPolicyMode.rawValue); targets get \(env.minimumPolicyMode.rawValue)",
                    at: env.origin.at("defaultPolicyMode"), rule: "fleet"))
            }
        }
        let roots = fleet.environments.filter { $0.promotesFrom == nil }
        if fleet.environments.isEmpty {
            error("no environments are defined", fileStart)
        } else if roots.count != 1 {
            error("exactly one environment must have no promotesFrom (found \(roots.count): \(roots.map(\.name).joined(separator: ", ")))",
                  roots.dropFirst().first?.origin.location ?? fileStart)
        }
        for env in fleet.environments {
            guard let source = env.promotesFrom else { continue }
            if byName[source] == nil {
                error("promotesFrom names an " + EditDistance.unknown("environment", source, known: fleet.environments.map(\.name)), env.origin.at("promotesFrom"))
                continue
            }
            var seen: Set<String> = [env.name]
            var cursor = byName[source]
            while let current = cursor {
                if !seen.insert(current.name).inserted {
                    error("promotesFrom of '\(env.name)' forms a cycle", env.origin.at("promotesFrom"))
                    break
                }
                cursor = current.promotesFrom.flatMap { byName[$0] }
            }
        }

        var clusterNames: [String: SourceLocation] = [:]
        for (index, cluster) in fleet.clusters.enumerated() {
            let nameAt = cluster.origin.at("name")
            if !NeuVectorNames.isDNS1123Label(cluster.name) {
                error("cluster name '\(cluster.name)' must be a DNS-1123 label (lower-case letters, digits, '-', at most 63)",
                      nameAt)
            }
            if let first = clusterNames[cluster.name] {
                error("cluster '\(cluster.name)' is registered twice (first at \(first))", nameAt)
            } else {
                clusterNames[cluster.name] = nameAt
            }
            if byName[cluster.environment] == nil {
                error(EditDistance.unknown("environment", cluster.environment, known: fleet.environments.map(\.name)), cluster.origin.at("environment"))
            }
            for (key, value) in cluster.labels.sorted(by: { $0.key < $1.key }) {
                if key == "environment" {
                    error("the label 'environment' is set from spec.environment; remove it from metadata.labels",
                          cluster.origin.at("labels"))
                } else if !LabelSelector.isValidLabelKey(key) || !LabelSelector.isValidLabelValue(value) {
                    error("label '\(key)=\(value)' is not a valid Kubernetes label", cluster.origin.at("labels"))
                }
            }
            diagnostics += targetProblems[index]
        }
        let sorted = diagnostics.sorted()
        if sorted.hasErrors { return Validation(value: nil, diagnostics: sorted) }
        var ordered: [Environment] = roots
        var remaining = fleet.environments.filter { $0.promotesFrom != nil }
        while !remaining.isEmpty {
            let next = remaining.filter { env in ordered.contains { $0.name == env.promotesFrom } }
            if next.isEmpty { break }
            ordered += next.sorted { $0.name < $1.name }
            remaining.removeAll { env in next.contains { $0.name == env.name } }
        }
        let fleetValue = ValidatedFleet(environments: ordered, clusters: fleet.clusters.sorted { $0.name < $1.name })
        return Validation(value: fleetValue, diagnostics: sorted)
    }
}
