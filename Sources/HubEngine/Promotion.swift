import HubStore
import PolicyCore

/// A promotion asked for: the target environment and what to carry from the one it promotes from.
public struct PromotionInput: Sendable, Hashable {
    public var target: String
    public var selectors: [PromotionSelector]
    public var force: Bool
    public var author: String
    /// The target's desired revision the caller saw; a different current one is a conflict.
    public var baseRevision: Int64?
    /// Why gates are overridden: required with `force` when a gate fails, recorded in the revision and the audit.
    public var reason: String?
    /// The source environment's revision to promote (`rN`, or the id of the commit it was recorded from); nil:
    /// its desired revision.
    public var from: String?

    public init(target: String, selectors: [PromotionSelector], force: Bool = false, author: String, baseRevision: Int64? = nil,
                reason: String? = nil, from: String? = nil) {
        self.reason = reason
        self.from = from
        self.target = target
        self.selectors = selectors
        self.force = force
        self.author = author
        self.baseRevision = baseRevision
    }
}

/// A promotion worked out and checked, not yet recorded: what changes, the gates that fail, and the
/// promoted tree (validated).
public struct PreparedPromotion: Sendable {
    public let input: PromotionInput
    public let target: Environment
    public let source: Environment
    public let sourceRevision: Revision
    /// The target's desired revision now (nil before its first).
    public let current: Revision?
    public let added: [ObjectIdentity]
    public let changed: [ObjectIdentity]
    public let removed: [ObjectIdentity]
    /// The target's documents after the promotion.
    public let documents: [StoredDocument]
    public let policy: ValidatedPolicySet?
    public let gateFailures: [GateFailure]

    /// The selection in the CLI's words (`--namespace demo --global deny-nc`).
    public var selection: String { input.selectors.map(\.description).joined(separator: " ") }

    /// True when the target already holds the source's versions of everything selected.
    public var isNoChange: Bool { added.isEmpty && changed.isEmpty && removed.isEmpty }

    /// What the promotion records as its cause.
    public var cause: String {
        var cause = "promote from \(source.name) r\(sourceRevision.id): \(selection)"
        let reason = input.reason.map { "reason: \($0)" }
        if !gateFailures.isEmpty {
            cause += " (forced past: \(gateFailures.map(\.gate.rawValue).joined(separator: ", "))\(reason.map { "; " + $0 } ?? ""))"
        } else if let reason {
            cause += " (\(reason))"
        }
        return cause
    }

    /// `+ id`, `~ id` and `- id` lines, or the sentence that says nothing changes.
    public var changeLines: [String] {
        if isNoChange { return ["\(target.name) already holds \(source.name)'s versions of \(selection); nothing to promote"] }
        return added.map { "+ \($0)" } + changed.map { "~ \($0)" } + removed.map { "- \($0)" }
    }
}

/// Each target cluster's change of effective policy under a promotion (its dry run).
public struct PromotionDifference: Sendable {
    public var clusters: [(cluster: String, environment: String, text: String)]

    /// `cluster (env):` and its change lines, for every cluster.
    public var text: String { clusters.map { "\($0.cluster) (\($0.environment)):\n" + $0.text }.joined() }
}

