/// What a token may do (issue 5): `security-admin` everything, `namespace-owner` only its namespaces'
/// documents, `promoter` promotions and rollbacks, `viewer` read only.
public enum Role: String, Sendable, CaseIterable, Hashable {
    case securityAdmin = "security-admin"
    case namespaceOwner = "namespace-owner"
    case promoter
    case viewer
}

/// Who is calling: the token's name (recorded as the author of what it changes), role and namespaces.
public struct Principal: Sendable, Hashable {
    public var name: String
    public var role: Role
    /// For `namespace-owner`: the namespaces whose documents it may write.
    public var namespaces: [String]

    public init(name: String, role: Role, namespaces: [String] = []) {
        self.name = name
        self.role = role
        self.namespaces = namespaces
    }
}

/// The classes of endpoint a role is checked against.
public enum Access: Sendable, Hashable {
    /// Reading status, policy, revisions, reports and the audit log.
    case read
    /// Writing a document of a namespace (`namespace`), or a global document (`nil`).
    case writeDocument(namespace: String?)
    /// Promotions and rollbacks.
    case promote
    /// Running jobs now: a drift report, a reconcile.
    case operate

    /// Whether `principal` may do this.
    public func allows(_ principal: Principal) -> Bool {
        switch (principal.role, self) {
        case (.securityAdmin, _): return true
        case (_, .read): return true
        case (.namespaceOwner, .writeDocument(let namespace?)): return principal.namespaces.contains(namespace)
        case (.namespaceOwner, .writeDocument(nil)), (.namespaceOwner, .promote), (.namespaceOwner, .operate): return false
        case (.promoter, .promote): return true
        case (.promoter, .writeDocument), (.promoter, .operate): return false
        case (.viewer, .writeDocument), (.viewer, .promote), (.viewer, .operate): return false
        }
    }
}
