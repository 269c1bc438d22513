import PolicyCore
import PolicyYAML
import Testing

/// Inputs where the hub used to disagree with NeuVector's importer, each case our own and citing the
/// NeuVector source it follows (neuvector/neuvector: controller/rest/group.go, crdsecurityrule.go,
/// file_monitor.go, share/utils/utils.go).
@Suite struct ImporterAgreementTests {
    static func rule(target: String, criteria: String = "", body: String = "") -> String {
        """
        apiVersion: neuvector.com/v1
        kind: NvClusterSecurityRule
        metadata:
          name: agreement
        spec:
          target:
            selector:
              name: \(target)
              criteria:
        \(criteria)
        \(body)
        """
    }

    static func errors(_ yaml: String) -> [String] {
        let decoded = PolicyDecoder.decodeFile(Array(yaml.utf8), file: "policies/global/agreement.yaml")
        let validated = PolicyValidator.validate(PolicyTree(objects: decoded.objects))
        return (decoded.diagnostics + validated.diagnostics).filter { $0.severity == .error }.map(\.description)
    }

    static func addressGroup(_ value: String) -> String {
        rule(target: "containers", criteria: "      - {key: container, op: =, value: '*'}", body: """
          egress:
          - name: out
            action: allow
            selector:
              name: peer
              criteria:
              - {key: address, op: =, value: '\(value)'}
        """)
    }

    // group.go validateAddressRange L291-298 with share/utils ParseIPRange L662-690; validateDomainName
    // L307-313 (regDomain, regSubDomain, the vh: forms, under 256 characters); accepted values as in
    // group_test.go L166-174
    @Test(arguments: ["1.2.3.4", "10.0.0.0/8", "1.2.3.4/17", "10.0.0.1-10.0.0.9", "10.0.0.5-10.0.0.5", "::1",
                      "2001:db8::/32", "fe80::1-fe80::ff", "google.com", "abc-.xyz_", "8.us", "*.google.com",
                      "*.docs.google.com", "vh:api.example.com"])
    func addressesNeuVectorAccepts(_ value: String) {
        #expect(Self.errors(Self.addressGroup(value)).isEmpty, "\(value): \(Self.errors(Self.addressGroup(value)))")
    }

    // the refused values of group_test.go L243-264 and our own: bad octets, prefix lengths, reversed ranges,
    // a wildcard with one label, leading zeros (Go's net.ParseIP refuses them)
    @Test(arguments: ["1.2.3.789", "1.2.3.4/33", "10.0.0.9-10.0.0.1", "*.google", "1.2.3.4,2.3.4.5", "123", "a!z",
                      "abc..xyz", "abc.xyz.", ".abc", "abc.-xyz", "_abc.xyz", "a*.google.com", "ab.*.com", "01.2.3.4",
                      "2001:db8::/129", "1.2.3.4/16-1.2.3.4/24"])
    func addressesNeuVectorRefuses(_ value: String) {
        let found = Self.errors(Self.addressGroup(value))
        #expect(found.contains { $0.contains("error: address '\(value)' is neither an IP address") }, "\(value): \(found)")
    }

    @Test func anAddressErrorPointsAtTheValue() {
        let found = Self.errors(Self.addressGroup("1.2.3.789"))
        #expect(found.contains { $0.hasPrefix("policies/global/agreement.yaml:17:38: error: address '1.2.3.789'") }, "\(found)")
    }

    // group.go validateGroupConfigCriteria L502-506: an empty value is allowed for exact matches
    @Test func anEmptyServiceIsAnExactMatch() {
        let yaml = Self.rule(target: "svc-none", criteria: """
              - {key: service, op: =, value: ""}
              - {key: domain, op: =, value: demo}
        """)
        #expect(Self.errors(yaml).isEmpty, "\(Self.errors(yaml))")
        let prefix = Self.rule(target: "svc-none", criteria: "      - {key: service, op: prefix, value: \"\"}")
        #expect(Self.errors(prefix).contains { $0.contains("has an empty value; only '=' and '!=' may match an empty value") })
    }

    // group.go validateLearnGroupConfig L409-411: "Learned ip service group does not allow service criteria"
    @Test func aServiceCriterionOnAServiceIPGroupIsRefused() {
        let yaml = Self.rule(target: "nv.ip.web.demo", criteria: """
              - {key: service, op: =, value: web.demo}
              - {key: domain, op: =, value: demo}
        """)
        #expect(Self.errors(yaml).contains { $0.contains("a service IP group (nv.ip.*) takes no 'service' criterion") }, "\(Self.errors(yaml))")
        let domain = Self.rule(target: "nv.ip.web.demo", criteria: "      - {key: domain, op: =, value: other}")
        #expect(Self.errors(domain).contains { $0.contains("must have 'domain = demo', not 'other'") }, "\(Self.errors(domain))")
        let fine = Self.rule(target: "nv.ip.web.demo", criteria: "      - {key: domain, op: =, value: demo}")
        #expect(Self.errors(fine).isEmpty, "\(Self.errors(fine))")
    }

