/// The folder layout of rendered objects, as a GitOps tool (Argo CD, Flux) syncs it:
/// `cluster/<plural>/<name>.yaml` for cluster-scoped kinds, `namespaces/<ns>/<plural>/<name>.yaml` otherwise.
public enum GitOpsLayout {
    public static func relativePath(of identity: ObjectIdentity) -> String {
        if identity.kind.isNamespaced {
            return "namespaces/\(identity.namespace)/\(identity.kind.plural)/\(identity.name).yaml"
        }
        return "cluster/\(identity.kind.plural)/\(identity.name).yaml"
    }
}

extension ValidatedPolicySet {
    /// A hash of every document and where it lives: equal trees give equal hashes, whatever the file order.
    public var contentHash: String {
        let entries: [Value] = documents.map { document in
            .map([Value.MapEntry("source", .string(document.source)), Value.MapEntry("object", document.object.wireValue)])
        }
        return ContentHash.of(.list(entries))
    }
}