extension HubSession {
    /// Works out a promotion into `input.target` from the environment it promotes from: the new tree,
    /// validated, and each gate that fails. Records nothing.
    public func preparePromotion(_ input: PromotionInput) throws(EngineError) -> PreparedPromotion {
        let target = try environment(named: input.target)
        guard let sourceName = target.promotesFrom, let source = fleet.environment(named: sourceName) else {
            throw .invalid("\(target.name) is the root environment; it changes by policyhub apply, not by promotion")
        }
        let sourceRevision = try promotedRevision(of: source, from: input.from)
        let current = try stored { () throws(HubStoreError) in try store.desiredRevision(environment: target.name) }
        if let base = input.baseRevision, base != current?.id {
            throw .conflict("\(target.name) is at \(current.map { "r\($0.id)" } ?? "no revision"), not r\(base); another change landed first",
                            current: current?.id)
        }
        let sourceDocuments = try stored { () throws(HubStoreError) in try store.documents(revision: sourceRevision.id) }
        let targetDocuments = try current.map { revision throws(EngineError) in
            try stored { () throws(HubStoreError) in try store.documents(revision: revision.id) }
        } ?? []
        let result = Promotion.apply(input.selectors, source: sourceDocuments, target: targetDocuments, identity: \.identity,
                                     path: \.source, hash: \.hash)
        let selection = input.selectors.map(\.description).joined(separator: " ")
        if !result.unmatched.isEmpty {
            let all = sourceDocuments + targetDocuments
            let problems = result.unmatched.map { selector -> String in
                switch selector {
                case .global(let name):
                    let known = Set(all.filter { DocumentScope.of(path: $0.source) == .global }.map(\.identity.name)).sorted()
                    return EditDistance.unknown("global document", name, known: known)
                case .namespace(let namespace):
                    let known = Set(all.compactMap { document -> String? in
                        if case .namespace(let ns)? = DocumentScope.of(path: document.source) { return ns }
                        return nil
                    }).sorted()
                    return EditDistance.unknown("namespace", namespace, known: known)
                case .document(let identity):
                    return EditDistance.unknown("document", identity.description, known: Set(all.map(\.identity.description)).sorted())
                case .all:
                    return "--all matches no document"
                }
            }
            throw .invalid(problems.joined(separator: "; ") + " in \(source.name) (r\(sourceRevision.id)) or \(target.name); nothing was promoted")
        }
        guard !result.matched.isEmpty else {
            throw .invalid("\(selection) matches no document of \(source.name) (r\(sourceRevision.id)) or \(target.name); nothing to promote")
        }
        var policy: ValidatedPolicySet?
        var failures: [GateFailure] = []
        if !(result.added.isEmpty && result.changed.isEmpty && result.removed.isEmpty) {
            // the new tree must still be valid on its own; one equal to the working tree was validated when
            // the repository was read
            if let working = self.policy, StoredDocument.treeHash(result.documents) == workingTreeHash {
                policy = working
            } else {
                let validated = HubSession.validate(HubSession.objects(of: result.documents))
                guard let value = validated.value else {
                    throw .invalid("the promoted tree of \(target.name) would be invalid; nothing was recorded",
                                   diagnostics: validated.diagnostics)
                }
                policy = value
            }
            failures = try gateFailures(target: target, source: source, sourceRevision: sourceRevision,
                                        documents: result.added + result.changed + result.removed)
        }
        // a first promotion of namespace documents alone: they were tested beside the source's global documents,
        // which the target would not have
        let carriedGlobals = result.documents.contains { DocumentScope.of(path: $0.source) == .global }
        let sourceGlobals = sourceDocuments.filter { DocumentScope.of(path: $0.source) == .global }
        if current == nil, !carriedGlobals, !sourceGlobals.isEmpty, !result.added.isEmpty {
            log.note("policyhub: warning: this is the first promotion into \(target.name), and it carries none of the \(sourceGlobals.count) global document\(sourceGlobals.count == 1 ? "" : "s") the namespace documents were tested with in \(source.name): \(target.name) would get them without those globals (add --global NAME, or --all)")
        }
        return PreparedPromotion(input: input, target: target, source: source, sourceRevision: sourceRevision, current: current,
                                 added: result.added, changed: result.changed, removed: result.removed, documents: result.documents,
                                 policy: policy, gateFailures: failures)
    }

