import Foundation
import HubStore
import HubTransport
import Members
import PolicyCore
import PolicyYAML

/// Where the hub keeps its state.
enum StateOptions {
    static let defaultPath = ".policyhub/state.sqlite"
}

/// A validated repository, the state store and the members: what `apply`, `plan` and `status` work with.
struct HubSession {
    /// What a command needs of the working tree `policies/`.
    enum WorkingTree {
        /// It records or previews the working tree (apply, plan): an invalid tree stops it.
        case required
        /// It works from stored revisions (drift, promote, rollback, the daemon): an invalid tree is named
        /// and the command goes on without it (SEMANTICS §8).
        case optional
    }

    let workspace: Workspace
    /// The validated working tree; nil when it is invalid and the command works from stored revisions.
    let policy: ValidatedPolicySet?
    let fleet: ValidatedFleet
    let store: SQLiteHubStore
    let root: String
    /// One libcurl transport for every Kubernetes member of this run, started on first use.
    let transports = TransportHolder()
    /// How long each member may take and how much a push may delete (commands set it from their options).
    var limits = MemberLimits()

    /// Opens the repository and the state file; exit 1 when clusters/ is invalid, or policies/ is and the
    /// command needs it.
    static func open(repository: RepositoryOptions, statePath: String?, workingTree: WorkingTree = .required) throws -> HubSession {
        let workspace = Workspace.open(root: repository.root)
        guard let fleet = workspace.fleet, !workspace.diagnostics.contains(where: { $0.isError && $0.location.file.hasPrefix("clusters/") }),
              workspace.policy != nil || workingTree == .optional else {
            report(workspace.diagnostics)
            printError("policyhub: the policy repository is invalid; nothing was recorded or pushed")
            throw ExitStatus.failure
        }
        let policy = workspace.isValid ? workspace.policy : nil
        if policy == nil {
            let errors = workspace.policyErrors
            printError("policyhub: warning: policies/ is invalid (\(errors.count) error\(errors.count == 1 ? "" : "s"), first: \(errors.first?.description ?? "?")); working from the stored revisions, nothing is recorded from policies/ until it validates (policyhub validate lists every error)")
        } else {
            for diagnostic in workspace.diagnostics { printError(diagnostic.description) }
        }
        let path = resolve(statePath ?? StateOptions.defaultPath, root: repository.root)
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            let store = try SQLiteHubStore(path: path)
            let working = policy?.documents.map(StoredDocument.init) ?? []
            return HubSession(workspace: workspace, policy: policy, fleet: fleet, store: store, root: repository.root,
                              workingDocuments: working,
                              workingTreeHash: policy == nil ? "invalid working tree" : SQLiteHubStore.treeHash(working))
        } catch let error as HubStoreError {
            printError("policyhub: \(error)")
            throw ExitStatus.failure
        }
    }

    /// The state file a command names (`--state`), or the default, as an absolute path.
    static func statePath(repository: RepositoryOptions, state: String?) -> String {
        resolve(state ?? StateOptions.defaultPath, root: repository.root)
    }

    static func resolve(_ path: String, root: String) -> String {
        path.hasPrefix("/") ? path : (root as NSString).appendingPathComponent(path)
    }

    /// The documents of the working tree, as a revision would hold them.
    let workingDocuments: [StoredDocument]
    /// The tree hash a revision of the working tree has (computed once: it serializes every document).
    let workingTreeHash: String

    /// The root environment's revision for policies/ as it is now: the desired one when the tree is
    /// unchanged (`isNew` false), otherwise the revision an apply would record (not stored).
    func rootRevisionForWorkingTree(author: String) throws -> (revision: Revision, isNew: Bool)? {
        guard let root = fleet.root, policy != nil else { return nil }
        let documents = workingDocuments
        let treeHash = workingTreeHash
        let current = try storeCall { try store.desiredRevision(environment: root.name) }
        if let current, current.treeHash == treeHash { return (current, false) }
        let next = try storeCall { try store.revisions(environment: nil).first?.id ?? 0 } + 1
        return (Revision(id: next, environment: root.name, parent: current?.id, author: author, createdAt: now(),
                         cause: "apply", treeHash: treeHash, documentCount: documents.count), true)
    }

    /// The member a cluster is pushed to.
    func member(for cluster: MemberCluster) -> Result<any Member, MemberError> {
        switch cluster.target {
        case .directory(let path):
            return .success(DirectoryMember(cluster: cluster.name, root: HubSession.resolve(path, root: root)))
        case .kubernetes(let kubeconfig, let context):
            do throws(KubeconfigError) {
                let endpoint = try Kubeconfig.endpoint(path: KubeconfigCheck.resolve(kubeconfig, root: root), context: context)
                return .success(KubernetesMember(cluster: cluster.name, endpoint: endpoint, transport: transports.transport,
                                                 deadline: now() + limits.clusterTimeout, maxDeletions: limits.maxDeletions))
            } catch {
                return .failure(MemberError(cluster: cluster.name, message: error.description))
            }
        }
    }

    /// A renderer for a stored revision: the working tree when the revision holds exactly it, otherwise the
    /// revision's own documents, validated again.
    func renderer(for revision: Revision) throws -> Renderer {
        let id = "r\(revision.id)"
        if let policy, revision.treeHash == workingTreeHash {
            return Renderer(policy: policy, fleet: fleet, revision: id)
        }
        let documents: [StoredDocument]
        do {
            documents = try store.documents(revision: revision.id)
        } catch {
            printError("policyhub: \(error)")
            throw ExitStatus.failure
        }
        let validated = HubSession.validate(HubSession.objects(of: documents))
        guard let stored = validated.value else {
            report(validated.diagnostics)
            printError("policyhub: revision \(revision.id) of \(revision.environment) no longer validates")
            throw ExitStatus.failure
        }
        return Renderer(policy: stored, fleet: fleet, revision: id)
    }

    /// The objects of stored documents, decoded on all cores, in document order.
    static func objects(of documents: [StoredDocument]) -> [PolicyObject] {
        let slots = ResultSlots<[PolicyObject]>(count: documents.count)
        ParallelFor.dispatch.run(documents.count) { index in
            slots.set(index, PolicyDecoder.decodeFile(Array(documents[index].body.utf8), file: documents[index].source).objects)
        }
        return slots.values.flatMap { $0 }
    }

    /// Validates a tree of stored objects on all cores.
    static func validate(_ objects: [PolicyObject]) -> Validation<ValidatedPolicySet> {
        PolicyValidator.validate(PolicyTree(objects: objects), parallel: .dispatch)
    }

    /// Clusters by name, or all, with a clear error for an unknown one.
    func clusters(named names: [String]) throws -> [MemberCluster] {
        if names.isEmpty { return fleet.clusters }
        for name in names where fleet.cluster(named: name) == nil {
            printError("policyhub: unknown cluster '\(name)' (known: \(fleet.clusters.map(\.name).joined(separator: ", ")))")
            throw ExitStatus.failure
        }
        return fleet.clusters.filter { names.contains($0.name) }
    }
}

