/// What kind of NeuVector group a selector names (controller/api/apis.go, rest/group.go).
public enum GroupClass: Sendable, Hashable {
    /// `external`: anything outside the cluster.
    case external
    /// `nodes`: the hosts.
    case nodes
    /// `containers`: every container (`container = *`).
    case containers
    /// `nv.<service>.<namespace>`: a group NeuVector learned; has a policy mode.
    case learned
    /// `nv.ip.<service>.<namespace>`: a service-IP group; no mode, no process or file profile.
    case serviceIP
    /// A group whose criteria use `address`.
    case address
    /// A `fed.` group: NeuVector federation, which the hub does not use.
    case federal
    /// `Host:*` or `Workload:*`: reserved by NeuVector.
    case reserved
    /// Any other user-defined group.
    case custom

    public static func of(_ selector: GroupSelector) -> GroupClass {
        let name = selector.name
        switch name {
        case "external": return .external
        case "nodes": return .nodes
        case "containers": return .containers
        default: break
        }
        if name.hasPrefix("fed.") { return .federal }
        if name.hasPrefix("Host:") || name.hasPrefix("Workload:") { return .reserved }
        if name.hasPrefix("nv.ip.") { return .serviceIP }
        if name.hasPrefix("nv.") { return .learned }
        if selector.criteria.contains(where: { $0.key == "address" }) { return .address }
        return .custom
    }

    /// Groups with a policy mode (`DoesGroupHavePolicyMode`): `nodes` and learned groups.
    public var hasPolicyMode: Bool {
        switch self {
        case .nodes, .learned: return true
        case .external, .containers, .serviceIP, .address, .federal, .reserved, .custom: return false
        }
    }

    /// Groups that can carry process and file rules.
    public var hasProfiles: Bool {
        switch self {
        case .external, .serviceIP, .address: return false
        case .nodes, .containers, .learned, .federal, .reserved, .custom: return true
        }
    }
}
