import Foundation

/// Generates synthetic policy repositories on disk for benchmarks and scale tests: realistic NeuVector
/// documents (learned groups, network, process and file rules) in the layout `policyhub` reads.
public struct TreeGenerator: Sendable {
    public var globalDocuments: Int
    public var namespaces: Int
    /// Network rules per namespace, spread over documents of four rules each.
    public var rulesPerNamespace: Int
    /// Regions clusters are spread over; with two environments, `2 × regions` placement classes.
    public var regions: Int
    public var clusters: Int

    public init(globalDocuments: Int, namespaces: Int, rulesPerNamespace: Int, regions: Int = 10, clusters: Int = 20) {
        self.globalDocuments = globalDocuments
        self.namespaces = namespaces
        self.rulesPerNamespace = rulesPerNamespace
        self.regions = regions
        self.clusters = clusters
    }

    /// Writes `policies/` and `clusters/` below `root`. Returns the number of bytes of policy YAML written.
    @discardableResult
    public func write(to root: String) throws -> Int {
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/policies/global", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/clusters", withIntermediateDirectories: true)
        var bytes = 0
        try Self.environments.write(toFile: root + "/clusters/environments.yaml", atomically: true, encoding: .utf8)
        for index in 0..<clusters {
            let env = index % 2 == 0 ? "staging" : "production"
            let region = "r\((index / 2) % regions)"
            let text = """
                apiVersion: policyhub.dev/v1alpha1
                kind: MemberCluster
                metadata:
                  name: c\(index)
                  labels: {region: \(region)}
                spec:
                  environment: \(env)
                  target:
                    directory: {path: .policyhub/gitops/c\(index)}

                """
            try text.write(toFile: root + "/clusters/c\(index).yaml", atomically: false, encoding: .utf8)
        }
        for g in 0..<globalDocuments {
            let text = globalDocument(g)
            bytes += text.utf8.count
            try text.write(toFile: root + "/policies/global/g\(g).yaml", atomically: false, encoding: .utf8)
        }
        if globalDocuments > 0 {
            // every other NeuVector kind once: admission, sensors, a response rule, a group definition, profiles
            let text = Self.otherKinds
            bytes += text.utf8.count
            try text.write(toFile: root + "/policies/global/other-kinds.yaml", atomically: false, encoding: .utf8)
        }
        for n in 0..<namespaces {
            let ns = "ns\(n)"
            let folder = root + "/policies/namespaces/\(ns)"
            try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let documents = max(1, (rulesPerNamespace + 3) / 4)
            var text = ""
            for d in 0..<documents {
                let rules = min(4, rulesPerNamespace - d * 4)
                text += namespaceDocument(ns: ns, service: d, services: documents, rules: max(rules, 0))
            }
            if n % 4 == 0 { text += Self.namespaceAdmission(ns) }
            bytes += text.utf8.count
            try text.write(toFile: folder + "/rules.yaml", atomically: false, encoding: .utf8)
        }
        return bytes
    }

    /// One document of each kind the hub passes through or compiles (SEMANTICS §1.3), valid together.
    public static let otherKinds = """
        apiVersion: neuvector.com/v1
        kind: NvAdmissionControlSecurityRule
        metadata: {name: generated-admission}
        spec:
          config: {enable: true, mode: protect, client_mode: service}
          rules:
          - action: deny
            comment: company registry only
            criteria:
            - {name: imageRegistry, op: notContainsAny, value: registry.example.com}
          - action: deny
            criteria:
            - {name: runAsPrivileged, op: =, value: "true"}
        ---
        apiVersion: neuvector.com/v1
        kind: NvWafSecurityRule
        metadata: {name: sensor.generated-waf}
        spec:
          sensor:
            name: sensor.generated-waf
            comment: generated
            rules:
            - name: traversal
              patterns:
              - {key: pattern, op: regex, value: '\\.\\./\\.\\./', context: url}
        ---
        apiVersion: neuvector.com/v1
        kind: NvDlpSecurityRule
        metadata: {name: sensor.generated-dlp}
        spec:
          sensor:
            name: sensor.generated-dlp
            comment: generated
            rules:
            - name: card
              patterns:
              - {key: pattern, op: regex, value: '4[0-9]{15}', context: body}
        ---
        apiVersion: neuvector.com/v1
        kind: NvResponseRuleSecurityRule
        metadata: {name: generated-quarantine}
        spec:
          rule:
            event: security-event
            actions: [quarantine]
            conditions:
            - {type: name, value: Container.Privilege.Escalation}
        ---
        apiVersion: neuvector.com/v1
        kind: NvGroupDefinition
        metadata: {name: generated-gateways, namespace: neuvector}
        spec:
          selector:
            name: generated-gateways
            comment: ""
            criteria:
            - {key: address, op: =, value: '*.gateway.example.com'}
        ---
        apiVersion: neuvector.com/v1
        kind: NvClusterSecurityRule
        metadata: {name: generated-gateway-egress}
        spec:
          target:
            selector: {name: containers, criteria: [{key: container, op: =, value: '*'}]}
          egress:
          - name: to-gateways
            action: allow
            ports: tcp/443
            selector: {name: generated-gateways, name_referral: true}
        ---
        apiVersion: neuvector.com/v1
        kind: NvVulnerabilityProfile
        metadata: {name: default}
        spec:
          profile:
            entries:
            - {name: CVE-2020-1234, comment: accepted, domains: [], images: []}
        ---
        apiVersion: neuvector.com/v1
        kind: NvComplianceProfile
        metadata: {name: default}
        spec:
          templates:
            disable_system: false
            entries:
            - {test_number: D.1.1.1, tags: [GDPR]}

        """

    /// A namespace team's admission exception, narrowed by the generated enforced denies.
    static func namespaceAdmission(_ ns: String) -> String {
        """
        apiVersion: neuvector.com/v1
        kind: NvAdmissionControlSecurityRule
        metadata: {name: admission-\(ns)}
        spec:
          rules:
          - action: allow
            comment: team exception
            criteria:
            - {name: namespace, op: containsAny, value: \(ns)}
            - {name: image, op: containsAny, value: 'team/\(ns)-*'}

        """
    }

    /// The environments file of generated trees (and of the test corpus): staging, then production.
    public static let environments = """
        apiVersion: policyhub.dev/v1alpha1
        kind: EnvironmentList
        environments:
        - {name: staging, defaultPolicyMode: Monitor, minimumPolicyMode: Discover}
        - {name: production, promotesFrom: staging, defaultPolicyMode: Protect, minimumPolicyMode: Monitor}

        """

    func globalDocument(_ g: Int) -> String {
        let tier = g % 4 == 3 ? "baseline" : "enforced"
        var placement = ""
        switch g % 5 {
        case 0: placement = "environment=production"
        case 1: placement = "region in (r\(g % regions),r\((g + 1) % regions))"
        case 2: placement = "region!=r\(g % regions)"
        default: placement = ""
        }
        let target: String
        if g % 3 == 0 {
            target = "name: containers\n      criteria:\n      - key: container\n        op: =\n        value: '*'"
        } else {
            let ns = "ns\((g * 7) % max(namespaces, 1))"
            target = "name: all-\(ns)\n      criteria:\n      - key: domain\n        op: =\n        value: \(ns)"
        }
        return """
            apiVersion: neuvector.com/v1
            kind: NvClusterSecurityRule
            metadata:
              name: global-\(g)
              annotations:
                policyhub.dev/tier: \(tier)
            \(placement.isEmpty ? "" : "    policyhub.dev/placement: '\(placement)'\n")spec:
              target:
                selector:
                  \(target)
              egress:
              - name: g\(g)-deny-ssh
                action: deny
                selector:
                  name: external
                  criteria: []
                applications:
                - SSH
                ports: tcp/22
                priority: \(g % 101)
              - name: g\(g)-allow-dns
                action: allow
                selector:
                  name: nv.kube-dns.kube-system
                  criteria:
                  - key: service
                    op: =
                    value: kube-dns.kube-system
                  - key: domain
                    op: =
                    value: kube-system
                applications:
                - DNS
                ports: udp/53
              ingress: []
              process:
              - action: deny
                name: tool\(g)
                path: /usr/bin/tool\(g)
              file:
              - filter: /etc/secret\(g)
                behavior: \(g % 2 == 0 ? "block_access" : "monitor_change")
                recursive: false
                app: []

            ---

            """
    }

    func namespaceDocument(ns: String, service: Int, services: Int, rules: Int) -> String {
        let svc = "svc\(service)"
        var egress = ""
        for r in 0..<rules {
            let peer = "svc\((service + r + 1) % max(services, 1))"
            egress += """
                  - name: \(svc)-to-\(peer)-\(r)
                    action: \(r % 3 == 2 ? "deny" : "allow")
                    selector:
                      name: nv.\(peer).\(ns)
                      criteria:
                      - key: service
                        op: =
                        value: \(peer).\(ns)
                      - key: domain
                        op: =
                        value: \(ns)
                    applications:
                    - HTTP
                    ports: tcp/\(8000 + r)
                    priority: \(r * 10)

                """
        }
        return """
            apiVersion: neuvector.com/v1
            kind: NvSecurityRule
            metadata:
              name: nv.\(svc).\(ns)
              namespace: \(ns)
            spec:
              target:
                policymode: \(service % 2 == 0 ? "Protect" : "Monitor")
                selector:
                  name: nv.\(svc).\(ns)
                  criteria:
                  - key: service
                    op: =
                    value: \(svc).\(ns)
                  - key: domain
                    op: =
                    value: \(ns)
              ingress: []
              egress:
            \(egress.isEmpty ? "    []\n" : egress)  process:
              - action: allow
                name: app
                path: /usr/local/bin/app
              - action: allow
                name: sh
                path: /bin/sh
              file:
              - filter: /etc/\(svc)/config.yaml
                behavior: monitor_change
                recursive: false
                app: []
            ---

            """
    }
}
