import Foundation
import PolicyCore
import PolicyHubTesting
import PolicyYAML
import Testing

/// The precedence case corpus (OPA `test/cases` style): each YAML file under `Cases/` holds `cases:`,
/// each with inputs and exactly one expectation. A case with none, or with two, fails.
@Suite struct CaseCorpusTests {
    static let folder: String = {
        var url = URL(fileURLWithPath: #filePath)
        url.deleteLastPathComponent()
        return url.path + "/Cases"
    }()

    struct Case: Sendable, CustomTestStringConvertible {
        var file: String
        var name: String
        var node: YAMLNode
        var testDescription: String { "\(file): \(name)" }
    }

    static let cases: [Case] = {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".yaml") }
        var out: [Case] = []
        for file in files.sorted() {
            guard let data = FileManager.default.contents(atPath: folder + "/" + file),
                  case .success(let docs) = YAMLParser.parseDocuments([UInt8](data), file: file),
                  let doc = docs.first, case .sequence(let items)? = doc.field("cases")?.content else {
                out.append(Case(file: file, name: "<unreadable file>", node: YAMLNode(.scalar("", .plain), line: 1, column: 1)))
                continue
            }
            for item in items {
                out.append(Case(file: file, name: item.field("name")?.scalarText ?? "<unnamed>", node: item))
            }
        }
        return out
    }()

    static let expectationKinds = ["priorities", "decision", "conflicts", "process", "file", "policymode", "objects",
                                   "covers", "invalid"]

    @Test func corpusIsLarge() {
        #expect(CaseCorpusTests.cases.count >= 40)
    }

    @Test(arguments: cases)
    func run(_ c: Case) throws {
        let expect = try #require(c.node.field("expect"), "case has no expect")
        guard case .mapping(let pairs) = expect.content else {
            Issue.record("expect must be a mapping")
            return
        }
        let kinds = pairs.compactMap { $0.key.scalarText }
        try #require(kinds.count == 1, "a case needs exactly one expectation, found \(kinds)")
        let kind = kinds[0]
        try #require(CaseCorpusTests.expectationKinds.contains(kind), "unknown expectation '\(kind)'")
        let wanted = pairs[0].value
        if kind == "covers" {
            try checkCovers(wanted)
            return
        }
        let (setup, diagnostics) = try CaseSetup.build(c.node)
        if kind == "invalid" {
            let messages = diagnostics.filter(\.isError).map(\.description)
            let fragments = (wanted.value.list ?? []).compactMap(\.stringValue)
            for fragment in fragments {
                #expect(messages.contains { $0.contains(fragment) }, "no error containing '\(fragment)' in \(messages)")
            }
            #expect(!messages.isEmpty)
            return
        }
        try #require(!diagnostics.hasErrors, "case inputs are invalid: \(diagnostics)")
        let policy = try #require(setup)
        switch kind {
        case "priorities":
            var got: [String: Int] = [:]
            for rule in policy.networkRules { got[rule.source.rule] = rule.priority }
            for entry in wanted.value.map ?? [] {
                #expect(got[entry.key] == entry.value.int, "priority of \(entry.key)")
            }
        case "decision":
            let query = try CaseSetup.query(wanted)
            let explanation = try policy.explain(query)
            #expect(explanation.decision == wanted.field("decision")?.scalarText)
            if let rule = wanted.field("rule")?.scalarText {
                #expect(explanation.deciding?.source.rule == rule)
            }
            if let tier = wanted.field("tier")?.scalarText {
                #expect(explanation.deciding?.source.tier.rawValue == tier)
            }
            if let beaten = wanted.field("beaten")?.value.list {
                #expect(explanation.beaten.map(\.source.rule) == beaten.compactMap(\.stringValue))
            }
        case "conflicts":
            let got = policy.conflicts.map { "\($0.kind.rawValue) \($0.rule.rule) by \($0.by.rule)" }.sorted()
            let list = (wanted.value.list ?? []).compactMap(\.stringValue).sorted()
            #expect(got == list)
        case "process", "file":
            let name = try #require(wanted.field("document")?.scalarText)
            let document = try #require(policy.documents.first { $0.identity.name == name }, "no document \(name)")
            let got = kind == "process"
                ? document.processes.map { "\($0.rule.action.rawValue) \($0.rule.name) \($0.rule.path)" }
                : document.files.map { "\($0.rule.behavior.rawValue) \($0.rule.filter) recursive=\($0.rule.recursive) app=\($0.rule.app.joined(separator: ","))" }
            #expect(got == (wanted.field("entries")?.value.list ?? []).compactMap(\.stringValue))
        case "policymode":
            for entry in wanted.value.map ?? [] {
                let document = try #require(policy.documents.first { $0.identity.name == entry.key }, "no document \(entry.key)")
                #expect((document.policyMode?.rawValue ?? "none") == entry.value.stringValue, "mode of \(entry.key)")
            }
        case "objects":
            let got = policy.objects.map(\.identity.description)
            #expect(got == (wanted.value.list ?? []).compactMap(\.stringValue))
        default:
            Issue.record("unhandled expectation \(kind)")
        }
    }

    func checkCovers(_ wanted: YAMLNode) throws {
        var decoder = PolicyDecoder(file: "case")
        let g = try #require(wanted.field("g").flatMap { decoder.decodeSelectorNode($0) })
        let n = try #require(wanted.field("n").flatMap { decoder.decodeSelectorNode($0) })
        #expect(decoder.diagnostics.isEmpty)
        #expect(Coverage.covers(g, n) == (wanted.field("result")?.value == .bool(true)))
    }
}

