import PolicyCore
import Testing

/// Every combination of a small catalogue of global, namespace and baseline rules, rendered and checked
/// against an oracle written here from SEMANTICS §3 alone: it models groups as explicit sets of workloads
/// over a small universe, and never calls coverage, precedence or explain code of the engine.
@Suite struct ExhaustiveOracleTests {
    // The universe: three workloads, four peers, three ports.
    enum Workload: String, CaseIterable { case web, db, api }
    static let peers = ["external", "web", "db", "api"]
    static let ports = [22, 80, 443]

    enum OracleTier: Int { case enforced = 0, namespace = 1, baseline = 2 }

    struct Group {
        var selector: GroupSelector
        var members: Set<String>
    }

    static let groups: [String: Group] = [
        "containers": Group(selector: GroupSelector(name: "containers", criteria: [Criterion("container", .equal, "*")]),
                            members: ["web", "db", "api"]),
        "demo-all": Group(selector: GroupSelector(name: "demo-all", criteria: [Criterion("domain", .equal, "demo")]),
                          members: ["web", "db"]),
        "web": Group(selector: learned("web", "demo"), members: ["web"]),
        "db": Group(selector: learned("db", "demo"), members: ["db"]),
        "api": Group(selector: learned("api", "pay"), members: ["api"]),
        "external": Group(selector: GroupSelector(name: "external"), members: ["external"]),
    ]

    static func learned(_ svc: String, _ ns: String) -> GroupSelector {
        GroupSelector(name: "nv.\(svc).\(ns)", criteria: [Criterion("service", .equal, "\(svc).\(ns)"),
                                                          Criterion("domain", .equal, ns)])
    }

    struct NetRule {
        var name: String
        var tier: OracleTier
        var target: String
        var peer: String
        var ports: [Int]?  // nil: any
        var action: RuleAction
        var priority: Int
    }

    struct ProcRule {
        var tier: OracleTier
        var target: String
        var name: String
        var path: String
        var action: RuleAction
    }

    static let network: [NetRule] = [
        NetRule(name: "r1", tier: .enforced, target: "containers", peer: "external", ports: [22], action: .deny, priority: 0),
        NetRule(name: "r2", tier: .enforced, target: "demo-all", peer: "external", ports: nil, action: .allow, priority: 100),
        NetRule(name: "r3", tier: .namespace, target: "web", peer: "external", ports: [22], action: .allow, priority: 0),
        NetRule(name: "r4", tier: .namespace, target: "web", peer: "external", ports: nil, action: .deny, priority: 1),
        NetRule(name: "r5", tier: .namespace, target: "web", peer: "db", ports: [80], action: .allow, priority: 50),
        NetRule(name: "r6", tier: .baseline, target: "containers", peer: "external", ports: [443], action: .deny, priority: 100),
        NetRule(name: "r7", tier: .baseline, target: "containers", peer: "demo-all", ports: nil, action: .deny, priority: 0),
        NetRule(name: "r8", tier: .namespace, target: "web", peer: "external", ports: [443], action: .allow, priority: 100),
    ]

    static let processes: [ProcRule] = [
        ProcRule(tier: .enforced, target: "containers", name: "nc", path: "/usr/bin/nc", action: .deny),
        ProcRule(tier: .namespace, target: "web", name: "nc", path: "/usr/bin/nc", action: .allow),
        ProcRule(tier: .baseline, target: "containers", name: "sh", path: "/bin/sh", action: .allow),
        ProcRule(tier: .namespace, target: "web", name: "sh", path: "/bin/sh", action: .deny),
    ]

    // MARK: - The oracle

    static func band(_ tier: OracleTier) -> (Int, Int) {
        switch tier {
        case .enforced: return (67, 100)
        case .namespace: return (34, 66)
        case .baseline: return (0, 33)
        }
    }

    static func oraclePriority(_ r: NetRule) -> Int {
        let (low, high) = band(r.tier)
        return low + r.priority * (high - low) / 100
    }

