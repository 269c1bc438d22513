import Foundation
import Testing

/// `explain --admission` and admission validation through the `policyhub` executable, on the example
/// repository: the security team's enforced denies (company registry, no privileged containers), a
/// baseline deny of `:latest` tags, and the payments team's exception for its vendor's ledger image.
@Suite struct AdmissionCommandTests {
    typealias CLI = CommandLineTests

    static func explain(_ folder: String, _ arguments: [String]) throws -> CommandLineTests.Run {
        try CLI.run(["explain", "--repo", folder, "--admission", "--cluster", "staging-eu-1"] + arguments)
    }

    @Test func eachTierDecidesWhatItShould() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            // the namespace exception beats the baseline deny of :latest
            let vendor = try Self.explain(folder, ["--namespace", "payments", "--image", "registry.corp.example/vendor/ledger:latest"])
            #expect(vendor.status == 0, "\(vendor.stderr)")
            #expect(vendor.stdout.contains("decision: ADMIT\ndecided by: allow by admission rule #0 (allow: vendor ledger image, tag latest) [namespace] at policies/namespaces/payments/admission.yaml:9:5"),
                    "\(vendor.stdout)")
            #expect(vendor.stdout.contains("beat (NeuVector runs every allow rule before any deny rule):\n  - deny by admission rule #0 (deny: pin image tags) [baseline]"))
            // but it was narrowed: the same image from another registry meets the enforced deny
            let elsewhere = try Self.explain(folder, ["--namespace", "payments", "--image", "docker.io/vendor/ledger:latest"])
            #expect(elsewhere.stdout.contains("decision: DENY\ndecided by: deny by admission rule #0 (deny: images come from the company registry only) [enforced] at policies/global/admission.yaml:15:5"),
                    "\(elsewhere.stdout)")
            #expect(elsewhere.stdout.contains("overridden: namespace admission allow #0 (allow: vendor ledger image, tag latest) is narrowed"))
            // and a privileged one meets the other enforced deny
            let privileged = try Self.explain(folder, ["--namespace", "payments", "--image", "registry.corp.example/vendor/ledger:latest",
                                                       "--property", "runAsPrivileged=true"])
            #expect(privileged.stdout.contains("decided by: deny by admission rule #1 (deny: no privileged containers) [enforced]"), "\(privileged.stdout)")
            // another namespace has no exception
            let demo = try Self.explain(folder, ["--namespace", "demo", "--image", "registry.corp.example/vendor/ledger:latest"])
            #expect(demo.stdout.contains("decided by: deny by admission rule #0 (deny: pin image tags) [baseline]"), "\(demo.stdout)")
            let pinned = try Self.explain(folder, ["--namespace", "demo", "--image", "registry.corp.example/team/app:1.2", "--output", "json"])
            let json = try #require(try JSONSerialization.jsonObject(with: Data(pinned.stdout.utf8)) as? [String: Any])
            #expect(json["decision"] as? String == "allow")
            #expect(json["deciding"] is NSNull)
        }
    }

    @Test func usageErrorsSayWhatIsMissing() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let bare = try Self.explain(folder, [])
            #expect(bare.status == 64)
            #expect(bare.stderr.contains("--admission needs --namespace NS"), "\(bare.stderr)")
            let mixed = try Self.explain(folder, ["--namespace", "demo", "--target", "nv.web.demo"])
            #expect(mixed.status == 64)
            let label = try Self.explain(folder, ["--namespace", "demo", "--label", "novalue"])
            #expect(label.stderr.contains("'novalue' is not key=value"), "\(label.stderr)")
        }
    }

    @Test func aNamespaceTeamCannotAdmitInAnotherNamespace() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let path = folder + "/policies/namespaces/payments/admission.yaml"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try text.replacingOccurrences(of: "      value: payments\n", with: "      value: payments,demo\n")
                .write(toFile: path, atomically: true, encoding: .utf8)
            let validate = try CLI.run(["validate", "--repo", folder])
            #expect(validate.status == 1)
            #expect(validate.stdout.contains("policies/namespaces/payments/admission.yaml:14:14: error: an admission rule of namespace 'payments' may admit only 'payments'"),
                    "\(validate.stdout)")
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1)
            #expect(!FileManager.default.fileExists(atPath: folder + "/.policyhub/gitops/staging-eu-1/cluster/nvadmissioncontrolsecurityrules/local.yaml"))
        }
    }

    @Test func aDirectoryMemberHoldsLocalAndLosesItWithTheLastDocument() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let file = folder + "/.policyhub/gitops/staging-eu-1/cluster/nvadmissioncontrolsecurityrules/local.yaml"
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let pushed = try String(contentsOfFile: file, encoding: .utf8)
            #expect(pushed.contains("value: registry.corp.example"))
            for name in ["policies/global/admission.yaml", "policies/global/admission-baseline.yaml", "policies/namespaces/payments/admission.yaml"] {
                try FileManager.default.removeItem(atPath: folder + "/" + name)
            }
            let again = try CLI.run(["apply", "--repo", folder])
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stderr.contains("1 deleted"), "\(again.stderr)")
            #expect(!FileManager.default.fileExists(atPath: file))
        }
    }
}