    /// Records a prepared promotion as the target's new desired revision (compare and swap on the revision
    /// it was prepared against). Failed gates refuse it unless `force` was given; the override is recorded.
    /// Returns nil when there was nothing to change.
    public func commit(_ promotion: PreparedPromotion) throws(EngineError) -> Revision? {
        if promotion.isNoChange { return nil }
        let failures = promotion.gateFailures
        if !failures.isEmpty && !promotion.input.force {
            throw .gateFailed(failures, message: "\(failures.count) gate\(failures.count == 1 ? "" : "s") of \(promotion.target.name) failed; nothing was recorded (--force --reason TEXT overrides and is recorded)")
        }
        if !failures.isEmpty && (promotion.input.reason ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            throw .invalid("--force needs --reason TEXT: why \(failures.map(\.gate.rawValue).joined(separator: ", ")) \(failures.count == 1 ? "is" : "are") overridden (recorded in the revision and the audit log); nothing was recorded")
        }
        // the promoted revision carries its source's commit; a signature gate holds even with --force
        let commit = try signatureGate(promotion.target, commit: try recheckedCommit(of: promotion.sourceRevision),
                                       what: "promoting r\(promotion.sourceRevision.id) of \(promotion.source.name)")
        let revision = try stored { () throws(HubStoreError) in
            try store.recordRevision(environment: promotion.target.name, documents: promotion.documents, author: promotion.input.author,
                                     cause: promotion.cause, at: now(), expectedParent: .mustBe(promotion.current?.id), commit: commit)
        }
        log.note("recorded revision \(revision.id) of \(promotion.target.name) (\(promotion.cause))\(commit.map { " from " + $0.summary } ?? "")")
        return revision
    }

    /// The gates of `target` that fail for promoting `sourceRevision` of `source`, each as a value.
    /// `documents`: the identities the promotion changes in the target, whose soak `minimumSoak` counts one
    /// by one (nil: the whole revision's, since the clusters first held it).
    public func gateFailures(target: Environment, source: Environment, sourceRevision: Revision,
                             documents: [ObjectIdentity]? = nil) throws(EngineError) -> [GateFailure] {
        var failures: [GateFailure] = []
        let sourceClusters = fleet.clusters.filter { $0.environment == source.name }
        let states = try clusterStates()
        if target.gates.requireInSync {
            let behind = sourceClusters.filter { states[$0.name]?.appliedRevision != sourceRevision.id }.map(\.name)
            if !behind.isEmpty {
                failures.append(GateFailure(.requireInSync, "\(behind.joined(separator: ", ")) of \(source.name) do not hold r\(sourceRevision.id); run policyhub apply"))
            }
        }
        if target.gates.requireNoDrift {
            switch try stored({ () throws(HubStoreError) in try store.latestDriftCheck(environment: source.name) }) {
            case nil:
                failures.append(GateFailure(.requireNoDrift, "no drift check of \(source.name) is recorded yet"))
            case let check? where check.findings > 0:
                failures.append(GateFailure(.requireNoDrift, "the latest drift check of \(source.name) (\(timestamp(check.at))) found \(check.findings) finding\(check.findings == 1 ? "" : "s")"))
            case .some:
                break
            }
        }
        if let freeze = target.frozen(at: now()) {
            failures.append(GateFailure(.freeze, "\(target.name) is frozen from \(timestamp(freeze.from)) until \(timestamp(freeze.until)) (freeze \(freeze.window.description))"))
        }
        if try requiresSignedCommits(target), let reason = HubSession.unsignedReason(try recheckedCommit(of: sourceRevision)) {
            failures.append(GateFailure(.requireSignedCommits, reason))
        }
        if let soak = target.gates.minimumSoakSeconds {
            failures += try soakFailures(Double(soak), source: source, sourceRevision: sourceRevision, documents: documents,
                                         clusters: sourceClusters, states: states)
        }
        return failures
    }

