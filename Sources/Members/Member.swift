import PolicyCore

/// What one push asks of a member: the objects the cluster must hold, and what the store says it holds.
public struct PushRequest: Sendable {
    /// The desired objects, ordered by identity.
    public var objects: [RenderedObject]
    /// `RenderedObject.appliedHash` of each object, in the same order.
    public var hashes: [String]
    /// The revision being pushed: the `policyhub.dev/revision` of every object this push changes.
    public var revision: Int64
    /// What the store says the member holds. Nil when that is not to be trusted (a first push, drift found,
    /// objects rejected, a failed push, a new target): the member is then read and compared object by object.
    public var previous: [ObjectIdentity: AppliedObject]?
    /// Called once when the member has sent everything and only waits for NeuVector to settle before it reads
    /// back (it sends nothing during that wait): the push run starts another cluster in its slot.
    public var settling: (@Sendable () -> Void)?

    public init(objects: [RenderedObject], hashes: [String]? = nil, revision: Int64, previous: [ObjectIdentity: AppliedObject]?) {
        self.objects = objects
        self.hashes = hashes ?? objects.map(\.appliedHash)
        self.revision = revision
        self.previous = previous
    }

    /// What must change, judged from the store's record, or (without one) from `live`, the managed objects the
    /// member holds (whole, keys sorted).
    public func changes(live: [ObjectIdentity: Value]?) -> PushChanges {
        var out = PushChanges()
        out.fromRecord = previous != nil
        out.order.reserveCapacity(objects.count)
        var found = 0  // desired objects the record or the member holds
        for (object, hash) in zip(objects, hashes) {
            if let previous {
                if let held = previous[object.identity] {
                    found += 1
                    if held.hash == hash {
                        out.kept.append(held)
                        out.order.append(true)
                        continue
                    }
                }
            } else if let held = live?[object.identity] {
                found += 1
                if DriftComparison.comparable(held) == DriftComparison.comparable(object.value) {
                    let revision = held["metadata"]?["annotations"]?[HubAnnotation.revision]?.stringValue
                        .flatMap { $0.hasPrefix("r") ? Int64($0.dropFirst()) : nil } ?? self.revision
                    out.kept.append(AppliedObject(identity: object.identity, hash: hash, revision: revision))
                    out.order.append(true)
                    continue
                }
            }
            out.send.append((object, hash))
            out.order.append(false)
        }
        // what is held but no longer desired (none when every held object was found among the desired)
        let heldCount = previous?.count ?? live?.count ?? 0
        guard found < heldCount else { return out }
        let desired = Set(objects.map(\.identity))
        let held = previous.map { Array($0.keys) } ?? Array((live ?? [:]).keys)
        out.delete = held.filter { !desired.contains($0) }.sorted()
        return out
    }
}

/// The work of one push: objects to send, objects to delete, and those left as they are.
public struct PushChanges: Sendable {
    public var send: [(object: RenderedObject, hash: String)] = []
    public var delete: [ObjectIdentity] = []
    /// Unchanged objects, with the revision in which each last changed.
    public var kept: [AppliedObject] = []
    /// For each desired object in order, whether it is kept (else sent): `kept` and `send` interleaved.
    var order: [Bool] = []
    /// Whether this was judged from the store's record (`PushRequest.previous`) rather than from the member.
    var fromRecord = false

    /// What the member holds once `sent` (a subset of `send`, in its order) landed: the kept objects and the sent
    /// ones, in identity order (both lists follow the desired objects' order, so they are merged, not sorted).
    public func applied(sent: [(object: RenderedObject, hash: String)], revision: Int64) -> [AppliedObject] {
        var out: [AppliedObject] = []
        out.reserveCapacity(kept.count + sent.count)
        var keptIndex = 0, sentIndex = 0, sendIndex = 0
        for isKept in order {
            if isKept {
                out.append(kept[keptIndex])
                keptIndex += 1
                continue
            }
            let wanted = send[sendIndex]
            sendIndex += 1
            guard sentIndex < sent.count, sent[sentIndex].object.identity == wanted.object.identity else { continue }
            out.append(AppliedObject(identity: wanted.object.identity, hash: sent[sentIndex].hash, revision: revision))
            sentIndex += 1
        }
        return out
    }

    /// What the push changed in the store's record once `sent` landed (nil when it was judged from the member,
    /// whose set then replaces the record's whole).
    public func recordChanges(sent: [(object: RenderedObject, hash: String)], revision: Int64) -> AppliedChanges? {
        guard fromRecord else { return nil }
        return AppliedChanges(write: sent.map { AppliedObject(identity: $0.object.identity, hash: $0.hash, revision: revision) },
                              remove: delete)
    }
}

/// What a push changed on a member.
public struct PushOutcome: Sendable, Hashable {
    public var created: [ObjectIdentity] = []
    public var updated: [ObjectIdentity] = []
    public var deleted: [ObjectIdentity] = []
    public var unchanged = 0
    /// Objects the member listed under names that are not Kubernetes names: reported, never acted on.
    public var refused: [String] = []
    /// Every object the hub manages on the member after the push, with the revision each last changed in.
    public var applied: [AppliedObject] = []
    /// What changed in the store's record of the member, when the push started from it (`PushChanges.recordChanges`).
    public var recordChanges: AppliedChanges?

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

    /// Makes the member hold exactly `request.objects` among the objects the hub manages: sends only what
    /// differs from what was last applied (or, without a trusted record, from what the member holds) and
    /// deletes managed objects no longer desired. Objects the hub does not manage are never touched.
    func push(_ request: PushRequest) async throws(MemberError) -> PushOutcome

    /// The objects labelled as managed by the hub that the member holds now, by identity.
    func managedObjects() async throws(MemberError) -> [ObjectIdentity: Value]

    /// Every NeuVector rule object the member holds, split by whether the hub manages it (for drift).
    func heldObjects() async throws(MemberError) -> HeldObjects
}

extension Member {
    /// Makes the member hold exactly `objects`, compared with what it holds now (no record of a previous push);
    /// the objects it changes are recorded as changed in revision 0.
    public func push(_ objects: [RenderedObject]) async throws(MemberError) -> PushOutcome {
        try await push(PushRequest(objects: objects, revision: 0, previous: nil))
    }
}