/// The other kinds of SEMANTICS §1.3 on one cluster: sensors a rule refers to must be placed with it, and a
/// group definition goes with the documents that refer to it.
@Suite struct OtherKindsTests {
    typealias CLI = CommandLineTests

    static let wafRule = """
        apiVersion: neuvector.com/v1
        kind: NvSecurityRule
        metadata: {name: nv.api.payments, namespace: payments}
        spec:
          target:
            selector:
              name: nv.api.payments
              criteria:
              - {key: service, op: =, value: api.payments}
              - {key: domain, op: =, value: payments}
          waf:
            status: true
            settings:
            - {name: sensor.sqlinject, action: deny}
        """

    static let sensor = """
        apiVersion: neuvector.com/v1
        kind: NvWafSecurityRule
        metadata:
          name: sensor.sqlinject
          annotations: {policyhub.dev/placement: "environment=staging"}
        spec:
          sensor:
            name: sensor.sqlinject
            comment: union select
            rules:
            - name: union
              patterns:
              - {key: pattern, op: regex, value: 'union\\s+select', context: url}
        """

    @Test func aSensorNotPlacedOnTheClusterIsAnError() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            try Self.wafRule.write(toFile: folder + "/policies/namespaces/payments/waf.yaml", atomically: true, encoding: .utf8)
            try FileManager.default.removeItem(atPath: folder + "/policies/namespaces/payments/api.yaml")
            let missing = try CLI.run(["validate", "--repo", folder])
            #expect(missing.status == 1)
            #expect(missing.stdout.contains("policies/namespaces/payments/waf.yaml:14:7: error: unresolved: the WAF sensor 'sensor.sqlinject' is not placed on this cluster"),
                    "\(missing.stdout)")
            // placed on staging only: production clusters still lack it, and are named
            try Self.sensor.write(toFile: folder + "/policies/global/waf-sensor.yaml", atomically: true, encoding: .utf8)
            let partly = try CLI.run(["validate", "--repo", folder])
            #expect(partly.status == 1)
            #expect(partly.stdout.contains("on prod-eu-1, prod-us-1)"), "\(partly.stdout)")
            try Self.sensor.replacingOccurrences(of: "  annotations: {policyhub.dev/placement: \"environment=staging\"}\n", with: "")
                .write(toFile: folder + "/policies/global/waf-sensor.yaml", atomically: true, encoding: .utf8)
            let placed = try CLI.run(["validate", "--repo", folder])
            #expect(placed.status == 0, "\(placed.stdout)")
        }
    }

    @Test func anUnknownFieldOfAnotherKindIsAnErrorAtItsKey() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            try Self.sensor.replacingOccurrences(of: "context: url", with: "contxt: url")
                .write(toFile: folder + "/policies/global/waf-sensor.yaml", atomically: true, encoding: .utf8)
            let run = try CLI.run(["validate", "--repo", folder])
            #expect(run.status == 1)
            #expect(run.stdout.contains("policies/global/waf-sensor.yaml:13:60: error: unknown field 'contxt' in an item of patterns (did you mean 'context'?)"),
                    "\(run.stdout)")
        }
    }

    @Test func aGroupDefinitionGoesWithItsReferrers() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            try """
                apiVersion: neuvector.com/v1
                kind: NvGroupDefinition
                metadata: {name: payment-gateways, namespace: neuvector}
                spec:
                  selector:
                    name: payment-gateways
                    comment: ""
                    criteria:
                    - {key: address, op: =, value: '*.gateway.example.com'}
                ---
                apiVersion: neuvector.com/v1
                kind: NvGroupDefinition
                metadata: {name: unused, namespace: neuvector}
                spec:
                  selector: {name: unused, comment: "", criteria: [{key: address, op: =, value: 10.0.0.0/8}]}
                """.write(toFile: folder + "/policies/global/groups.yaml", atomically: true, encoding: .utf8)
            try """
                apiVersion: neuvector.com/v1
                kind: NvClusterSecurityRule
                metadata:
                  name: gateways
                  annotations: {policyhub.dev/placement: "environment=production"}
                spec:
                  target:
                    selector: {name: containers, criteria: [{key: container, op: =, value: '*'}]}
                  egress:
                  - name: to-gateways
                    action: allow
                    ports: tcp/443
                    selector: {name: payment-gateways, name_referral: true}
                """.write(toFile: folder + "/policies/global/gateways.yaml", atomically: true, encoding: .utf8)
            let staging = try CLI.run(["render", "--repo", folder, "--cluster", "staging-eu-1"])
            #expect(staging.status == 0, "\(staging.stderr)")
            #expect(!staging.stdout.contains("kind: NvGroupDefinition"), "\(staging.stdout)")
            let production = try CLI.run(["render", "--repo", folder, "--cluster", "prod-eu-1"])
            #expect(production.stdout.contains("name: payment-gateways\n  namespace: neuvector"), "\(production.stdout)")
            #expect(!production.stdout.contains("name: unused"))
        }
    }
}

