import HubStore
import PolicyCore

/// The folders whose content a revision records: a difference from the commit there makes the tree dirty.
let recordedFolders = ["policies", "clusters"]

extension HubSession {
    /// The commit the working tree was read from, its signature checked against the operator's keys; nil
    /// when the repository is not a git work tree. Throws when `policies/` or `clusters/` differ from the
    /// commit, naming each file, unless `allowDirty` (then the provenance says `dirty`).
    public func workingTreeCommit(allowDirty: Bool) throws(EngineError) -> CommitProvenance? {
        guard let tree = GitWorkTree.at(engine.root) else { return nil }
        var commit: CommitProvenance
        do {
            commit = try tree.commit("HEAD", keys: engine.trustedKeys)
        } catch {
            if case .notFound = error { return nil }  // a work tree with no commit yet: nothing to tie to
            throw error
        }
        let differences = try tree.differences(from: commit.commit, folders: recordedFolders)
        if !differences.isEmpty {
            guard allowDirty else {
                let shown = differences.prefix(10).joined(separator: ", ") + (differences.count > 10 ? ", and \(differences.count - 10) more" : "")
                throw .invalid("policies/ or clusters/ differ from commit \(commit.shortCommit) (\(commit.subject)): \(shown); commit them, or pass --allow-dirty to record them as they are (the revision is marked dirty); nothing was recorded")
            }
            commit.dirty = true
            log.note("policyhub: warning: recording uncommitted changes on top of commit \(commit.shortCommit) (--allow-dirty): \(differences.count) file\(differences.count == 1 ? "" : "s")")
        }
        return commit
    }

    /// Whether `environment` takes only revisions from commits signed by a trusted key: its
    /// `requireSignedCommits` gate, or its desired revision was recorded under that gate (so that lifting
    /// the gate takes a signed commit too).
    public func requiresSignedCommits(_ environment: Environment) throws(EngineError) -> Bool {
        if environment.gates.requireSignedCommits { return true }
        let current = try stored { () throws(HubStoreError) in try store.desiredRevision(environment: environment.name) }
        return current?.commit?.signatureRequired == true
    }

    /// The `requireSignedCommits` gate of `environment` for a revision from `commit`: throws (412, which
    /// `--force` cannot override) naming the commit and the signer found when it is required and the commit
    /// is not signed by a trusted key; otherwise the provenance to record, marked when the gate holds.
    public func signatureGate(_ environment: Environment, commit: CommitProvenance?, what: String) throws(EngineError) -> CommitProvenance? {
        guard try requiresSignedCommits(environment) else { return commit }
        if let reason = HubSession.unsignedReason(commit) {
            throw .gateFailed([GateFailure(.requireSignedCommits, reason)],
                              message: "\(environment.name) takes only commits signed by a trusted key; \(what) was refused and nothing was recorded (--force cannot override this gate)")
        }
        var marked = commit
        marked?.signatureRequired = environment.gates.requireSignedCommits
        return marked
    }

    /// Why `commit` does not pass `requireSignedCommits`; nil when it does.
    static func unsignedReason(_ commit: CommitProvenance?) -> String? {
        guard let commit else { return "it comes from no git commit (the repository is not a git work tree, or it was written through the API)" }
        let signer = [commit.signer, commit.signingKey.map { "key \($0)" }].compactMap { $0 }.joined(separator: ", ")
        if commit.dirty { return "commit \(commit.shortCommit) has uncommitted changes on top (--allow-dirty); only a committed tree is signed" }
        switch commit.signature {
        case .good: return nil
        case .unsigned: return "commit \(commit.shortCommit) (\(commit.subject)) by \(commit.author) is not signed"
        case .unknownKey: return "commit \(commit.shortCommit) (\(commit.subject)) is signed by \(signer.isEmpty ? "an unknown key" : signer), which is not among the trusted keys (--trusted-keys, trustedKeys: in hub.yaml)"
        case .bad: return "commit \(commit.shortCommit) (\(commit.subject)) has a bad signature\(signer.isEmpty ? "" : " (\(signer))"): it does not match the commit, or its key expired or was revoked"
        }
    }

    /// The commit of a stored revision with its signature checked again against today's trusted keys, where the
    /// commit is still in the repository (a key removed since is no longer trusted); the stored provenance
    /// otherwise.
    /// Throws when a trusted key file cannot be read.
    public func recheckedCommit(of revision: Revision) throws(EngineError) -> CommitProvenance? {
        guard var commit = revision.commit else { return nil }
        guard let tree = GitWorkTree.at(engine.root) else { return commit }
        let now: CommitProvenance
        do {
            now = try tree.commit(commit.commit, keys: engine.trustedKeys)
        } catch {
            if case .notFound = error { return commit }  // no longer in this clone: what was checked when recorded
            throw error
        }
        commit.signature = now.signature
        commit.signer = now.signer
        commit.signingKey = now.signingKey
        return commit
    }
}
