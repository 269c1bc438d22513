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
