import Foundation
import Testing

/// An unknown subcommand, cluster, environment, namespace, document or kind gets the nearest known name
/// (issue 17), with exit 64 for a command line the parser cannot take and 1 for a name the repository lacks.
@Suite struct NearestNameTests {
    typealias CLI = CommandLineTests

    @Test func anUnknownSubcommandSuggestsTheNearest() throws {
        let top = try CLI.run(["aply"])
        #expect(top.status == 64)
        #expect(top.stderr.hasPrefix("policyhub: unknown command 'aply'; did you mean 'apply'? (commands: validate, render"), "\(top.stderr)")
        let nested = try CLI.run(["token", "craete"])
        #expect(nested.status == 64)
        #expect(nested.stderr.contains("policyhub token: unknown command 'craete'; did you mean 'create'?"), "\(nested.stderr)")
        let far = try CLI.run(["xyzzyq"])
        #expect(far.status == 64 && far.stderr.contains("unknown command 'xyzzyq' (commands:") && !far.stderr.contains("did you mean"))
        // what is not a subcommand name is left to the parser: options, help, a plan file after apply
        #expect(try CLI.run(["help", "apply"]).status == 0)
        #expect(try CLI.run(["--version"]).status == 0)
    }

    @Test func unknownNamesInTheRepositorySuggestTheNearest() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            #expect(try CLI.run(["apply", "--repo", folder]).status == 0)
            let cases: [([String], String)] = [
                (["plan", "--cluster", "staging-eu1"], "unknown cluster 'staging-eu1'; did you mean 'staging-eu-1'?"),
                (["drift", "--cluster", "prod-eu1"], "unknown cluster 'prod-eu1'; did you mean 'prod-eu-1'?"),
                (["history", "--env", "prodution"], "unknown environment 'prodution'; did you mean 'production'?"),
                (["promote", "--to", "prodution", "--all"], "unknown environment 'prodution'; did you mean 'production'?"),
                (["promote", "--to", "production", "--namespace", "dmeo"], "unknown namespace 'dmeo'; did you mean 'demo'?"),
                (["promote", "--to", "production", "--global", "baseline"], "unknown global document 'baseline'; did you mean 'baseline-defaults'?"),
                (["promote", "--to", "production", "--document", "NvSecurityRule/demo/nv.nginx-pod.dmeo"],
                 "unknown document 'NvSecurityRule/demo/nv.nginx-pod.dmeo'; did you mean 'NvSecurityRule/demo/nv.nginx-pod.demo'?"),
            ]
            for (arguments, message) in cases {
                let run = try CLI.run(arguments + ["--repo", folder])
                #expect(run.status == 1, "\(arguments): \(run.stderr)")
                #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
            }
            let explain = try CLI.run(["explain", "--repo", folder, "--admission", "--cluster", "staging-eu-1", "--namespace", "paymnts", "--image", "x"])
            #expect(explain.stdout.contains("no documents of namespace 'paymnts'; did you mean 'payments'?"), "\(explain.stdout)")

            let member = folder + "/clusters/prod-us-1.yaml"
            try String(contentsOfFile: member, encoding: .utf8).replacingOccurrences(of: "environment: production", with: "environment: prodution")
                .write(toFile: member, atomically: true, encoding: .utf8)
            let nginx = folder + "/policies/namespaces/demo/nginx.yaml"
            try String(contentsOfFile: nginx, encoding: .utf8).replacingOccurrences(of: "kind: NvSecurityRule", with: "kind: NvSecurityRul")
                .write(toFile: nginx, atomically: true, encoding: .utf8)
            let validate = try CLI.run(["validate", "--repo", folder])
            #expect(validate.status == 1)
            #expect(validate.stdout.contains("clusters/prod-us-1.yaml:9:16: error: unknown environment 'prodution'; did you mean 'production'?"), "\(validate.stderr)")
            #expect(validate.stdout.contains("policies/namespaces/demo/nginx.yaml:4:7: error: unknown kind 'NvSecurityRul'; did you mean 'NvSecurityRule'?"))
        }
    }
}
