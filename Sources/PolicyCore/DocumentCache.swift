import Synchronization

/// The emitted form of documents, shared between the placement classes of one fleet render.
///
/// A document's output depends only on the document, the environment's policy modes (for targets that
/// have one) and, for namespace documents, which global documents cover its target; classes that agree
/// on those share one emitted object instead of building and hashing it again.
final class DocumentCache: Sendable {
    struct Key: Hashable, Sendable {
        var document: ObjectIdentity
        var environment: String
        var covering: [ObjectIdentity]
    }

    struct Entry: Sendable {
        var object: RenderedObject
        var effective: EffectiveDocument?
        var rules: [EffectiveNetworkRule]
        /// Merge conflicts (overridden entries) of this document.
        var conflicts: [Conflict]
    }

    private let entries = Mutex<[Key: Entry]>([:])

    /// The cached entry for `key`, made with `make` the first time.
    func entry(_ key: Key, _ make: () -> Entry) -> Entry {
        if let hit = entries.withLock({ $0[key] }) { return hit }
        let made = make()
        entries.withLock { $0[key] = made }
        return made
    }
}
