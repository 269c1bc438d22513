import PolicyCore
import Testing

/// Valid but large input costs bounded work: a document may hold at most
/// `PolicyValidator.maximumRulesPerDocument` rules.
@Suite struct BoundedInputTests {
    static func document(rules: Int) -> PolicyObject {
        let peer = GroupSelector(name: "external")
        let egress = (0..<rules).map { NetworkRule(name: "r\($0)", selector: peer, action: .deny, ports: "tcp/\(1 + $0 % 60000)") }
        let target = Target(selector: GroupSelector(name: "containers", criteria: [Criterion("container", .equal, "*")]))
        let origin = Origin(location: SourceLocation(file: "policies/global/huge.yaml", line: 1, column: 1))
        return PolicyObject(kind: .clusterSecurityRule, metadata: ObjectMeta(name: "huge"),
                            body: .securityRule(SecurityRuleSpec(target: target, egress: egress)), origin: origin)
    }

    @Test func aDocumentOverTheRuleLimitIsAnErrorThatSaysToSplitIt() {
        let limit = PolicyValidator.maximumRulesPerDocument
        let over = PolicyValidator.validate(PolicyTree(objects: [Self.document(rules: limit + 1)]))
        #expect(over.value == nil)
        #expect(over.diagnostics.map(\.description).contains(
            "policies/global/huge.yaml:1:1: error: this document holds \(limit + 1) rules, more than the \(limit) one document may hold; split it into several documents"))
        let at = PolicyValidator.validate(PolicyTree(objects: [Self.document(rules: limit)]))
        #expect(!at.diagnostics.contains { $0.message.contains("one document may hold") })
    }
}
