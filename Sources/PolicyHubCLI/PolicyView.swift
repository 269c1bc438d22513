import ArgumentParser
import Foundation
import HubEngine
import HubStore
import PolicyCore

/// Which policy a view of effective policy shows (SEMANTICS §7): the working tree `policies/` (a preview),
/// what an environment holds (its desired revision, which the hub pushes), or one stored revision.
enum PolicyView {
    case workingTree
    case environment(String, Revision)
    case revision(Revision)
    /// What a member holds now, read from it (`explain --live`).
    case live(String)

    /// The words a command's first line uses.
    var description: String {
        switch self {
        case .workingTree: return "the working tree policies/ (a preview; --env ENV shows what an environment holds)"
        case .environment(let name, let revision): return "what \(name) holds: its desired revision r\(revision.id)"
        case .revision(let revision): return "stored revision r\(revision.id) of \(revision.environment)"
        case .live(let cluster): return "what \(cluster) holds now (read from the member)"
        }
    }

    /// The stored revision shown, if any.
    var storedRevision: Revision? {
        switch self {
        case .workingTree, .live: return nil
        case .environment(_, let revision), .revision(let revision): return revision
        }
    }
}

/// `--env ENV` and `--revision rN`: the options that choose a `PolicyView`.
struct PolicyViewOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Show what environment ENV holds (its desired revision, which the hub pushes) instead of the working tree.",
                                            valueName: "env"))
    var env: String?

    @Option(name: .long, help: ArgumentHelp("Show a stored revision (r12) instead of the working tree.", valueName: "rN"))
    var revision: String?

    func validate() throws {
        if env != nil && revision != nil { throw ValidationError("give --env or --revision, not both") }
        if let revision, PolicyViewOptions.revisionID(revision) == nil {
            throw ValidationError("--revision '\(revision)' is not a revision such as r12 or 12")
        }
    }

    static func revisionID(_ text: String) -> Int64? {
        Int64(text.hasPrefix("r") ? String(text.dropFirst()) : text).flatMap { $0 > 0 ? $0 : nil }
    }

    /// What a view renders: the renderer, the fleet, the clusters it concerns (those of the revision's
    /// environment for a stored one) and which view it is. Exit 1 with a clear message when the
    /// environment or revision is unknown, or the working tree is invalid.
    func resolve(_ repository: RepositoryOptions, statePath: String?) throws -> (renderer: Renderer, fleet: ValidatedFleet,
                                                                                   clusters: [MemberCluster], view: PolicyView) {
        if env == nil && revision == nil {
            let (workspace, renderer) = try openValid(repository)
            printCapped(workspace.diagnostics.map(\.description))
            guard let fleet = workspace.fleet else { throw ExitStatus.failure }
            return (renderer, fleet, fleet.clusters, .workingTree)
        }
        let session = try cli { () throws(EngineError) in try repository.engine(state: statePath).open(workingTree: .optional) }
        let view = try stored(in: session)
        guard let shown = view.storedRevision else { throw ExitStatus.failure }
        let renderer = try cli { () throws(EngineError) in try session.renderer(for: shown) }
        return (renderer, session.fleet, session.fleet.clusters.filter { $0.environment == shown.environment }, view)
    }

    /// The environment's desired revision (`--env`) or the stored revision (`--revision`) in `session`'s
    /// store; exit 1 with a clear message when the environment or revision is unknown.
    func stored(in session: HubSession) throws -> PolicyView {
        let (env, revision) = (env, revision)
        return try cli { () throws(EngineError) -> PolicyView in
            if let env { return .environment(env, try session.desiredRevision(of: env)) }
            return .revision(try session.storedRevision(PolicyViewOptions.revisionID(revision ?? "") ?? 0))
        }
    }
}
