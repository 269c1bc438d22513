import Foundation
import Testing

/// An ambiguous conflict is an error in validate, plan and apply alike (it was an error only in render:
/// validate passed and apply pushed a rule pair NeuVector may apply in either order).
@Suite struct AmbiguityTests {
    typealias CLI = CommandLineTests

    static let ambiguous = """
        apiVersion: neuvector.com/v1
        kind: NvSecurityRule
        metadata:
          name: nv.amb.demo
          namespace: demo
        spec:
          target:
            selector:
              name: nv.amb.demo
              criteria:
              - {key: service, op: "=", value: amb.demo}
              - {key: domain, op: "=", value: demo}
          ingress:
          - {name: web-in, action: allow, ports: tcp/80, applications: [any], selector: {name: external}}
          - {name: web-block, action: deny, ports: tcp/80, applications: [any], selector: {name: external}}
        """

    @Test func validatePlanAndApplyRefuseAnAmbiguousPair() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            try Self.ambiguous.write(toFile: folder + "/policies/namespaces/demo/amb.yaml", atomically: true, encoding: .utf8)
            let validate = try CLI.run(["validate", "--repo", folder])
            #expect(validate.status == 1)
            #expect((validate.stdout + validate.stderr).contains("policies/namespaces/demo/amb.yaml:15:5: error: ambiguous: rules 'web-in' (allow) and 'web-block' (deny) have the same priority 34"),
                    "\(validate.stdout)\(validate.stderr)")
            #expect(try CLI.run(["plan", "--repo", folder]).status == 1)
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1 && apply.stderr.contains("nothing was recorded or pushed"))
            #expect(!FileManager.default.fileExists(atPath: folder + "/.policyhub/gitops/staging-eu-1"))
        }
    }
}
