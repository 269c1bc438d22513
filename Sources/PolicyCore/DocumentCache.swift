import Synchronization

/// The emitted form of documents, shared between the placement classes of one fleet render.
///
/// A document's output depends only on the document, the environment's policy modes (for targets that
/// have one) and, for namespace documents, which global documents cover its target; classes that agree
/// on those share one emitted object instead of building and hashing it again.
public final class DocumentCache: Sendable {
    /// Documents are compared whole (not only by identity), so one cache can serve renders of different
    /// trees, e.g. the before and after of a promotion; the revision is part of the key.
    struct Key: Hashable, Sendable {
        var document: PlacedDocument
        var environment: String
        var covering: [PlacedDocument]
        var revision: String
    }

    struct Entry: Sendable {
        var object: RenderedObject
        var effective: EffectiveDocument?
        var rules: [EffectiveNetworkRule]
        /// Merge conflicts (overridden entries) of this document.
        var conflicts: [Conflict]
    }

    private let entries = Mutex<[Key: Entry]>([:])

    public init() {}

    /// The cached entry for `key`, made with `make` the first time.
    func entry(_ key: Key, _ make: () -> Entry) -> Entry {
        if let hit = entries.withLock({ $0[key] }) { return hit }
        let made = make()
        entries.withLock { $0[key] = made }
        return made
    }
}