    // crdsecurityrule.go L2344-2360: "Group %s added with different criteria" within one document
    @Test func oneGroupNameWithTwoCriteriaSetsIsRefused() {
        let yaml = Self.rule(target: "containers", criteria: "      - {key: container, op: =, value: '*'}", body: """
          egress:
          - name: a
            action: allow
            selector: {name: backend, criteria: [{key: service, op: =, value: api.pay}]}
          - name: b
            action: deny
            selector: {name: backend, criteria: [{key: service, op: =, value: db.pay}]}
        """)
        #expect(Self.errors(yaml).contains { $0.contains("group 'backend' is used with different criteria than at") }, "\(Self.errors(yaml))")
        let same = yaml.replacingOccurrences(of: "db.pay", with: "api.pay")
        #expect(Self.errors(same).isEmpty, "\(Self.errors(same))")
    }

    // crdsecurityrule.go validateCrdProcessRules L2571-2590: name and path are trimmed before the checks
    @Test func processPathsAreTrimmedAsNeuVectorDoes() {
        let yaml = Self.rule(target: "containers", criteria: "      - {key: container, op: =, value: '*'}", body: """
          process:
          - {name: nc, path: ' /usr/bin/nc ', action: deny}
        """)
        #expect(Self.errors(yaml).isEmpty, "\(Self.errors(yaml))")
        let trailing = yaml.replacingOccurrences(of: "' /usr/bin/nc '", with: "/usr/bin/")
        #expect(Self.errors(trailing).contains { $0.contains("must not end with '/'") })
    }

    // crdsecurityrule.go validateCrdFileRules L2634-2646 cleans the filter before parseFileFilter
    // (file_monitor.go L37-70): `/lib/` is the file /lib, `/test/./ab/*` is /test/ab/*
    @Test(arguments: ["/lib/", "/test/./ab/*", "/var/log/../lib/*.so", " /etc/passwd ", "/dir/*/abc/*"])
    func fileFiltersNeuVectorCleans(_ filter: String) {
        let yaml = Self.rule(target: "containers", criteria: "      - {key: container, op: =, value: '*'}", body: """
          file:
          - {filter: '\(filter)', behavior: monitor_change, recursive: false, app: []}
        """)
        #expect(Self.errors(yaml).isEmpty, "\(filter): \(Self.errors(yaml))")
    }

    @Test(arguments: ["/", "lib", "/etc/(shadow)", "../etc/passwd", "/a/*+"])
    func fileFiltersNeuVectorRefuses(_ filter: String) {
        let yaml = Self.rule(target: "containers", criteria: "      - {key: container, op: =, value: '*'}", body: """
          file:
          - {filter: '\(filter)', behavior: monitor_change, recursive: false, app: []}
        """)
        #expect(Self.errors(yaml).contains { $0.contains("file filter") }, "\(filter): \(Self.errors(yaml))")
    }

    // group.go validateGroupConfigCriteria L530-538: a glob value cannot carry regex anchors
    @Test func aGlobWithAnchorsIsRefused() {
        let yaml = Self.rule(target: "anchored", criteria: "      - {key: image, op: =, value: '^nginx*'}")
        #expect(Self.errors(yaml).contains { $0.contains("mixes a glob (* ?) with regex anchors") }, "\(Self.errors(yaml))")
    }

    static func sensor(_ name: String, patterns: String, kind: String = "NvWafSecurityRule") -> String {
        """
        apiVersion: neuvector.com/v1
        kind: \(kind)
        metadata: {name: \(name)}
        spec:
          sensor:
            name: \(name)
            comment: test
            rules:
            - name: r1
              patterns:
        \(patterns)
        """
    }

    // crdsecurityrule.go parseCurCrdDlpContent L3433-3456 and dlp_rule.go validateDlpRuleConfig L349-392
    // (api/apis.go L141-145: 16 patterns, 512 characters each, 1024 in all; contexts url, header, body, packet)
    @Test func sensorsAreCheckedAsNeuVectorDoes() {
        let ok = "      - {key: pattern, op: regex, value: 'union\\s+select', context: url}"
        #expect(Self.errors(Self.sensor("sensor.mine", patterns: ok)).isEmpty, "\(Self.errors(Self.sensor("sensor.mine", patterns: ok)))")
        #expect(Self.errors(Self.sensor("sensor.wafdfltnv", patterns: ok)).contains { $0.contains("reserved name") })
        #expect(Self.errors(Self.sensor("sensor.log4shell", patterns: ok)).contains { $0.contains("predefined sensors") })
        #expect(Self.errors(Self.sensor("sensor.creditcard", patterns: ok, kind: "NvDlpSecurityRule")).contains { $0.contains("predefined sensors") })
        let context = "      - {key: pattern, op: regex, value: x, context: cookie}"
        #expect(Self.errors(Self.sensor("sensor.mine", patterns: context)).contains { $0.contains("pattern context 'cookie'") })
        let seventeen = (0..<17).map { "      - {key: pattern, op: regex, value: 'p\($0)'}" }.joined(separator: "\n")
        #expect(Self.errors(Self.sensor("sensor.mine", patterns: seventeen)).contains { $0.contains("17 patterns; NeuVector allows at most 16") })
        let long = "      - {key: pattern, op: regex, value: '\(String(repeating: "a", count: 513))'}"
        #expect(Self.errors(Self.sensor("sensor.mine", patterns: long)).contains { $0.contains("at most 512") })
        let badRegex = "      - {key: pattern, op: regex, value: 'a(b'}"
        #expect(Self.errors(Self.sensor("sensor.mine", patterns: badRegex)).contains { $0.contains("is not a valid regular expression") })
    }
}