/// Starts the libcurl transport (and its thread) only when a Kubernetes member needs it, and stops it
/// before the process exits, so that no transfer thread outlives the command.
final class TransportHolder: @unchecked Sendable {
    private let lock = NSLock()
    private var started: CurlTransport?

    var transport: CurlTransport {
        lock.lock()
        defer { lock.unlock() }
        if let started { return started }
        let made = CurlTransport()
        started = made
        return made
    }

    func shutdown() {
        lock.lock()
        let running = started
        started = nil
        lock.unlock()
        running?.shutdown()
    }
}

/// An exclusive lock beside the state file. `.state` (`state.sqlite.lock`) is held by every writer of a
/// revision while it reads and records, and never across a member's network time; `.push`
/// (`state.sqlite.push.lock`) by a run while it pushes, so that two runs push in turns.
final class StateLock {
    enum Purpose {
        case state, push
    }

    private let fd: Int32
    let path: String

    /// Takes the lock, waiting up to `timeout` seconds for another holder, saying so once.
    init(statePath: String, timeout: Double, purpose: Purpose = .state) throws {
        path = statePath + (purpose == .state ? ".lock" : ".push.lock")
        try? FileManager.default.createDirectory(atPath: (statePath as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            printError("policyhub: cannot open the lock file \(path): \(String(cString: strerror(errno)))")
            throw ExitStatus.failure
        }
        var waited = 0.0
        var announced = false
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if !announced {
                let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
                printError("policyhub: another policyhub run (pid \(holder)) holds \(path); waiting up to \(Int(timeout)) s")
                announced = true
            }
            if waited >= timeout {
                close(fd)
                printError("policyhub: gave up waiting for \(path) after \(Int(timeout)) s")
                throw ExitStatus.failure
            }
            usleep(200_000)
            waited += 0.2
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { write(fd, $0, strlen($0)) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// Seconds since 1970, the clock the CLI gives the store.
func now() -> Double { Date().timeIntervalSince1970 }

/// Who is acting: `--author`, else the login name.
func currentAuthor(_ explicit: String?) -> String {
    explicit ?? ProcessInfo.processInfo.environment["USER"] ?? ProcessInfo.processInfo.environment["LOGNAME"] ?? "unknown"
}
