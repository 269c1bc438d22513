import PolicyCore
import PolicyYAML
import Testing

/// Each invalid input reports the right file, line and column.
@Suite struct ValidationErrorTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var path: String
        var yaml: String
        /// `line:col: severity: fragment of the message`
        var expected: String
        var testDescription: String { name }
    }

    static func nsRule(_ body: String, name: String = "nv.web.demo", namespace: String = "demo") -> String {
        """
        apiVersion: neuvector.com/v1
        kind: NvSecurityRule
        metadata:
          name: \(name)
          namespace: \(namespace)
        spec:
          target:
            selector:
              name: nv.web.demo
              criteria:
              - {key: service, op: =, value: web.demo}
              - {key: domain, op: =, value: demo}
        \(body)
        """
    }

    static let ns = "policies/namespaces/demo/web.yaml"

    /// 251 characters: a valid Kubernetes name (four labels of 62), but NAME.yaml is longer than a file name may be.
    static let longName = Array(repeating: String(repeating: "a", count: 62), count: 4).joined(separator: ".")

    static let cases: [Case] = [
        Case(name: "namespace folder that is no namespace name", path: "policies/namespaces/Demo_1/web.yaml",
             yaml: nsRule("", namespace: "Demo_1"), expected: "1:1: error: the folder policies/namespaces/Demo_1/ is not a namespace name"),
        Case(name: "unknown hub annotation", path: "policies/global/a.yaml",
             yaml: "apiVersion: neuvector.com/v1\nkind: NvClusterSecurityRule\nmetadata:\n  name: a\n  annotations:\n    policyhub.dev/placment: environment=production\nspec: {target: {selector: {name: nodes}}}\n",
             expected: "6:5: error: unknown annotation 'policyhub.dev/placment' (did you mean 'policyhub.dev/placement'?)"),
        Case(name: "name too long for a file", path: ns, yaml: nsRule("", name: longName),
             expected: "4:9: error: metadata.name is 251 characters; a GitOps folder stores it as NAME.yaml"),
        Case(name: "YAML syntax", path: ns, yaml: "a: [1, 2\nb: 3\n", expected: "2:2: error: did not find expected ',' or ']'"),
        Case(name: "unknown kind", path: ns, yaml: "apiVersion: neuvector.com/v1\nkind: NvThing\nmetadata: {name: x}\n",
             expected: "2:7: error: unknown kind 'NvThing'"),
        Case(name: "unknown apiVersion", path: ns,
             yaml: "apiVersion: neuvector.com/v2\nkind: NvSecurityRule\nmetadata: {name: x}\nspec: {target: {selector: {name: a}}}\n",
             expected: "1:13: error: unknown apiVersion 'neuvector.com/v2'"),
        Case(name: "missing target", path: ns,
             yaml: "apiVersion: neuvector.com/v1\nkind: NvSecurityRule\nmetadata: {name: x, namespace: demo}\nspec:\n  ingress: []\n",
             expected: "5:3: error: spec is missing required field 'target'"),
        Case(name: "bad action", path: ns, yaml: nsRule("""
              ingress:
              - name: r1
                action: permit
                selector: {name: external}
            """), expected: "15:13: error: action 'permit' is not one of: allow, deny"),
        Case(name: "bad ports", path: ns, yaml: nsRule("""
              ingress:
              - name: r1
                action: allow
                ports: tcp/99999
                selector: {name: external}
            """), expected: "16:12: error: ports: 'tcp/99999' is not a port"),
        Case(name: "priority out of range", path: ns, yaml: nsRule("""
              ingress:
              - name: r1
                action: allow
                priority: 101
                selector: {name: external}
            """), expected: "16:15: error: priority 101 is outside 0..100"),
        Case(name: "unknown application", path: ns, yaml: nsRule("""
              egress:
              - name: r1
                action: allow
                applications: [HTTP, Gopher]
                selector: {name: external}
            """), expected: "16:19: error: unknown application 'Gopher'"),
        Case(name: "duplicate rule name", path: ns, yaml: nsRule("""
              ingress:
              - {name: r1, action: allow, selector: {name: external}}
              egress:
              - {name: r1, action: deny, selector: {name: external}}
            """), expected: "16:12: error: rule name 'r1' is used twice"),
        Case(name: "fed selector", path: ns, yaml: nsRule("""
              ingress:
              - name: r1
                action: allow
                selector: {name: fed.web, criteria: [{key: service, op: =, value: w}]}
            """), expected: "16:22: error: 'fed.web' is a NeuVector federation (fed.) group"),
        Case(name: "bad regex", path: ns, yaml: nsRule("""
              ingress:
              - name: r1
                action: allow
                selector:
                  name: g1
                  criteria:
                  - {key: image, op: regex, value: "a(b"}
            """), expected: "19:40: error: criterion regex 'a(b' does not compile"),
        Case(name: "bad criteria op", path: ns, yaml: nsRule("""
              ingress:
              - name: r1
                action: allow
                selector:
                  name: g1
                  criteria:
                  - {key: image, op: like, value: x}
            """), expected: "19:26: error: criterion op 'like' is not one of"),
        Case(name: "learned group form", path: ns, yaml: nsRule("""
              egress:
              - name: r1
                action: allow
                selector:
                  name: nv.db.demo
                  criteria:
                  - {key: service, op: =, value: database.demo}
            """), expected: "19:38: error: the learned group 'nv.db.demo' must have 'service = db.demo'"),
        Case(name: "reserved containers criteria", path: ns, yaml: nsRule("""
              egress:
              - name: r1
                action: allow
                selector:
                  name: containers
                  criteria: [{key: image, op: =, value: x}]
            """), expected: "18:17: error: the reserved group 'containers' must have exactly the criterion 'container = *'"),
        Case(name: "process path", path: ns, yaml: nsRule("""
              process:
              - {name: sh, path: bin/sh, action: allow}
            """), expected: "14:22: error: process path 'bin/sh' must be absolute"),
        Case(name: "deny all processes", path: ns, yaml: nsRule("""
              process:
              - {name: '*', path: '*', action: deny}
            """), expected: "14:23: error: a rule that denies every process is not allowed"),
        Case(name: "file filter", path: ns, yaml: nsRule("""
              file:
              - {filter: ../etc/shadow, behavior: block_access}
            """), expected: "14:14: error: file filter '../etc/shadow' must not reach above its folder"),
        Case(name: "policymode on a custom group", path: "policies/global/g.yaml", yaml: """
            apiVersion: neuvector.com/v1
            kind: NvClusterSecurityRule
            metadata: {name: g}
            spec:
              target:
                policymode: Protect
                selector: {name: containers, criteria: [{key: container, op: =, value: '*'}]}
            """, expected: "6:17: error: policymode is only for 'nodes' and learned nv.* groups"),
        Case(name: "namespace target lacks domain", path: ns, yaml: """
            apiVersion: neuvector.com/v1
            kind: NvSecurityRule
            metadata: {name: web, namespace: demo}
            spec:
              target:
                selector:
                  name: web
                  criteria:
                  - {key: image, op: =, value: nginx}
            """, expected: "9:7: error: the target of an NvSecurityRule in namespace 'demo' must have the criterion 'domain = demo'"),
        Case(name: "namespace mismatch", path: ns, yaml: nsRule("", namespace: "other"),
             expected: "5:14: error: metadata.namespace must be 'demo'"),
        Case(name: "tier on a namespace rule", path: ns, yaml: """
            apiVersion: neuvector.com/v1
            kind: NvSecurityRule
            metadata:
              name: nv.web.demo
              namespace: demo
              annotations: {policyhub.dev/tier: baseline}
            spec:
              target:
                selector:
                  name: nv.web.demo
                  criteria: [{key: service, op: =, value: web.demo}, {key: domain, op: =, value: demo}]
            """, expected: "6:37: error: policyhub.dev/tier is for global documents only"),
        Case(name: "bad placement", path: "policies/global/p.yaml", yaml: """
            apiVersion: neuvector.com/v1
            kind: NvClusterSecurityRule
            metadata:
              name: p
              annotations: {policyhub.dev/placement: "region in eu"}
            spec:
              target:
                selector: {name: containers, criteria: [{key: container, op: =, value: '*'}]}
            """, expected: "5:42: error: policyhub.dev/placement: expected '(' at column 11"),
        Case(name: "NvSecurityRule in global", path: "policies/global/x.yaml", yaml: nsRule(""),
             expected: "1:1: error: NvSecurityRule documents belong under policies/namespaces/"),
        Case(name: "bad object name", path: ns, yaml: nsRule("", name: "Web_Rule"),
             expected: "4:9: error: metadata.name 'Web_Rule' is not a valid Kubernetes name"),
        // NeuVector's structural schema prunes unknown fields, so a misspelt field would be dropped silently
        Case(name: "unknown field is an error", path: ns, yaml: nsRule("""
              ingres: []
            """), expected: "13:3: error: unknown field 'ingres' in spec (did you mean 'ingress'?)"),
        Case(name: "misspelt applications", path: ns, yaml: nsRule("""
              ingress:
              - {name: r1, action: allow, application: [HTTP], ports: tcp/80,
                 selector: {name: containers, criteria: [{key: container, op: =, value: '*'}]}}
            """), expected: "14:31: error: unknown field 'application' in network rule (did you mean 'applications'?)"),
        Case(name: "duplicate key", path: ns, yaml: "kind: NvSecurityRule\nkind: NvSecurityRule\n",
             expected: "2:1: error: duplicate key 'kind' in mapping"),
    ]

    @Test(arguments: cases)
    func reportsTheRightPlace(_ c: Case) {
        let decoded = PolicyDecoder.decodeFile(Array(c.yaml.utf8), file: c.path)
        let validated = PolicyValidator.validate(PolicyTree(objects: decoded.objects))
        let all = (decoded.diagnostics + validated.diagnostics).sorted().map(\.description)
        let wanted = "\(c.path):\(c.expected)"
        #expect(all.contains { $0.hasPrefix(wanted) }, "wanted \(wanted)\ngot:\n\(all.joined(separator: "\n"))")
    }

    @Test func duplicateIdentityNamesBothPlaces() {
        let a = PolicyDecoder.decodeFile(Array(Self.nsRule("").utf8), file: "policies/namespaces/demo/a.yaml")
        let b = PolicyDecoder.decodeFile(Array(Self.nsRule("").utf8), file: "policies/namespaces/demo/b.yaml")
        let validated = PolicyValidator.validate(PolicyTree(objects: a.objects + b.objects))
        #expect(validated.value == nil)
        #expect(validated.diagnostics.map(\.description) == [
            "policies/namespaces/demo/b.yaml:1:1: error: NvSecurityRule/demo/nv.web.demo is defined twice: first at policies/namespaces/demo/a.yaml:1:1",
        ])
    }

    @Test func diagnosticsAreSortedByFileLineColumn() {
        let text = Self.nsRule("""
              ingress:
              - {name: r1, action: allow, ports: nope, selector: {name: external}}
              - {name: r1, action: allow, priority: 300, selector: {name: external}}
            """)
        let decoded = PolicyDecoder.decodeFile(Array(text.utf8), file: Self.ns)
        let diagnostics = PolicyValidator.validate(PolicyTree(objects: decoded.objects)).diagnostics
        #expect(diagnostics.count == 3)
        #expect(diagnostics == diagnostics.sorted())
        #expect(diagnostics.map(\.location.line) == [14, 15, 15])
    }
}
