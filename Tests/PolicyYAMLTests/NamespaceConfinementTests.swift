import PolicyCore
import PolicyYAML
import Testing

/// A namespace document can never select a workload of another namespace (SEMANTICS §1.4), whatever flags
/// its target carries: each escape below is refused with an error at the node that widens the target.
@Suite struct NamespaceConfinementTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        /// The target's `selector:` mapping, indented for line 8 of the document.
        var selector: String
        /// `line:col: error: fragment`, or nil when the target is confined and must validate.
        var expected: String?
        var testDescription: String { name }
    }

    static let path = "policies/namespaces/payments/esc.yaml"

    /// The document of the review: an egress rule to `external` on the given target, in namespace payments.
    static func document(_ selector: String) -> String {
        """
        apiVersion: neuvector.com/v1
        kind: NvSecurityRule
        metadata:
          name: esc
          namespace: payments
        spec:
          target:
        \(selector)
          egress:
          - {name: out, action: allow, selector: {name: external}}
        """
    }

    /// Global group definitions the referral cases refer to.
    static let definitions = """
        apiVersion: neuvector.com/v1
        kind: NvGroupDefinition
        metadata: {name: everyone}
        spec:
          selector:
            name: everyone
            criteria: [{key: image, op: =, value: '*'}]
        ---
        apiVersion: neuvector.com/v1
        kind: NvGroupDefinition
        metadata: {name: payments-and-demo}
        spec:
          selector:
            name: payments-and-demo
            criteria: [{key: domain, op: =, value: payments}, {key: domain, op: =, value: demo}]
        ---
        apiVersion: neuvector.com/v1
        kind: NvGroupDefinition
        metadata: {name: payments-web}
        spec:
          selector:
            name: payments-web
            criteria: [{key: domain, op: =, value: payments}, {key: image, op: prefix, value: web}]
        """

    static let cases: [Case] = [
        // the review's escape: containers by name_referral, no criteria
        Case(name: "containers with name_referral", selector: """
                selector: {name: containers, criteria: [], name_referral: true}
            """, expected: "8:22: error: the target of an NvSecurityRule in namespace 'payments' cannot be the reserved cluster-wide group 'containers'"),
        Case(name: "containers with its own criterion", selector: """
                selector: {name: containers, criteria: [{key: container, op: =, value: '*'}]}
            """, expected: "8:22: error: the target of an NvSecurityRule in namespace 'payments' cannot be the reserved cluster-wide group 'containers'"),
        Case(name: "nodes with name_referral", selector: """
                selector: {name: nodes, name_referral: true}
            """, expected: "8:22: error: the target of an NvSecurityRule in namespace 'payments' cannot be the reserved cluster-wide group 'nodes'"),
        Case(name: "external as target", selector: """
                selector: {name: external}
            """, expected: "8:22: error: the target of an NvSecurityRule in namespace 'payments' cannot be the reserved cluster-wide group 'external'"),
        Case(name: "custom group with name_referral and no domain", selector: """
                selector: {name: mygroup, criteria: [{key: image, op: =, value: nginx}], name_referral: true}
            """, expected: "error: the target of an NvSecurityRule in namespace 'payments' must have the criterion 'domain = payments'"),
        // a second domain criterion is OR'd with the first: it widens the group to another namespace
        Case(name: "second domain criterion", selector: """
                selector:
                  name: two-namespaces
                  criteria:
                  - {key: domain, op: =, value: payments}
                  - {key: domain, op: =, value: demo}
            """, expected: "12:37: error: the target of an NvSecurityRule in namespace 'payments' has the criterion 'domain = demo'"),
        Case(name: "namespace key is the domain key", selector: """
                selector:
                  name: alias
                  criteria:
                  - {key: domain, op: =, value: payments}
                  - {key: namespace, op: =, value: demo}
            """, expected: "12:40: error: the target of an NvSecurityRule in namespace 'payments' has the criterion 'namespace = demo'"),
        Case(name: "negative domain criterion widens", selector: """
                selector:
                  name: not-kube
                  criteria:
                  - {key: domain, op: =, value: payments}
                  - {key: domain, op: '!=', value: kube-system}
            """, expected: "12:40: error: the target of an NvSecurityRule in namespace 'payments' has the criterion 'domain != kube-system'"),
        Case(name: "glob domain", selector: """
                selector:
                  name: globbed
                  criteria: [{key: domain, op: =, value: 'pay*'}]
            """, expected: "error: the target of an NvSecurityRule in namespace 'payments' has the criterion 'domain = pay*'"),
        Case(name: "another namespace's learned group", selector: """
                selector:
                  name: nv.api.demo
                  criteria: [{key: service, op: =, value: api.demo}, {key: domain, op: =, value: demo}]
            """, expected: "error: the target of an NvSecurityRule in namespace 'payments' has the criterion 'domain = demo'"),
        Case(name: "referral to a definition selecting every namespace", selector: """
                selector:
                  name: everyone
                  name_referral: true
                  criteria: [{key: domain, op: =, value: payments}]
            """, expected: "10:22: error: name_referral: the NvGroupDefinition of 'everyone' at policies/global/groups.yaml:1:1 must have the criterion 'domain = payments'"),
        Case(name: "referral to a definition of two namespaces", selector: """
                selector:
                  name: payments-and-demo
                  name_referral: true
                  criteria: [{key: domain, op: =, value: payments}]
            """, expected: "error: name_referral: the NvGroupDefinition of 'payments-and-demo' at policies/global/groups.yaml:9:1 has the criterion 'domain = demo'"),
        // confined targets still validate
        Case(name: "own learned group", selector: """
                selector:
                  name: nv.api.payments
                  criteria: [{key: service, op: =, value: api.payments}, {key: domain, op: =, value: payments}]
            """, expected: nil),
        Case(name: "referral to a confined definition", selector: """
                selector:
                  name: payments-web
                  name_referral: true
                  criteria: [{key: domain, op: =, value: payments}]
            """, expected: nil),
    ]

    @Test(arguments: cases)
    func targetsAreConfinedToTheirNamespace(_ c: Case) {
        let groups = PolicyDecoder.decodeFile(Array(Self.definitions.utf8), file: "policies/global/groups.yaml")
        let document = PolicyDecoder.decodeFile(Array(Self.document(c.selector).utf8), file: Self.path)
        #expect(groups.diagnostics.filter(\.isError).isEmpty)
        let validated = PolicyValidator.validate(PolicyTree(objects: groups.objects + document.objects))
        let errors = (document.diagnostics + validated.diagnostics).filter(\.isError).map(\.description)
        guard let expected = c.expected else {
            #expect(errors.isEmpty, "\(errors)")
            #expect(validated.value != nil)
            return
        }
        #expect(validated.value == nil, "the escape validated")
        let located = expected.hasPrefix("error:") ? "\(Self.path):" : "\(Self.path):\(expected)"
        #expect(errors.contains { $0.hasPrefix(located) && $0.contains(expected) }, "wanted \(expected)\ngot:\n\(errors.joined(separator: "\n"))")
    }
}
