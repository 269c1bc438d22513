import Foundation
import HubStore
import Members
import PolicyCore

/// The branch the daemon follows (`repository: {url, branch}` in hub.yaml), checked out in a folder of its own.
public struct FollowedBranch: Sendable, Hashable {
    /// A local path, `file://`, `ssh://`, `user@host:path` or `https://` remote.
    public var url: String
    public var branch: String
    /// The hub's own clone; the engine reads the repository here.
    public var checkout: String

    public init(url: String, branch: String, checkout: String) {
        self.url = url
        self.branch = branch
        self.checkout = checkout
    }

    /// Why `url` or `branch` cannot be followed; nil when they can. Only the transports named above: never
    /// git's `ext::` (which runs a command) or anything that reads as an option.
    public static func problem(url: String, branch: String) -> String? {
        if url.isEmpty || url.hasPrefix("-") { return "repository.url '\(url)' is not a repository" }
        let schemes = ["file://", "ssh://", "https://", "http://", "git://"]
        let scpLike = !url.contains("://") && url.contains(":") && !url.hasPrefix("/") && !url.contains("::")
        if !(url.hasPrefix("/") || schemes.contains(where: url.hasPrefix) || scpLike) {
            return "repository.url '\(url)' is not an absolute path, file://, ssh://, user@host:path or https:// remote"
        }
        if branch.isEmpty || branch.hasPrefix("-") || branch.contains("..") || branch.contains(where: { " ~^:?*[\\".contains($0) || $0.isNewline }) {
            return "repository.branch '\(branch)' is not a branch name"
        }
        return nil
    }
}

/// What one sync of the followed branch did, commit by commit.
public struct FollowRun: Sendable {
    /// One new commit of the branch, in order.
    public struct Step: Sendable {
        public var commit: CommitProvenance
        /// The revision it recorded (nil when it was rejected, or changed nothing in policies/).
        public var revision: Revision?
        /// Why it was rejected (its validation errors, a refused gate); empty when accepted.
        public var errors: [String]
        public var accepted: Bool { errors.isEmpty }
    }

    /// The branch's head after the fetch.
    public var head: String?
    public var steps: [Step] = []
    /// The push of what the accepted commits recorded (nil when nothing was accepted).
    public var summary: PushSummary?

    public init(head: String?) { self.head = head }

    /// The last commit the fleet is on.
    public var rejected: [Step] { steps.filter { !$0.accepted } }
}

extension GitWorkTree {
    /// The ref that names the last commit the hub accepted from the followed branch.
    static let acceptedRef = "refs/policyhub/accepted"

    /// The hub's clone of `followed`: made on first use (no checkout yet), fetched on every call. Returns the
    /// work tree and the branch's head. Throws with git's message when the remote cannot be read.
    public static func fetch(_ followed: FollowedBranch) throws(EngineError) -> (tree: GitWorkTree, head: String) {
        if let problem = FollowedBranch.problem(url: followed.url, branch: followed.branch) { throw .invalid(problem) }
        guard let git = GitWorkTree.programs.git else { throw .failure("git is not installed (apt-get install git)") }
        let transports = GitWorkTree.transports
        let tree = GitWorkTree(root: followed.checkout, git: git)
        if !FileManager.default.fileExists(atPath: followed.checkout + "/.git") {
            let parent = (followed.checkout as NSString).deletingLastPathComponent
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw .failure("cannot create \(parent) for the checkout of \(followed.url): \(error.localizedDescription)")
            }
            let outside = GitWorkTree(root: parent, git: git)
            do {
                _ = try outside.run(transports + ["clone", "--quiet", "--no-checkout", "--single-branch", "--branch", followed.branch, "--",
                                                  followed.url, followed.checkout], check: nil)
            } catch {
                throw .failure("cannot clone \(followed.url) (branch \(followed.branch)): \(error.message)")
            }
        }
        do {
            return (tree, try tree.fetchBranch(followed.branch))
        } catch {
            throw .failure("cannot fetch \(followed.branch) from \(followed.url): \(error.message)")
        }
    }

    /// Fetches `branch` from origin into `refs/remotes/origin/BRANCH`; its head.
    func fetchBranch(_ branch: String) throws(EngineError) -> String {
        _ = try run(GitWorkTree.transports + ["fetch", "--quiet", "--no-tags", "origin", "+refs/heads/\(branch):refs/remotes/origin/\(branch)"],
                    check: nil)
        return try line(["rev-parse", "--verify", "refs/remotes/origin/\(branch)^{commit}"])
    }

    /// The commit the hub last accepted, if any.
    func accepted() -> String? {
        guard let id = try? line(["rev-parse", "--verify", "--quiet", GitWorkTree.acceptedRef + "^{commit}"]) else { return nil }
        return id.isEmpty ? nil : id
    }

    /// The commits after `from` up to `to`, oldest first, along first parents (the branch's own history); only
    /// `to` when `from` is nil or not an ancestor (the branch was rewritten).
    func commits(after from: String?, upTo to: String) throws(EngineError) -> [String] {
        guard let from, from != to else { return from == to ? [] : [to] }
        guard (try? run(["merge-base", "--is-ancestor", from, to], check: nil)) != nil else { return [to] }
        return try run(["rev-list", "--first-parent", "--reverse", "\(from)..\(to)"], check: nil)
            .split(separator: "\n").map(String.init)
    }

    /// Puts the work tree at `commit` (tracked files only; the hub's own folders beside them stay).
    func checkOut(_ commit: String) throws(EngineError) {
        _ = try run(["checkout", "--quiet", "--force", "--detach", commit], check: nil)
    }

    /// Commits the change of `path` (added, changed or removed) as `author`, with the hub as committer, and pushes
    /// it to `branch`; returns the commit. A refused push (the branch moved) undoes the commit and the file and is
    /// a conflict naming the branch's new head.
    func commitAndPush(_ path: String, author: String, message: String, branch: String) throws(EngineError) -> String {
        let name = author.filter { !"<>\n".contains($0) }
        _ = try run(["add", "-A", "--", path], check: nil)
        _ = try run(["-c", "user.name=PolicyHub", "-c", "user.email=policyhub@localhost", "commit", "-q", "--no-verify",
                     "--author", "\(name) <\(name.replacingOccurrences(of: " ", with: "."))@policyhub.invalid>", "-m", message, "--", path],
                    check: nil)
        let commit = try line(["rev-parse", "HEAD"])
        do {
            _ = try run(GitWorkTree.transports + ["push", "-q", "origin", "HEAD:refs/heads/\(branch)"], check: nil)
        } catch {
            let parent = try? line(["rev-parse", "HEAD~1"])
            _ = try? run(["reset", "-q", "--hard", "HEAD~1"], check: nil)
            let moved = try? fetchBranch(branch)
            guard let moved, moved != parent else {
                throw .failure("cannot push the commit of this write to \(branch): \(error.message); nothing was committed or recorded")
            }
            let head = String(moved.prefix(12))
            throw .conflict("\(branch) moved to \(head) since the hub last fetched it; nothing was committed or recorded (the hub takes the new commits at its next sync: read the document again and retry)",
                            current: nil)
        }
        return commit
    }

    /// git's transports the hub uses: file, ssh, http(s) and git; never `ext::` or the like.
    static let transports = ["protocol.allow=never", "protocol.file.allow=always", "protocol.ssh.allow=always",
                             "protocol.https.allow=always", "protocol.http.allow=always", "protocol.git.allow=always"]
        .flatMap { ["-c", $0] }

    func markAccepted(_ commit: String) throws(EngineError) {
        _ = try run(["update-ref", GitWorkTree.acceptedRef, commit], check: nil)
    }
}