    /// The `minimumSoak` gate, per promoted document (SEMANTICS §4): a document has soaked since every cluster of
    /// the source has held it as it is in `sourceRevision` — since each cluster's first successful push of any
    /// revision of the source from the oldest one that already carried the document so (or lacked it, for a
    /// removal) through `sourceRevision`. A change to another document of the source does not restart it.
    func soakFailures(_ soak: Double, source: Environment, sourceRevision: Revision, documents: [ObjectIdentity]?,
                      clusters: [MemberCluster], states: [String: ClusterState]) throws(EngineError) -> [GateFailure] {
        if clusters.isEmpty { return [GateFailure(.minimumSoak, "\(source.name) has no cluster to soak r\(sourceRevision.id) on")] }
        // the oldest revision of the source's unbroken run carrying each document as sourceRevision does
        let history = try stored { () throws(HubStoreError) in try store.revisions(environment: source.name) }
            .filter { $0.id <= sourceRevision.id }.sorted { $0.id > $1.id }
        func hashes(_ revision: Int64) throws(EngineError) -> [ObjectIdentity: String] {
            let documents = try stored { () throws(HubStoreError) in try store.documents(revision: revision) }
            return Dictionary(documents.map { ($0.identity, $0.hash) }, uniquingKeysWith: { a, _ in a })
        }
        let now = try hashes(sourceRevision.id)
        let considered = documents ?? Array(Set(now.keys))
        var since: [ObjectIdentity: Int64] = [:]
        var open = Set(considered)
        for revision in history {
            guard !open.isEmpty else { break }
            let held = revision.id == sourceRevision.id ? now : try hashes(revision.id)
            for identity in open where held[identity] != now[identity] { open.remove(identity) }
            for identity in open { since[identity] = revision.id }
            if documents == nil { break }  // the whole revision: since it was first held
        }
        // per run start, when every source cluster held it (the latest cluster's first push in the run)
        var heldSince: [Int64: Double?] = [:]
        func everywhere(from first: Int64) throws(EngineError) -> Double? {
            if let known = heldSince[first] { return known }
            var latest = -Double.infinity
            for cluster in clusters {
                guard let state = states[cluster.name], let applied = state.appliedRevision,
                      applied >= first, applied <= sourceRevision.id else {
                    heldSince[first] = .some(nil)
                    return nil
                }
                let pushed = try stored { () throws(HubStoreError) in
                    try store.firstSuccessfulPush(cluster: cluster.name, environment: source.name, revisions: first, through: sourceRevision.id)
                }
                guard let start = [pushed, state.appliedAt].compactMap({ $0 }).min() else {
                    heldSince[first] = .some(nil)
                    return nil
                }
                latest = max(latest, start)
            }
            heldSince[first] = latest
            return latest
        }
        let clock = self.now()
        var unapplied: [ObjectIdentity] = []
        var young: [(ObjectIdentity, Double)] = []
        for identity in considered.sorted() {
            guard let held = try everywhere(from: since[identity] ?? sourceRevision.id) else {
                unapplied.append(identity)
                continue
            }
            if clock - held < soak { young.append((identity, clock - held)) }
        }
        func listed<T>(_ items: [T], _ text: (T) -> String) -> String {
            items.prefix(5).map(text).joined(separator: ", ") + (items.count > 5 ? ", and \(items.count - 5) more" : "")
        }
        var failures: [GateFailure] = []
        if documents == nil {
            if !unapplied.isEmpty {
                failures.append(GateFailure(.minimumSoak, "r\(sourceRevision.id) is not applied on every cluster of \(source.name) yet"))
            } else if let (_, age) = young.first {
                failures.append(GateFailure(.minimumSoak, "r\(sourceRevision.id) has soaked \(Int(age)) s of \(Int(soak)) s on \(source.name) (\(Int(soak - age)) s to go)"))
            }
            return failures
        }
        if !unapplied.isEmpty {
            failures.append(GateFailure(.minimumSoak, "\(listed(unapplied) { $0.description }) \(unapplied.count == 1 ? "is" : "are") not applied as in r\(sourceRevision.id) on every cluster of \(source.name) yet"))
        }
        // the documents of one age together, the youngest first
        let ages = Dictionary(grouping: young, by: { Int($0.1) }).sorted { $0.key < $1.key }
        for (age, documents) in ages.prefix(3) {
            let names = documents.map(\.0)
            failures.append(GateFailure(.minimumSoak, "\(listed(names) { $0.description }) \(names.count == 1 ? "has" : "have") soaked \(age) s of \(Int(soak)) s on \(source.name) (\(Int(soak) - age) s to go)"))
        }
        return failures
    }