/// Builds the inputs of a case: documents, the environments, and one cluster.
enum CaseSetup {
    static func build(_ c: YAMLNode) throws -> (EffectivePolicy?, [Diagnostic]) {
        var objects: [PolicyObject] = []
        var diagnostics: [Diagnostic] = []
        func add(_ node: YAMLNode, path: String) {
            let decoded = PolicyDecoder.decodeFile(Array(YAMLWriter.document(node.value).utf8), file: path)
            objects += decoded.objects
            diagnostics += decoded.diagnostics
        }
        for (index, doc) in (c.field("global")?.items ?? []).enumerated() {
            add(doc, path: "policies/global/g\(index).yaml")
        }
        for pair in c.field("namespaces")?.pairs ?? [] {
            let ns = pair.key.scalarText ?? ""
            for (index, doc) in pair.value.items.enumerated() {
                add(doc, path: "policies/namespaces/\(ns)/n\(index).yaml")
            }
        }
        let env = PolicyDecoder.decodeFleetFile(Array(TreeGenerator.environments.utf8), file: "clusters/environments.yaml")
        let clusterNode = c.field("cluster")
        let labels = clusterNode?.field("labels")?.value.map?.reduce(into: [String: String]()) {
            $0[$1.key] = $1.value.stringValue
        } ?? [:]
        let cluster = MemberCluster(name: "c1", labels: labels,
                                    environment: clusterNode?.field("environment")?.scalarText ?? "staging",
                                    target: .directory(path: "/tmp/c1"))
        let validated = PolicyValidator.validate(PolicyTree(objects: objects))
        let fleet = FleetValidator.validate(FleetConfig(environments: env.environments, clusters: [cluster]))
        diagnostics += validated.diagnostics + fleet.diagnostics + env.diagnostics
        guard let policy = validated.value, let fleetValue = fleet.value else { return (nil, diagnostics) }
        let renderer = Renderer(policy: policy, fleet: fleetValue, revision: "r1")
        return (renderer.render(cluster: cluster), diagnostics)
    }

    struct QueryError: Error {}

    static func query(_ node: YAMLNode) throws -> ExplainQuery {
        guard let target = node.field("target")?.scalarText else { throw QueryError() }
        if let path = node.field("process")?.scalarText { return .process(target: target, path: path) }
        guard let peer = node.field("peer")?.scalarText else { throw QueryError() }
        let direction = Direction(rawValue: node.field("direction")?.scalarText ?? "ingress") ?? .ingress
        var proto: PortSet.Proto? = .tcp
        var port: Int?
        if let text = node.field("port")?.scalarText {
            if text == "icmp" {
                proto = nil
            } else {
                let parts = text.split(separator: "/")
                proto = PortSet.Proto(rawValue: String(parts[0]))
                port = Int(parts[1])
            }
        }
        return .network(target: target, peer: peer, direction: direction, proto: proto, port: port,
                         application: node.field("app")?.scalarText)
    }
}

extension YAMLNode {
    func field(_ key: String) -> YAMLNode? {
        guard case .mapping(let pairs) = content else { return nil }
        return pairs.first { $0.key.scalarText == key }?.value
    }

    var items: [YAMLNode] {
        if case .sequence(let items) = content { return items }
        return []
    }

    var pairs: [YAMLPair] {
        if case .mapping(let pairs) = content { return pairs }
        return []
    }
}

extension Value {
    var list: [Value]? {
        if case .list(let items) = self { return items }
        return nil
    }

    var map: [MapEntry]? {
        if case .map(let entries) = self { return entries }
        return nil
    }

    var int: Int? {
        if case .int(let i) = self { return i }
        return nil
    }
}