extension HubEngine {
    /// One sync of the followed branch (the daemon's poll, or a push event): fetches it and takes each new
    /// commit in order: checked out, validated and recorded as the root environment's revision (its commit and
    /// signature with it). A commit that does not validate, or that a gate refuses, is rejected with its errors
    /// (audited as `commit-rejected`) and the work tree goes back to the last accepted commit, so the fleet stays
    /// there. Then every cluster out of step is pushed (the last accepted commit's plan). The engine's `root` must be
    /// `followed.checkout`.
    public func follow(_ followed: FollowedBranch, concurrency: Int) async throws(EngineError) -> FollowRun {
        let (tree, head) = try GitWorkTree.fetch(followed)
        var run = FollowRun(head: head)
        let last = tree.accepted()
        let commits = try tree.commits(after: last, upTo: head)
        if commits.isEmpty { return run }
        var good = last
        var planned: ApplyPlan?
        // no other session of this process reads or edits the checkout while a commit not yet accepted is in it
        try CheckoutLock.exclusive(root) { () throws(EngineError) in
            for commit in commits {
                try tree.checkOut(commit)
                let provenance = try tree.commit(commit, keys: trustedKeys)
                do throws(EngineError) {
                    let plan = try recordAndPlan(author: provenance.author)
                    planned = plan
                    run.steps.append(FollowRun.Step(commit: provenance, revision: plan.isNew ? plan.rootRevision : nil, errors: []))
                    try tree.markAccepted(commit)
                    good = commit
                } catch {
                    var errors = error.diagnostics.filter(\.isError).prefix(50).map(\.description)
                    if case .gateFailed(let failures, _) = error { errors = failures.map { "gate \($0)" } }
                    errors.append(error.message)
                    run.steps.append(FollowRun.Step(commit: provenance, revision: nil, errors: errors))
                    let store = try openStore()
                    try stored { () throws(HubStoreError) in
                        try store.audit(actor: "git", action: "commit-rejected",
                                        detail: "\(provenance.summary) \(provenance.subject) by \(provenance.author): \(errors.prefix(5).joined(separator: "; "))",
                                        at: clock.now())
                    }
                    log.note("policyhub: rejected \(provenance.summary) (\(provenance.subject)): \(errors.first ?? error.message)")
                    if let good { try tree.checkOut(good) }
                }
            }
        }
        // the plan of the last accepted commit is pushed as it is: the tree it was made from is the one checked out
        // (reading it again for a reconcile cost as much as the whole validation)
        if let planned {
            let pushing = try lock(.push, timeout: 600)
            defer { withExtendedLifetime(pushing) {} }
            run.summary = try await PushRun.push(session: planned.session, plan: planned.plan, concurrency: concurrency)
        }
        return run
    }
}
