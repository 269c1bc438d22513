/// Who owns a global document's rules relative to namespace rules (SEMANTICS §1.3, §3.2).
public enum Tier: String, Sendable, Hashable, CaseIterable, Comparable {
    /// Global rules namespace rules cannot override.
    case enforced
    /// Namespace rules.
    case namespace
    /// Global rules namespace rules override.
    case baseline

    /// Precedence rank: lower decides first.
    var rank: Int {
        switch self {
        case .enforced: return 0
        case .namespace: return 1
        case .baseline: return 2
        }
    }

    public static func < (a: Tier, b: Tier) -> Bool { a.rank < b.rank }
}

/// Where a document lives in the policy repository.
public enum DocumentScope: Sendable, Hashable {
    case global
    case namespace(String)

    /// The scope of a repository path, or nil for a path outside `policies/global/` and
    /// `policies/namespaces/<ns>/`.
    public static func of(path: String) -> DocumentScope? {
        let parts = path.split(separator: "/")
        guard parts.count >= 3, parts[0] == "policies" else { return nil }
        if parts[1] == "global" { return .global }
        if parts[1] == "namespaces", parts.count >= 4 { return .namespace(String(parts[2])) }
        return nil
    }
}

/// The hub's own annotations on policy documents.
public enum HubAnnotation {
    public static let tier = "policyhub.dev/tier"
    public static let placement = "policyhub.dev/placement"
    public static let revision = "policyhub.dev/revision"
    public static let source = "policyhub.dev/source"
    public static let hash = "policyhub.dev/hash"
    public static let managedByKey = "app.kubernetes.io/managed-by"
    public static let managedByValue = "policyhub"
}

/// The documents of a policy tree as read, before validation. Each object's origin names its file.
public struct PolicyTree: Sendable, Hashable {
    public var objects: [PolicyObject]

    public init(objects: [PolicyObject]) { self.objects = objects }
}

/// A document that passed validation, with its scope, tier and placement decided.
///
/// Immutable and shared by reference: renders pass documents around by the thousand, and a reference
/// costs one retain where a copy of the whole document costs one per field.
public final class PlacedDocument: Sendable, Hashable {
    public let object: PolicyObject
    /// Repository path of the file the document came from.
    public let source: String
    public let scope: DocumentScope
    public let tier: Tier
    public let placement: LabelSelector

    init(object: PolicyObject, source: String, scope: DocumentScope, tier: Tier, placement: LabelSelector) {
        self.object = object
        self.source = source
        self.scope = scope
        self.tier = tier
        self.placement = placement
    }

    public static func == (a: PlacedDocument, b: PlacedDocument) -> Bool {
        a === b || (a.object == b.object && a.source == b.source && a.scope == b.scope && a.tier == b.tier
            && a.placement == b.placement)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(object.identity)
        hasher.combine(source)
    }
}

/// A policy tree that passed validation. Only `PolicyValidator` builds one.
public struct ValidatedPolicySet: Sendable, Hashable {
    /// Documents sorted by identity.
    public let documents: [PlacedDocument]
    /// Group definitions by name, for selectors that use `name_referral`.
    public let groupDefinitions: [String: GroupSelector]

    init(documents: [PlacedDocument], groupDefinitions: [String: GroupSelector]) {
        self.documents = documents.sorted { $0.object.identity < $1.object.identity }
        self.groupDefinitions = groupDefinitions
    }
}

/// The outcome of a validation: the validated value when there was no error, and every diagnostic sorted.
public struct Validation<T: Sendable>: Sendable {
    public let value: T?
    public let diagnostics: [Diagnostic]
}