    /// Per target cluster, the objects a prepared promotion would create, change and delete.
    public func difference(of promotion: PreparedPromotion) throws(EngineError) -> PromotionDifference {
        guard let after = promotion.policy else { return PromotionDifference(clusters: []) }
        return try difference(environment: promotion.target, current: promotion.current, after: after)
    }

    /// Per cluster of `environment`, the change of effective policy from its revision `current` to `after`.
    func difference(environment: Environment, current: Revision?, after: ValidatedPolicySet) throws(EngineError) -> PromotionDifference {
        // one revision label and one cache for both renders: documents the promotion leaves alone are
        // emitted once, and each placement class renders once before and once after
        let afterRenderer = Renderer(policy: after, fleet: fleet, revision: "dry-run")
        let beforeRenderer = try current.map { revision throws(EngineError) in
            Renderer(policy: try renderer(for: revision).policy, fleet: fleet, revision: "dry-run")
        }
        let clusters = fleet.clusters.filter { $0.environment == environment.name }
        let cache = DocumentCache()
        let beforePolicies = beforeRenderer?.render(clusters: clusters, parallel: .dispatch, cache: cache)
        let afterPolicies = afterRenderer.render(clusters: clusters, parallel: .dispatch, cache: cache)
        var byClass: [Renderer.PlacementClass: String] = [:]
        var out = PromotionDifference(clusters: [])
        for (index, cluster) in clusters.enumerated() {
            let key = Renderer.PlacementClass(environment: cluster.environment, labels: cluster.placementLabels)
            let text = byClass[key] ?? PolicyDifference.text(before: beforePolicies?[index].policy.objects ?? [],
                                                             after: afterPolicies[index].policy.objects)
            byClass[key] = text
            out.clusters.append((cluster.name, environment.name, text))
        }
        return out
    }
}

/// The readable difference between two renders of a cluster.
public enum PolicyDifference {
    /// What `text` says when nothing differs.
    public static let noChange = "  no change\n"

    /// `+`, `~` (with each changed field) and `-` lines; objects with the same spec hash and metadata are
    /// not compared field by field.
    public static func text(before: [RenderedObject], after: [RenderedObject]) -> String {
        let old = Dictionary(before.map { ($0.identity, $0) }, uniquingKeysWith: { a, _ in a })
        let new = Dictionary(after.map { ($0.identity, $0) }, uniquingKeysWith: { a, _ in a })
        var out = ""
        for (identity, object) in new.sorted(by: { $0.key < $1.key }) {
            guard let previous = old[identity] else {
                out += "  + \(identity)\n"
                continue
            }
            if previous.hash == object.hash && previous.value["metadata"]?["labels"] == object.value["metadata"]?["labels"]
                && previous.source == object.source {
                continue
            }
            let changes = ValueDiff.changes(from: DriftComparison.comparable(previous.value), to: DriftComparison.comparable(object.value))
            if !changes.isEmpty {
                out += "  ~ \(identity)\n"
                for change in changes { out += "      \(change)\n" }
            }
        }
        for identity in old.keys.sorted() where new[identity] == nil { out += "  - \(identity)\n" }
        return out.isEmpty ? noChange : out
    }
}