    static func traffic(_ r: NetRule) -> Set<String> {
        var out = Set<String>()
        for w in groups[r.target]?.members ?? [] {
            for p in groups[r.peer]?.members ?? [] {
                for port in r.ports ?? ports { out.insert("\(w)|\(p)|\(port)") }
            }
        }
        return out
    }

    static func oracleConflicts(_ rules: [NetRule]) -> Set<String> {
        var out = Set<String>()
        for a in rules {
            for b in rules where a.name != b.name {
                let ta = traffic(a)
                let tb = traffic(b)
                if a.tier.rawValue < b.tier.rawValue && ta.isSuperset(of: tb) {
                    out.insert("\(a.action == b.action ? "redundant" : "shadowed") \(b.name) by \(a.name)")
                }
                if oraclePriority(a) == oraclePriority(b), a.action != b.action,
                   ta.isSuperset(of: tb) || tb.isSuperset(of: ta), a.name < b.name {
                    out.insert("ambiguous \(a.name)+\(b.name)")
                }
            }
        }
        return out
    }

    // MARK: - Building the input

    static func documents(_ net: [NetRule], _ procs: [ProcRule]) -> [PolicyObject] {
        struct Key: Hashable {
            var tier: Int
            var target: String
        }
        var keys: [Key] = []
        for r in net where !keys.contains(Key(tier: r.tier.rawValue, target: r.target)) {
            keys.append(Key(tier: r.tier.rawValue, target: r.target))
        }
        for p in procs where !keys.contains(Key(tier: p.tier.rawValue, target: p.target)) {
            keys.append(Key(tier: p.tier.rawValue, target: p.target))
        }
        // every learned group has a namespace document, so explain can name it
        for w in Workload.allCases where !keys.contains(Key(tier: 1, target: w.rawValue)) {
            keys.append(Key(tier: 1, target: w.rawValue))
        }
        var out: [PolicyObject] = []
        for key in keys {
            let target = groups[key.target]?.selector ?? GroupSelector(name: "?")
            var spec = SecurityRuleSpec(target: Target(selector: target))
            spec.egress = net.filter { $0.tier.rawValue == key.tier && $0.target == key.target }.map { r in
                NetworkRule(name: r.name, selector: groups[r.peer]?.selector ?? GroupSelector(name: "?"), action: r.action,
                            ports: r.ports.map { $0.map { "tcp/\($0)" }.joined(separator: ",") }, priority: r.priority)
            }
            spec.process = procs.filter { $0.tier.rawValue == key.tier && $0.target == key.target }.map {
                ProcessRule(name: $0.name, path: $0.path, action: $0.action)
            }
            let tier = OracleTier(rawValue: key.tier) ?? .enforced
            let name = "\(["enf", "ns", "base"][key.tier])-\(key.target)"
            let object: PolicyObject
            if tier == .namespace {
                let ns = target.criteria.first { $0.key == "domain" }?.value ?? "demo"
                object = PolicyObject(kind: .securityRule, metadata: ObjectMeta(name: name, namespace: ns),
                                      body: .securityRule(spec),
                                      origin: Origin(location: .start(of: "policies/namespaces/\(ns)/\(name).yaml")))
            } else {
                let annotations = tier == .baseline ? [HubAnnotation.tier: "baseline"] : [:]
                object = PolicyObject(kind: .clusterSecurityRule, metadata: ObjectMeta(name: name, annotations: annotations),
                                      body: .securityRule(spec),
                                      origin: Origin(location: .start(of: "policies/global/\(name).yaml")))
            }
            out.append(object)
        }
        return out
    }

