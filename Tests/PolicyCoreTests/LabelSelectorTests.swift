import PolicyCore
import Testing

@Suite struct LabelSelectorTests {
    static let labels = ["environment": "production", "region": "eu", "tier": "gold"]

    @Test(arguments: [
        ("", true), ("environment=production", true), ("environment==production", true),
        ("environment=staging", false), ("region!=us", true), ("region!=eu", false),
        ("region in (eu,us)", true), ("region in (us, ap)", false), ("region notin (us)", true),
        ("region notin (eu)", false), ("tier", true), ("canary", false), ("!canary", true), ("!tier", false),
        ("environment=production,region in (eu,us),!canary", true), ("environment=production, tier=silver", false),
    ])
    func matches(_ text: String, _ expected: Bool) throws {
        let selector = try LabelSelector.parse(text)
        #expect(selector.matches(LabelSelectorTests.labels) == expected)
    }

    @Test(arguments: [
        ("region in eu", 11, "expected '('"), ("region in (eu", 14, "expected ',' or ')'"),
        ("region ~ eu", 8, "expected an operator"), ("=eu", 1, "expected a label key"),
        ("region=eu,,tier=gold", 11, "expected a label key"), ("region is eu", 8, "unknown operator 'is'"),
        ("region=e u", 10, "expected ','"), ("-bad=x", 1, "not a valid label key"),
    ])
    func errorsHaveAColumn(_ text: String, _ column: Int, _ fragment: String) {
        do {
            _ = try LabelSelector.parse(text)
            Issue.record("'\(text)' parsed")
        } catch {
            #expect(error.column == column, "\(text): \(error.message)")
            #expect(error.message.contains(fragment), "\(text): \(error.message)")
        }
    }
}

@Suite struct PortSetTests {
    @Test(arguments: [
        ("any", "any"), ("", "any"), ("80", "tcp/80"), ("tcp/22,udp/53", "tcp/22,udp/53"), ("UDP/53 TCP/22", "tcp/22,udp/53"),
        ("8500-8508", "tcp/8500-8508"), ("tcp/any", "tcp/any"), ("icmp", "icmp"), ("tcp/80,tcp/81,tcp/82", "tcp/80-82"),
    ])
    func normalises(_ text: String, _ expected: String) throws {
        #expect(try PortSet.parse(text).get().description == expected)
    }

    @Test(arguments: ["tcp/99999", "sctp/80", "80-70", "http", "tcp/", "1-2-3"])
    func rejects(_ text: String) {
        #expect((try? PortSet.parse(text).get()) == nil)
    }

    @Test(arguments: [
        ("any", "tcp/22", true), ("tcp/22", "any", false), ("tcp/1-1024", "tcp/22,tcp/80", true),
        ("tcp/22", "udp/22", false), ("tcp/any", "tcp/8080", true), ("tcp/any", "icmp", false),
        ("tcp/80,tcp/443", "tcp/80-443", false),
    ])
    func superset(_ a: String, _ b: String, _ expected: Bool) throws {
        #expect(try PortSet.parse(a).get().isSuperset(of: try PortSet.parse(b).get()) == expected)
    }

    @Test func applications() {
        #expect(ApplicationSet(["http", "SSL"]).isSuperset(of: ApplicationSet(["HTTP"])))
        #expect(!ApplicationSet(["HTTP"]).isSuperset(of: ApplicationSet([])))
        #expect(ApplicationSet(["any"]).isSuperset(of: ApplicationSet(["Redis"])))
        #expect(ApplicationSet.canonicalName("redis") == "Redis")
        #expect(ApplicationSet.canonicalName("gopher") == nil)
    }
}

@Suite struct SmallRulesTests {
    @Test(arguments: [("*.demo", "web.demo", true), ("web?", "web1", true), ("web?", "web12", false),
                      ("a*b*c", "aXbYc", true), ("a*b*c", "aXbY", false), ("*", "", true), ("x", "x", true)])
    func glob(_ pattern: String, _ text: String, _ expected: Bool) {
        #expect(Glob.matches(pattern, text) == expected)
    }