extension HubSession {
    /// The revision of `source` a promotion carries: its desired one, or the one `from` names (`rN`, which must
    /// be a revision of `source`, or a commit id or its prefix of at least 7 characters: the newest revision of
    /// `source` recorded from that commit).
    func promotedRevision(of source: Environment, from: String?) throws(EngineError) -> Revision {
        guard let from else {
            guard let desired = try stored({ () throws(HubStoreError) in try store.desiredRevision(environment: source.name) }) else {
                throw .invalid("\(source.name) has no revision yet; run policyhub apply (or promote into it) first")
            }
            return desired
        }
        if from.hasPrefix("r"), let id = Int64(from.dropFirst()) {
            let revision: Revision
            do throws(HubStoreError) {
                revision = try store.revision(id: id)
            } catch {
                throw .notFound("cannot promote from \(from): \(error)")
            }
            guard revision.environment == source.name else {
                throw .invalid("\(from) is a revision of \(revision.environment), not of \(source.name), which the promotion takes from")
            }
            return revision
        }
        let commit = from.lowercased()
        guard commit.count >= 7, commit.allSatisfy(\.isHexDigit) else {
            throw .invalid("--from '\(from)' is neither a revision (r12) nor a commit id (at least 7 hexadecimal digits)")
        }
        let revisions = try stored { () throws(HubStoreError) in try store.revisions(environment: source.name) }
        guard let found = revisions.first(where: { $0.commit?.commit.hasPrefix(commit) == true && $0.commit?.dirty == false }) else {
            throw .notFound("no revision of \(source.name) was recorded from commit \(from) (policyhub history --env \(source.name) lists each revision's commit)")
        }
        return found
    }

    /// What a rollback of `environment` to `id` would change: the document lines (`+ ~ -`) and each cluster's
    /// change of effective policy. Records nothing.
    public func rollbackPreview(environment name: String, to id: Int64) throws(EngineError) -> (lines: [String], difference: PromotionDifference) {
        let environment = try environment(named: name)
        let (earlier, current) = try rollbackRevisions(environment: name, to: id)
        let before = try current.map { revision throws(EngineError) in
            try stored { () throws(HubStoreError) in try store.documents(revision: revision.id) }
        } ?? []
        let after = try stored { () throws(HubStoreError) in try store.documents(revision: earlier.id) }
        let result = Promotion.apply([.all], source: after, target: before, identity: \.identity, path: \.source, hash: \.hash)
        let lines = result.added.map { "+ \($0)" } + result.changed.map { "~ \($0)" } + result.removed.map { "- \($0)" }
        let difference = try self.difference(environment: environment, current: current, after: try renderer(for: earlier).policy)
        return (lines.isEmpty ? ["\(name) already holds what r\(id) holds; a rollback would change nothing"] : lines, difference)
    }

    /// The revision `id` of `name` a rollback returns to, and the environment's desired one now.
    func rollbackRevisions(environment name: String, to id: Int64) throws(EngineError) -> (earlier: Revision, current: Revision?) {
        _ = try environment(named: name)
        let earlier: Revision
        do throws(HubStoreError) {
            earlier = try store.revision(id: id)
        } catch {
            throw .notFound("cannot roll \(name) back to r\(id): \(error)")
        }
        guard earlier.environment == name else {
            throw .invalid("r\(id) is a revision of \(earlier.environment), not of \(name)")
        }
        return (earlier, try stored { () throws(HubStoreError) in try store.desiredRevision(environment: name) })
    }

    /// Records a new revision of `environment` equal to its earlier revision `id`, with why (`reason`, required:
    /// recorded in the revision's cause and the audit log). A freeze window does not hold a rollback up.
    public func rollback(environment name: String, to id: Int64, author: String, reason: String) throws(EngineError) -> (recorded: Revision, previous: Revision?) {
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw .invalid("a rollback needs a reason (--reason TEXT): it is recorded in the revision and the audit log")
        }
        let (earlier, current) = try rollbackRevisions(environment: name, to: id)
        let documents = try stored { () throws(HubStoreError) in try store.documents(revision: id) }
        let commit = try signatureGate(try environment(named: name), commit: try recheckedCommit(of: earlier),
                                       what: "rolling \(name) back to r\(id)")
        let recorded = try stored { () throws(HubStoreError) in
            try store.recordRevision(environment: name, documents: documents, author: author, cause: "rollback to r\(id) (reason: \(reason))",
                                     at: now(), expectedParent: .mustBe(current?.id), commit: commit)
        }
        log.note("recorded revision \(recorded.id) of \(name) (rollback to r\(id), from \(current.map { "r\($0.id)" } ?? "none"))")
        if fleet.root?.name == name {
            log.note("note: \(name) is the root environment; the next policyhub apply records policies/ again unless it is reverted in git too")
        }
        return (recorded, current)
    }
}