    static func render(_ objects: [PolicyObject]) throws -> EffectivePolicy {
        let validated = PolicyValidator.validate(PolicyTree(objects: objects))
        let policy = try #require(validated.value, "\(validated.diagnostics)")
        let cluster = MemberCluster(name: "c1", environment: "staging", target: .directory(path: "/tmp/x"))
        let fleet = try #require(FleetValidator.validate(FleetConfig(environments: [Environment(name: "staging")],
                                                                     clusters: [cluster])).value)
        return Renderer(policy: policy, fleet: fleet, revision: "r").render(cluster: cluster)
    }

    // MARK: - The test

    @Test func everyCombinationAgreesWithTheOracle() throws {
        let items = Self.network.count + Self.processes.count
        var checkedFlows = 0
        var checkedAmbiguous = 0
        for mask in 0..<(1 << items) {
            let net = Self.network.enumerated().filter { mask & (1 << $0.offset) != 0 }.map(\.element)
            let procs = Self.processes.enumerated().filter { mask & (1 << (Self.network.count + $0.offset)) != 0 }.map(\.element)
            let policy = try ExhaustiveOracleTests.render(ExhaustiveOracleTests.documents(net, procs))

            // priorities
            for r in net {
                let got = policy.networkRules.first { $0.source.rule == r.name }?.priority
                #expect(got == ExhaustiveOracleTests.oraclePriority(r), "mask \(mask): priority of \(r.name)")
            }

            // conflicts
            let got = Set(policy.conflicts.map { c -> String in
                if c.kind == .ambiguous {
                    let pair = [c.rule.rule, c.by.rule].sorted()
                    return "ambiguous \(pair[0])+\(pair[1])"
                }
                return "\(c.kind.rawValue) \(c.rule.rule) by \(c.by.rule)"
            }.filter { !$0.hasPrefix("overridden") })
            let wanted = ExhaustiveOracleTests.oracleConflicts(net)
            #expect(got == wanted, "mask \(mask): conflicts")

            // first-match decisions for every concrete flow
            for w in Workload.allCases {
                for peer in ExhaustiveOracleTests.peers where peer != w.rawValue {
                    for port in ExhaustiveOracleTests.ports {
                        let matching = net.filter { r in
                            (ExhaustiveOracleTests.groups[r.target]?.members.contains(w.rawValue) ?? false)
                                && (ExhaustiveOracleTests.groups[r.peer]?.members.contains(peer) ?? false)
                                && (r.ports?.contains(port) ?? true)
                        }.sorted { ExhaustiveOracleTests.oraclePriority($0) > ExhaustiveOracleTests.oraclePriority($1) }
                        let peerGroup = peer == "external" ? "external"
                            : ExhaustiveOracleTests.groups[peer]?.selector.name ?? ""
                        let targetGroup = ExhaustiveOracleTests.groups[w.rawValue]?.selector.name ?? ""
                        let explanation = try policy.explain(.network(
                            target: targetGroup, peer: peerGroup, direction: .egress, proto: .tcp, port: port,
                            application: nil))
                        guard let first = matching.first else {
                            #expect(explanation.decision == "no-rule", "mask \(mask) \(w) \(peer) \(port)")
                            continue
                        }
                        if matching.count > 1,
                           ExhaustiveOracleTests.oraclePriority(matching[1]) == ExhaustiveOracleTests.oraclePriority(first),
                           matching[1].action != first.action {
                            // NeuVector may apply either: the engine must flag the pair, whatever it picks
                            #expect(!explanation.notes.isEmpty, "mask \(mask): tie not noted")
                            checkedAmbiguous += 1
                            continue
                        }
                        #expect(explanation.decision == first.action.rawValue, "mask \(mask) \(w) \(peer) \(port)")
                        #expect(explanation.deciding?.source.rule == first.name, "mask \(mask) \(w) \(peer) \(port)")
                        checkedFlows += 1
                    }
                }
            }

            // process decisions for the web workload: enforced entries, then namespace, then baseline
            for path in ["/usr/bin/nc", "/bin/sh"] {
                let applicable = procs.filter { p in
                    p.path == path && (ExhaustiveOracleTests.groups[p.target]?.members.contains("web") ?? false)
                }.sorted { $0.tier.rawValue < $1.tier.rawValue }
                let explanation = try policy.explain(.process(target: "nv.web.demo", path: path))
                #expect(explanation.decision == (applicable.first?.action.rawValue ?? "no-rule"), "mask \(mask) \(path)")
            }
        }
        #expect(checkedFlows > 10_000)
        #expect(checkedAmbiguous > 0)
    }
}
