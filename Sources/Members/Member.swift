import PolicyCore

/// What a push changed on a member.
public struct PushOutcome: Sendable, Hashable {
    public var created: [ObjectIdentity] = []
    public var updated: [ObjectIdentity] = []
    public var deleted: [ObjectIdentity] = []
    public var unchanged = 0
    /// Objects the member listed under names that are not Kubernetes names: reported, never acted on.
    public var refused: [String] = []

    public init() {}
}

/// A member failure, naming the cluster and carrying the member's own words.
public struct MemberError: Error, Sendable, Hashable, CustomStringConvertible {
    public var cluster: String
    public var object: ObjectIdentity?
    public var message: String

    public init(cluster: String, object: ObjectIdentity? = nil, message: String) {
        self.cluster = cluster
        self.object = object
        self.message = message
    }

    public var description: String {
        if let object { return "cluster \(cluster): \(object): \(message)" }
        return "cluster \(cluster): \(message)"
    }
}

/// A place the hub pushes one cluster's effective policy to (the seam between the hub and the world).
public protocol Member: Sendable {
    var cluster: String { get }

    /// Makes the member hold exactly `objects` among the objects the hub manages: creates and updates what
    /// differs and deletes managed objects no longer desired. Objects the hub does not manage are never
    /// touched.
    func push(_ objects: [RenderedObject]) async throws(MemberError) -> PushOutcome

    /// The objects labelled as managed by the hub that the member holds now, by identity.
    func managedObjects() async throws(MemberError) -> [ObjectIdentity: Value]

    /// Every NeuVector rule object the member holds, split by whether the hub manages it (for drift).
    func heldObjects() async throws(MemberError) -> HeldObjects
}
