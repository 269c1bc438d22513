import Foundation
import Members
import PolicyCore
import PolicyYAML

/// A policy repository read and validated: what every command starts from.
public struct Workspace: Sendable {
    public let repository: LoadedRepository
    /// Every problem, sorted by file, line and column.
    public let diagnostics: [Diagnostic]
    /// Present when the policy tree has no error.
    public let policy: ValidatedPolicySet?
    /// Present when `clusters/` has no error.
    public let fleet: ValidatedFleet?

    public var isValid: Bool { policy != nil && fleet != nil && !diagnostics.hasErrors }

    /// The errors of the policy tree alone (not of clusters/), for commands that can work without it.
    public var policyErrors: [Diagnostic] {
        diagnostics.filter { $0.isError && !$0.location.file.hasPrefix("clusters/") }
    }

    /// Reads and validates the repository at `root`.
    public static func open(root: String, limits: YAMLLimits = .default, exec: ExecSettings = ExecSettings()) -> Workspace {
        let repository = RepositoryLoader.load(root: root, limits: limits)
        let policy = PolicyValidator.validate(repository.tree, parallel: .dispatch)
        let fleet = FleetValidator.validate(repository.fleet, parallel: .dispatch) {
            KubeconfigCheck.problems($0, root: root, exec: exec)
        }
        // a placement must select some cluster of the fleet (checked when both read)
        var placement = policy.value.flatMap { tree in fleet.value.map { PlacementCheck.problems(tree, fleet: $0) } } ?? []
        if placement.isEmpty, let tree = policy.value, let members = fleet.value {
            placement = AmbiguityCheck.problems(tree, fleet: members, parallel: .dispatch)
        }
        let directories = DirectoryCheck.problems(repository.fleet.clusters, root: root)
        let all = (repository.diagnostics + policy.diagnostics + fleet.diagnostics + directories + placement).sorted()
        // a file of clusters/ that does not decode spoils the fleet; any other one, the policy tree
        let fleetDecodes = !repository.diagnostics.contains { $0.isError && $0.location.file.hasPrefix("clusters/") }
        let policyDecodes = !repository.diagnostics.contains { $0.isError && !$0.location.file.hasPrefix("clusters/") }
        return Workspace(repository: repository, diagnostics: all, policy: policyDecodes && placement.isEmpty ? policy.value : nil,
                         fleet: fleetDecodes && directories.isEmpty ? fleet.value : nil)
    }

    /// A renderer for the working tree, with the tree's content hash as its revision unless one is given.
    public func renderer(revision: String? = nil) -> Renderer? {
        guard isValid, let policy, let fleet else { return nil }
        let id = revision ?? "tree-" + policy.contentHash.dropFirst("sha256:".count).prefix(12)
        return Renderer(policy: policy, fleet: fleet, revision: id)
    }
}

extension ParallelFor {
    /// Spreads the work over every core with Dispatch.
    public static let dispatch = ParallelFor { count, body in
        if count < 2 {
            for index in 0..<count { body(index) }
        } else {
            DispatchQueue.concurrentPerform(iterations: count, execute: body)
        }
    }
}
