import PolicyCore
import PolicyYAML
import Testing

/// Admission documents are checked as NeuVector's importer checks them (controller/rest/crdsecurityrule.go
/// `parseCurCrdAdmCtrlContent` L3157-3300 and controller/rest/admission.go `validateAdmCtrlCriteria` L72-187,
/// with the options tables of controller/nvk8sapi/nvvalidatewebhookcfg/admission/admission.go L274-681),
/// and every error is at the node that is wrong. Cases are our own, each citing the NeuVector line it mirrors.
@Suite struct AdmissionValidationTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var path: String = "policies/global/admission.yaml"
        var yaml: String
        /// `LINE:COL: error: prefix`, or nil when the document is valid.
        var expected: String?
        var testDescription: String { name }
    }

    static func document(_ rules: String, config: String = "", name: String = "local") -> String {
        """
        apiVersion: neuvector.com/v1
        kind: NvAdmissionControlSecurityRule
        metadata:
          name: \(name)
        spec:
        \(config)  rules:
        \(rules)
        """
    }

    static func rule(_ action: String = "deny", _ criteria: String, extra: String = "") -> String {
        """
          - action: \(action)
        \(extra)    criteria:
        \(criteria)
        """
    }

    static let namespaced = "policies/namespaces/team-a/admission.yaml"

    static let cases: [Case] = [
        // admission.go L299-304 (namespace takes containsAny/notContainsAny)
        Case(name: "a valid deny and allow",
             yaml: document(rule("deny", "    - {name: namespace, op: containsAny, value: 'n2,ns1'}")
                 + "\n" + rule("allow", "    - {name: image, op: containsAny, value: 'reg.corp/*'}")),
             expected: nil),
        // crdsecurityrule.go L3218-3219 "unsupported action"
        Case(name: "unsupported action", yaml: document(rule("permit", "    - {name: namespace, op: containsAny, value: a}")),
             expected: "7:13: error: admission rule action 'permit' is not one of: allow, deny"),
        // crdsecurityrule.go L3220-3221 "no criteria"
        Case(name: "no criteria", yaml: document("  - action: deny\n    criteria: []"),
             expected: "8:15: error: admission rule #0 has no criteria"),
        // admission.go L166-167 "Unsupported criterion name"
        Case(name: "unknown criterion name with did-you-mean",
             yaml: document(rule("deny", "    - {name: namespaces, op: containsAny, value: a}")),
             expected: "9:14: error: unsupported criterion name 'namespaces' in an admission deny rule (did you mean 'namespace'?)"),
        // admission.go L148-149 "Invalid criterion operator"; namespace has setOps1 only (admission.go L299-302)
        Case(name: "operator not allowed for the name",
             yaml: document(rule("deny", "    - {name: namespace, op: '=', value: a}")),
             expected: "9:29: error: criterion 'namespace' does not take the operator '='"),
        // admission.go L124-131: a value list is enforced (runAsRoot takes true/false)
        Case(name: "bool criterion with another value",
             yaml: document(rule("deny", "    - {name: runAsRoot, op: '=', value: 'yes'}")),
             expected: "9:41: error: criterion 'runAsRoot' takes true or false, not 'yes'"),
        // admission.go L460-464: allowPrivEscalation takes only "true"
        Case(name: "allowPrivEscalation takes only true",
             yaml: document(rule("deny", "    - {name: allowPrivEscalation, op: '=', value: 'false'}")),
             expected: "9:51: error: criterion 'allowPrivEscalation' takes true, not 'false'"),
        // admission.go L133-143: a numeric operator needs a number
        Case(name: "count needs a number",
             yaml: document(rule("deny", "    - {name: cveHighCount, op: '>=', value: many}")),
             expected: "9:45: error: criterion 'cveHighCount' takes a number, not 'many'"),
        // admission.go L531-681: sharePidWithHost exists for deny rules only
        Case(name: "criterion of deny rules only in an allow",
             yaml: document(rule("allow", "    - {name: sharePidWithHost, op: '=', value: 'true'}")),
             expected: "9:14: error: unsupported criterion name 'sharePidWithHost' in an admission allow rule"),
        // crdsecurityrule_test.go L225: an unquoted true is not a string for NeuVector's importer
        Case(name: "unquoted bool value",
             yaml: document(rule("deny", "    - {name: pspCompliance, op: '=', value: true}")),
             expected: "9:45: error: criterion value must be a string"),
        // crdsecurityrule.go L3222-3226 "unsupported rule_mode"
        Case(name: "rule_mode on an allow rule",
             yaml: document(rule("allow", "    - {name: image, op: containsAny, value: a}", extra: "    rule_mode: protect\n")),
             expected: "8:16: error: rule_mode 'protect' is for deny rules"),
        Case(name: "unknown rule_mode", yaml: document(rule("deny", "    - {name: image, op: containsAny, value: a}", extra: "    rule_mode: enforce\n")),
             expected: "8:16: error: rule_mode 'enforce' is not one of"),
        // admission.go L299-319 "Invalid containers value"
        Case(name: "containers value",
             yaml: document(rule("deny", "    - {name: image, op: containsAny, value: a}", extra: "    containers: [pods]\n")),
             expected: "8:17: error: containers value 'pods' is not one of"),
        // admission.go L105-112: regex values must compile
        Case(name: "user regex that does not compile",
             yaml: document(rule("deny", "    - {name: user, op: regex, value: 'adm(in'}")),
             expected: "9:38: error: 'adm(in' is not a valid regular expression"),
        // admission.go L177-184: storageClassName combines with namespace only
        Case(name: "storageClassName with another criterion",
             yaml: document(rule("deny", "    - {name: storageClassName, op: containsAny, value: fast}\n    - {name: image, op: containsAny, value: a}")),
             expected: "10:14: error: the storageClassName criterion can only be combined with namespace criteria"),
        // crdsecurityrule.go L3185-3191: config needs enable, mode and client_mode together
        Case(name: "config without client_mode",
             yaml: document(rule("deny", "    - {name: image, op: containsAny, value: a}"),
                            config: "  config: {enable: true, mode: protect}\n"),
             expected: "6:11: error: config needs 'client_mode'"),
        Case(name: "config mode", yaml: document(rule("deny", "    - {name: image, op: containsAny, value: a}"),
                                                 config: "  config: {enable: true, mode: block, client_mode: service}\n"),
             expected: "6:32: error: config.mode 'block' is not one of: monitor, protect"),
        Case(name: "config enable must be a bool", yaml: document(rule("deny", "    - {name: image, op: containsAny, value: a}"),
                                                                  config: "  config: {enable: test, mode: protect, client_mode: service}\n"),
             expected: "6:20: error: config.enable must be true or false"),
        // strict by default: NeuVector's schema would prune `critera`, and the rule would have no criteria
        Case(name: "misspelt criteria", yaml: document("  - action: deny\n    critera:\n    - {name: image, op: containsAny, value: a}"),
             expected: "8:5: error: unknown field 'critera' in admission rule (did you mean 'criteria'?)"),
        // a federal admission object: the hub does not use federation
        Case(name: "fed", yaml: document(rule("deny", "    - {name: image, op: containsAny, value: a}"), name: "fed"),
             expected: "4:9: error: NvAdmissionControlSecurityRule 'fed' is NeuVector federation"),
        // any other name is compiled into `local` (SEMANTICS §1.3)
        Case(name: "another name is fine", yaml: document(rule("deny", "    - {name: image, op: containsAny, value: a}"), name: "deny-public"),
             expected: nil),
        // the conformance samples' customPath criterion (deny rules only: admission.go L92-94)
        Case(name: "customPath in an allow rule",
             yaml: document(rule("allow", "    - {name: customPath, op: containsAny, type: customPath, path: 'item.spec.containers[_].image', value: 'redis'}")),
             expected: "9:49: error: criterion type 'customPath' is for deny rules only"),
        // namespace documents (SEMANTICS §1.4)
        Case(name: "namespace allow limited to its namespace", path: namespaced,
             yaml: document(rule("allow", "    - {name: namespace, op: containsAny, value: team-a}\n    - {name: image, op: containsAny, value: 'x/*'}")),
             expected: nil),
        Case(name: "namespace rule without a namespace criterion", path: namespaced,
             yaml: document(rule("allow", "    - {name: image, op: containsAny, value: 'x/*'}")),
             expected: "9:5: error: an admission rule of namespace 'team-a' needs the criterion 'namespace containsAny team-a'"),
        Case(name: "namespace rule that reaches another namespace", path: namespaced,
             yaml: document(rule("deny", "    - {name: namespace, op: containsAny, value: 'team-a,team-b'}")),
             expected: "9:49: error: an admission rule of namespace 'team-a' may admit only 'team-a'"),
        Case(name: "namespace rule with a glob", path: namespaced,
             yaml: document(rule("allow", "    - {name: namespace, op: containsAny, value: 'team-*'}")),
             expected: "9:49: error: an admission rule of namespace 'team-a' may admit only 'team-a'"),
        Case(name: "namespace document cannot set config", path: namespaced,
             yaml: document(rule("deny", "    - {name: namespace, op: containsAny, value: team-a}"),
                            config: "  config: {enable: false, mode: monitor, client_mode: service}\n"),
             expected: "6:11: error: spec.config comes from global documents only"),
        Case(name: "namespace document cannot change a default rule", path: namespaced,
             yaml: document(rule("allow", "    - {name: namespace, op: containsAny, value: team-a}", extra: "    id: 3\n")),
             expected: "8:9: error: id 3 is one of NeuVector's default admission rules"),
    ]

    @Test(arguments: cases)
    func checksAsNeuVectorDoes(_ c: Case) {
        let decoded = PolicyDecoder.decodeFile(Array(c.yaml.utf8), file: c.path)
        let validated = PolicyValidator.validate(PolicyTree(objects: decoded.objects))
        let all = (decoded.diagnostics + validated.diagnostics).sorted()
        let errors = all.filter { $0.severity == .error }.map(\.description)
        if let expected = c.expected {
            let wanted = "\(c.path):\(expected)"
            #expect(errors.contains { $0.hasPrefix(wanted) }, "wanted \(wanted)\ngot:\n\(errors.joined(separator: "\n"))")
        } else {
            #expect(errors.isEmpty, "\(errors)")
        }
    }

    @Test func twoNamespacesNeedTwoNames() {
        let a = Self.document(Self.rule("allow", "    - {name: namespace, op: containsAny, value: team-a}"))
        let b = Self.document(Self.rule("allow", "    - {name: namespace, op: containsAny, value: team-b}"))
        let objects = PolicyDecoder.decodeFile(Array(a.utf8), file: "policies/namespaces/team-a/adm.yaml").objects
            + PolicyDecoder.decodeFile(Array(b.utf8), file: "policies/namespaces/team-b/adm.yaml").objects
        let validated = PolicyValidator.validate(PolicyTree(objects: objects))
        #expect(validated.value == nil)
        #expect(validated.diagnostics.map(\.description).contains { $0.hasPrefix("policies/namespaces/team-b/adm.yaml:1:1: error: NvAdmissionControlSecurityRule//local is defined twice: first at policies/namespaces/team-a/adm.yaml:1:1 (admission documents are cluster-scoped") })
    }
}
