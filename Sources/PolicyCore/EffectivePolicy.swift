/// Where a rule of the effective policy came from.
public struct RuleSource: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Repository path of the document's file.
    public var file: String
    public var line: Int
    public var column: Int
    /// The document the rule was written in.
    public var document: ObjectIdentity
    /// The rule's name: a network rule's `name`, a process rule's `name path`, a file rule's `filter`.
    public var rule: String
    public var tier: Tier

    public init(file: String, line: Int, column: Int, document: ObjectIdentity, rule: String, tier: Tier) {
        self.file = file
        self.line = line
        self.column = column
        self.document = document
        self.rule = rule
        self.tier = tier
    }

    public var location: SourceLocation { SourceLocation(file: file, line: line, column: column) }

    public var description: String { "\(rule) (\(tier.rawValue), \(file):\(line):\(column))" }

    public static func < (a: RuleSource, b: RuleSource) -> Bool {
        (a.file, a.line, a.column, a.rule) < (b.file, b.line, b.column, b.rule)
    }
}

/// Traffic direction of a network rule: ingress is peer → target, egress is target → peer.
public enum Direction: String, Sendable, Hashable, CaseIterable {
    case ingress
    case egress
}

/// A network rule as NeuVector will evaluate it on the cluster, with its output priority.
public struct EffectiveNetworkRule: Sendable, Hashable {
    public var direction: Direction
    /// The target selector, with `name_referral` resolved to its definition's criteria.
    public var target: GroupSelector
    public var peer: GroupSelector
    public var ports: PortSet
    public var applications: ApplicationSet
    public var action: RuleAction
    /// The `priority` the rule is pushed with.
    public var priority: Int
    public var source: RuleSource
}

/// A process or file entry of an emitted document, with where it came from.
public struct EffectiveEntry<Rule: Sendable & Hashable>: Sendable, Hashable {
    public var rule: Rule
    public var source: RuleSource
}

/// One emitted security rule document after merging, as `explain` needs it.
public struct EffectiveDocument: Sendable, Hashable {
    public var identity: ObjectIdentity
    public var target: GroupSelector
    public var tier: Tier
    public var policyMode: PolicyMode?
    public var processes: [EffectiveEntry<ProcessRule>]
    public var files: [EffectiveEntry<FileRule>]
}

/// One NeuVector object exactly as it is pushed.
public struct RenderedObject: Sendable, Hashable {
    public let identity: ObjectIdentity
    /// Repository path of the document it was rendered from.
    public let source: String
    /// `sha256:` and the hex digest of the canonical spec (the `policyhub.dev/hash` annotation).
    public let hash: String
    /// The whole object, keys sorted.
    public let value: Value

    public init(identity: ObjectIdentity, source: String, hash: String, value: Value) {
        self.identity = identity
        self.source = source
        self.hash = hash
        self.value = value
    }
}

/// One object as the hub last applied it to a cluster.
public struct AppliedObject: Sendable, Hashable {
    public var identity: ObjectIdentity
    /// `RenderedObject.appliedHash`: the object as pushed, less its revision annotation.
    public var hash: String
    /// The revision in which this object's content last changed (its `policyhub.dev/revision`).
    public var revision: Int64

    public init(identity: ObjectIdentity, hash: String, revision: Int64) {
        self.identity = identity
        self.hash = hash
        self.revision = revision
    }
}

/// What a push changed in the set of objects the store says a cluster holds, when it started from that set:
/// the objects it wrote (with their new hash and revision) and those it removed. A store records just these
/// rows: a one-document change to a cluster of 800 objects rewrote 800 rows.
public struct AppliedChanges: Sendable, Hashable {
    public var write: [AppliedObject]
    public var remove: [ObjectIdentity]

    public init(write: [AppliedObject], remove: [ObjectIdentity]) {
        self.write = write
        self.remove = remove
    }
}

extension RenderedObject {
    /// The object as pushed, less its `policyhub.dev/revision` annotation: what the store keeps per applied
    /// object, so that a revision which leaves the object as it was sends no request for it.
    public var appliedHash: String { ContentHash.of(canonical: value.removingAnnotation(HubAnnotation.revision)) }
}

/// A precedence finding of a render (SEMANTICS §3.8).
public struct Conflict: Sendable, Hashable, Comparable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case shadowed
        case overridden
        case redundant
        case ambiguous
        /// A document refers to something not placed on the same cluster (a DLP or WAF sensor).
        case unresolved
    }

    public enum Severity: String, Sendable, Hashable {
        case error
        case warning
        case info
    }

    public var kind: Kind
    /// The rule the finding is about: the one that never decides, is replaced, or is ambiguous.
    public var rule: RuleSource
    /// The other side: the rule that decides instead, or the other ambiguous rule.
    public var by: RuleSource
    public var message: String

    public var severity: Severity {
        switch kind {
        case .ambiguous, .unresolved: return .error
        case .shadowed, .overridden: return .warning
        case .redundant: return .info
        }
    }

    public static func < (a: Conflict, b: Conflict) -> Bool {
        (a.rule, a.by, a.kind.rawValue) < (b.rule, b.by, b.kind.rawValue)
    }
}

/// The policy one cluster must hold: the objects to push, and what precedence decided along the way.
public struct EffectivePolicy: Sendable, Hashable {
    public let environment: String
    /// Objects ordered by (kind, namespace, name).
    public let objects: [RenderedObject]
    public let conflicts: [Conflict]
    /// Network rules in NeuVector's first-match order.
    public let networkRules: [EffectiveNetworkRule]
    /// Security rule documents after merging, ordered by identity.
    public let documents: [EffectiveDocument]
    /// The compiled `local` admission object, when admission documents are placed on the cluster.
    public let admission: CompiledAdmission?

    public init(environment: String, objects: [RenderedObject], conflicts: [Conflict], networkRules: [EffectiveNetworkRule],
                documents: [EffectiveDocument], admission: CompiledAdmission? = nil) {
        self.environment = environment
        self.objects = objects
        self.conflicts = conflicts
        self.networkRules = networkRules
        self.documents = documents
        self.admission = admission
    }
}

extension EffectivePolicy {
    /// The hash of the objects exactly as pushed, less the `policyhub.dev/revision` annotation: two
    /// revisions that give a cluster the same objects give it the same hash, so the cluster is not pushed.
    public var contentHash: String {
        EffectivePolicy.contentHash(objectHashes: objects.map(\.appliedHash))
    }

    /// `contentHash` from the objects' `appliedHash`es, in order (each a SHA-256 of one whole object, identity
    /// included, so the list names the objects exactly): a push plan has them already, and hashing every
    /// object's encoding a second time was a tenth of planning a large fleet.
    public static func contentHash(objectHashes: [String]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(objectHashes.count * 72)
        for hash in objectHashes {
            bytes += hash.utf8
            bytes.append(0x0a)
        }
        return ContentHash.of(bytes: bytes)
    }
}

extension Value {
    /// The object without one `metadata.annotations` key.
    func removingAnnotation(_ key: String) -> Value {
        guard case .map(var entries) = self,
              let metaIndex = entries.firstIndex(where: { $0.key == "metadata" }),
              case .map(var meta) = entries[metaIndex].value,
              let annotationsIndex = meta.firstIndex(where: { $0.key == "annotations" }),
              case .map(let annotations) = meta[annotationsIndex].value else { return self }
        meta[annotationsIndex].value = .map(annotations.filter { $0.key != key })
        entries[metaIndex].value = .map(meta)
        return .map(entries)
    }
}
