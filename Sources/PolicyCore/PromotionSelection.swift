/// Which documents a promotion carries from the source environment to the target (SEMANTICS §4).
public enum PromotionSelector: Sendable, Hashable, CustomStringConvertible {
    /// Every namespace document of that namespace.
    case namespace(String)
    /// The global document of that name (any cluster-wide kind).
    case global(String)
    /// One identity.
    case document(ObjectIdentity)
    /// Everything.
    case all

    /// Whether a document with this identity and repository path is selected.
    public func selects(_ identity: ObjectIdentity, source: String) -> Bool {
        switch self {
        case .all: return true
        case .document(let wanted): return identity == wanted
        case .namespace(let ns):
            if case .namespace(let documentNamespace)? = DocumentScope.of(path: source) { return documentNamespace == ns }
            return false
        case .global(let name):
            return DocumentScope.of(path: source) == .global && identity.name == name
        }
    }

    public var description: String {
        switch self {
        case .all: return "--all"
        case .namespace(let ns): return "--namespace \(ns)"
        case .global(let name): return "--global \(name)"
        case .document(let identity): return "--document \(identity)"
        }
    }

    /// Parses `KIND/NAMESPACE/NAME` (namespace empty for cluster-scoped kinds).
    public static func document(_ text: String) -> PromotionSelector? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, let kind = ObjectKind(rawValue: parts[0]), !parts[2].isEmpty else { return nil }
        return .document(ObjectIdentity(kind: kind, namespace: parts[1], name: parts[2]))
    }
}

/// The result of applying a selection: the target's new documents and what changed.
public struct PromotionResult<Document> {
    public var documents: [Document]
    public var added: [ObjectIdentity] = []
    public var changed: [ObjectIdentity] = []
    public var removed: [ObjectIdentity] = []
    /// Identities the selection matched in the source or the target (empty: the selection matched nothing).
    public var matched: Set<ObjectIdentity> = []
    /// Selectors that matched no document of the source or the target (an unknown name).
    public var unmatched: [PromotionSelector] = []
}

public enum Promotion {
    /// The target's documents with every selected identity replaced by the source's version: added when new
    /// there, changed when different, removed when the source no longer has it. Unselected ones stay.
    public static func apply<Document>(_ selectors: [PromotionSelector], source: [Document], target: [Document],
                                       identity: (Document) -> ObjectIdentity, path: (Document) -> String,
                                       hash: (Document) -> String) -> PromotionResult<Document> {
        func selected(_ document: Document) -> Bool {
            selectors.contains { $0.selects(identity(document), source: path(document)) }
        }
        let sourceSelected = source.filter(selected)
        let targetSelected = target.filter(selected)
        var result = PromotionResult(documents: target.filter { !selected($0) } + sourceSelected)
        result.matched = Set(sourceSelected.map(identity)).union(targetSelected.map(identity))
        result.unmatched = selectors.filter { selector in
            !(source + target).contains { selector.selects(identity($0), source: path($0)) }
        }
        let before = Dictionary(targetSelected.map { (identity($0), hash($0)) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(sourceSelected.map { (identity($0), hash($0)) }, uniquingKeysWith: { a, _ in a })
        for id in result.matched.sorted() {
            switch (before[id], after[id]) {
            case (nil, _?): result.added.append(id)
            case (_?, nil): result.removed.append(id)
            case (let a?, let b?) where a != b: result.changed.append(id)
            case (_?, _?), (nil, nil): break
            }
        }
        result.documents.sort { identity($0) < identity($1) }
        return result
    }
}