    @Test(arguments: [("1h", 3600), ("30m", 1800), ("1h30m", 5400), ("90s", 90), ("2d", 172_800)])
    func durations(_ text: String, _ seconds: Int) {
        #expect(DurationText.seconds(text) == seconds)
    }

    @Test(arguments: ["", "h", "1x", "1", "-1h"])
    func badDurations(_ text: String) {
        #expect(DurationText.seconds(text) == nil)
    }

    @Test(arguments: [("/a/b/../c", "/a/c"), ("/a/./b/", "/a/b"), ("//x", "/x"), ("/", "/"), ("", ".")])
    func cleanPath(_ path: String, _ expected: String) {
        #expect(NeuVectorNames.cleanPath(path) == expected)
    }

    @Test func precedenceBandsDoNotOverlap() {
        for p in 0...100 {
            for q in 0...100 {
                #expect(Precedence.outputPriority(tier: .enforced, priority: p) > Precedence.outputPriority(tier: .namespace, priority: q))
                #expect(Precedence.outputPriority(tier: .namespace, priority: p) > Precedence.outputPriority(tier: .baseline, priority: q))
            }
        }
        #expect(Precedence.band(.enforced) == 67...100)
        #expect(Precedence.band(.namespace) == 34...66)
        #expect(Precedence.band(.baseline) == 0...33)
    }
}

@Suite struct FleetValidatorTests {
    static func location() -> Origin { Origin(location: SourceLocation(file: "clusters/x.yaml", line: 3, column: 5)) }

    @Test func unknownEnvironmentAndDuplicates() {
        let fleet = FleetConfig(
            environments: [Environment(name: "staging")],
            clusters: [
                MemberCluster(name: "a", environment: "prod", target: .directory(path: "x"), origin: Self.location()),
                MemberCluster(name: "a", environment: "staging", target: .directory(path: "x"), origin: Self.location()),
                MemberCluster(name: "Bad_Name", labels: ["environment": "x"], environment: "staging",
                              target: .directory(path: "x"), origin: Self.location()),
            ])
        let result = FleetValidator.validate(fleet)
        #expect(result.value == nil)
        let messages = result.diagnostics.map(\.message)
        #expect(messages.contains { $0.contains("unknown environment 'prod'") })
        #expect(messages.contains { $0.contains("cluster 'a' is registered twice") })
        #expect(messages.contains { $0.contains("cluster name 'Bad_Name'") })
        #expect(messages.contains { $0.contains("the label 'environment' is set from spec.environment") })
    }

    @Test func exactlyOneRootAndNoCycles() {
        let two = FleetValidator.validate(FleetConfig(environments: [Environment(name: "a"), Environment(name: "b")], clusters: []))
        #expect(two.diagnostics.contains { $0.message.contains("exactly one environment must have no promotesFrom") })
        let cycle = FleetValidator.validate(FleetConfig(environments: [
            Environment(name: "root"), Environment(name: "a", promotesFrom: "b"), Environment(name: "b", promotesFrom: "a"),
        ], clusters: []))
        #expect(cycle.diagnostics.contains { $0.message.contains("forms a cycle") })
    }

    @Test func environmentsAreOrderedFromTheRoot() throws {
        let result = FleetValidator.validate(FleetConfig(environments: [
            Environment(name: "production", promotesFrom: "staging"), Environment(name: "staging"),
            Environment(name: "canary", promotesFrom: "production"),
        ], clusters: []))
        #expect(try #require(result.value).environments.map(\.name) == ["staging", "production", "canary"])
    }

    @Test func targetProblemsAreReported() {
        let fleet = FleetConfig(environments: [Environment(name: "staging")], clusters: [
            MemberCluster(name: "k", environment: "staging", target: .kubernetes(kubeconfig: "k.yaml", context: "nope"),
                          origin: Self.location()),
        ])
        let result = FleetValidator.validate(fleet) { cluster in
            [.error("context 'nope' is not in kubeconfig 'k.yaml'", at: cluster.origin.at("target"))]
        }
        #expect(result.diagnostics.map(\.description) == ["clusters/x.yaml:3:5: error: context 'nope' is not in kubeconfig 'k.yaml'"])
    }
}
