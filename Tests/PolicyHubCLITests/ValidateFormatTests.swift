import Foundation
import Testing

/// `validate --output text|json|github|sarif|junit` on a tree with errors in three files (a YAML syntax
/// error, an unknown kind, an unknown environment), each pinned byte for byte; the SARIF log is checked
/// against the SARIF 2.1.0 JSON schema that ships with this test (OASIS's sarif-schema-2.1.0.json, read by
/// the jsonschema package of Debian's python3). Re-record on purpose only:
/// `POLICYHUB_RECORD_GOLDEN=1 swift test --filter ValidateFormatTests`, then review the diff.
@Suite struct ValidateFormatTests {
    static let schema = Repo.root + "/Tests/PolicyHubCLITests/Schemas/sarif-schema-2.1.0.json"

    /// The example with three broken files.
    static func brokenTree(_ folder: String) throws {
        try Repo.copyExample(to: folder)
        try "apiVersion: neuvector.com/v1\nkind: NvClusterSecurityRule\nmetadata:\n  name: x\n  bad: [\n"
            .write(toFile: folder + "/policies/global/broken.yaml", atomically: true, encoding: .utf8)
        let nginx = folder + "/policies/namespaces/demo/nginx.yaml"
        let text = try String(contentsOfFile: nginx, encoding: .utf8)
        try text.replacingOccurrences(of: "kind: NvSecurityRule", with: "kind: NvSecurityRul")
            .write(toFile: nginx, atomically: true, encoding: .utf8)
        let member = folder + "/clusters/prod-us-1.yaml"
        try String(contentsOfFile: member, encoding: .utf8).replacingOccurrences(of: "environment: production", with: "environment: prodution")
            .write(toFile: member, atomically: true, encoding: .utf8)
    }

    @Test(arguments: ["text", "json", "github", "sarif", "junit"])
    func everyFormatMatchesItsGolden(_ format: String) throws {
        try Repo.withTemporaryFolder { folder in
            try Self.brokenTree(folder)
            let result = try CommandLineTests.run(["validate", "--repo", folder, "--output", format])
            #expect(result.status == 1, "errors exit 1 in every format: \(result.stderr)")
            #expect(result.stderr.contains("3 errors, 0 warnings"))
            let path = GoldenTests.folder + "/validate." + format
            if ProcessInfo.processInfo.environment["POLICYHUB_RECORD_GOLDEN"] == "1" {
                try result.stdout.write(toFile: path, atomically: true, encoding: .utf8)
            }
            let golden = try String(contentsOfFile: path, encoding: .utf8)
            #expect(result.stdout == golden, "validate --output \(format) differs from \(path)")
        }
    }

    @Test func sarifIsValidAgainstTheSchemaAndNamesEachCheck() throws {
        try Repo.withTemporaryFolder { folder in
            try Self.brokenTree(folder)
            let result = try CommandLineTests.run(["validate", "--repo", folder, "--output", "sarif"])
            let log = folder + "/out.sarif"
            try result.stdout.write(toFile: log, atomically: true, encoding: .utf8)
            try Self.expectValid(log)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let run = try #require((json["runs"] as? [[String: Any]])?.first)
            let results = try #require(run["results"] as? [[String: Any]])
            #expect(Set(results.compactMap { $0["ruleId"] as? String }) == ["yaml-syntax", "policy-schema", "fleet"])
            let uris = results.compactMap { (($0["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any])?["artifactLocation"] as? [String: Any] }
                .compactMap { $0["uri"] as? String }
            #expect(Set(uris) == ["policies/global/broken.yaml", "policies/namespaces/demo/nginx.yaml", "clusters/prod-us-1.yaml"])
            // a clean tree is a valid log with no result
            let clean = try CommandLineTests.run(["validate", "--output", "sarif"])
            #expect(clean.status == 0)
            try clean.stdout.write(toFile: log, atomically: true, encoding: .utf8)
            try Self.expectValid(log)
            #expect(clean.stdout.contains("\"results\": []"))
        }
    }

    /// The validator must be able to fail: a log missing `version` is refused.
    @Test func theSchemaCheckRefusesAnInvalidLog() throws {
        try Repo.withTemporaryFolder { folder in
            try #"{"runs": []}"#.write(toFile: folder + "/bad.sarif", atomically: true, encoding: .utf8)
            #expect(try Self.schemaCheck(folder + "/bad.sarif").status != 0)
        }
    }

    @Test func githubAnnotationsEscapeWhatTheRunnerWouldSplit() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            // a file name with a comma and a colon, and a message holding a percent sign
            try "apiVersion: neuvector.com/v1\nkind: [\n".write(toFile: folder + "/policies/global/a,b:c%.yaml", atomically: true, encoding: .utf8)
            let result = try CommandLineTests.run(["validate", "--repo", folder, "--output", "github"])
            #expect(result.status == 1)
            #expect(result.stdout.hasPrefix("::error file=policies/global/a%2Cb%3Ac%25.yaml,line="), "\(result.stdout)")
            #expect(!result.stdout.dropFirst(2).contains("::error"), "one annotation: \(result.stdout)")
        }
    }

    @Test func renderPlanAndApplyReportConflictsInTheSameFormats() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            // a structured format needs a file: standard error carries progress lines too
            let refused = try CommandLineTests.run(["render", "--repo", folder, "--diagnostics", "sarif"])
            #expect(refused.status == 64)
            #expect(refused.stderr.contains("--diagnostics-out"))
            for command in ["render", "plan", "apply"] {
                let report = folder + "/\(command).sarif"
                let run = try CommandLineTests.run([command, "--repo", folder, "--diagnostics", "sarif", "--diagnostics-out", report,
                                                    "--state", folder + "/state.sqlite"])
                #expect(run.status != 1, "\(command): \(run.stderr)")
                try Self.expectValid(report)
                let text = try String(contentsOfFile: report, encoding: .utf8)
                // the example holds shadowed rules: each is a result at its rule, with its check's id
                #expect(text.contains("\"ruleId\": \"precedence-"), "\(command): \(text.prefix(400))")
                #expect(!run.stderr.contains(": warning: ["), "\(command): conflicts went to the report, not standard error")
            }
            let github = try CommandLineTests.run(["plan", "--repo", folder, "--diagnostics", "github", "--state", folder + "/state.sqlite"])
            #expect(github.stderr.contains("::warning file=policies/"), "\(github.stderr)")
        }
    }

    static func schemaCheck(_ log: String) throws -> CommandLineTests.Run {
        let script = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            jsonschema.Draft4Validator.check_schema(schema)
            errors = list(jsonschema.Draft4Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
            for error in errors[:10]:
                print("/".join(map(str, error.absolute_path)) + ": " + error.message[:300], file=sys.stderr)
            sys.exit(1 if errors else 0)
            """
        return try CommandLineTests.runProcess("/usr/bin/python3", ["-c", script, schema, log])
    }

    static func expectValid(_ log: String) throws {
        let check = try schemaCheck(log)
        #expect(check.status == 0, "SARIF schema: \(check.stderr.suffix(1500))")
    }
}