/// A tree with thousands of problems prints a readable start and a count, not every line.
@Suite struct BoundedOutputTests {
    typealias CLI = CommandLineTests

    @Test func validatePrintsTheFirstThousandFindingsAndHowManyMore() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            var text = """
                apiVersion: neuvector.com/v1
                kind: NvClusterSecurityRule
                metadata: {name: many-bad-ports}
                spec:
                  target:
                    selector: {name: containers, criteria: [{key: container, op: =, value: '*'}]}
                  egress:

                """
            for i in 0..<1_500 { text += "  - {name: r\(i), action: deny, ports: 'tcp/99999', selector: {name: external}}\n" }
            try text.write(toFile: folder + "/policies/global/many.yaml", atomically: true, encoding: .utf8)
            let run = try CLI.run(["validate", "--repo", folder])
            #expect(run.status == 1)
            let lines = run.stdout.split(separator: "\n")
            #expect(lines.count == 1_001, "\(lines.count) lines")
            #expect(lines.last == "... and 500 more not shown (the first 1000 of 1500 are above; fix those and run again)")
            #expect(run.stderr.contains("1500 errors"), "\(run.stderr)")
        }
    }
}

/// A misspelt cluster or environment name gets the nearest known one.
@Suite struct DidYouMeanTests {
    typealias CLI = CommandLineTests

    @Test func aMisspeltClusterOrEnvironmentIsNamedNearest() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let render = try CLI.run(["render", "--repo", folder, "--cluster", "prod-eu1"])
            #expect(render.status == 1)
            #expect(render.stderr.contains("unknown cluster 'prod-eu1'; did you mean 'prod-eu-1'? (known: prod-eu-1, prod-us-1, staging-eu-1)"),
                    "\(render.stderr)")
            let plan = try CLI.run(["plan", "--repo", folder, "--cluster", "stagin-eu-1"])
            #expect(plan.stderr.contains("did you mean 'staging-eu-1'?"), "\(plan.stderr)")
            let far = try CLI.run(["render", "--repo", folder, "--cluster", "elsewhere"])
            #expect(far.stderr.contains("unknown cluster 'elsewhere' (known: "), "\(far.stderr)")
        }
    }
}
