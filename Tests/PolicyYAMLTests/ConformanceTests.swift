import Foundation
import PolicyCore
import PolicyYAML
import Testing

@Suite struct ConformanceTests {
    static let files = Paths.yamlFiles(in: Paths.conformance)

    @Test func corpusIsPresent() {
        #expect(ConformanceTests.files.count == 12)
    }

    /// Every real NeuVector sample parses into the model without an error, prints back to YAML, and that
    /// YAML parses to the same model.
    @Test(arguments: ConformanceTests.files)
    func roundTrip(_ name: String) throws {
        let bytes = try #require(FileManager.default.contents(atPath: Paths.conformance + "/" + name))
        let first = PolicyDecoder.decodeFile([UInt8](bytes), file: name)
        #expect(!first.diagnostics.hasErrors, "\(first.diagnostics)")
        #expect(!first.objects.isEmpty)
        let printed = YAMLWriter.documents(first.objects.map(\.wireValue))
        let second = PolicyDecoder.decodeFile(Array(printed.utf8), file: name + ".printed")
        #expect(!second.diagnostics.hasErrors, "\(second.diagnostics)\n\(printed)")
        #expect(second.objects == first.objects)
        // and the printed form is stable: printing again gives the same bytes
        #expect(YAMLWriter.documents(second.objects.map(\.wireValue)) == printed)
    }

    /// The fixtures are verbatim copies of the shared corpus; when the shared corpus is beside this
    /// checkout, they must not have drifted from it.
    @Test(.enabled(if: !Paths.yamlFiles(in: Paths.sharedConformance).isEmpty, "needs ../shared/conformance beside the checkout"))
    func fixturesMatchSharedCorpus() throws {
        let shared = Paths.yamlFiles(in: Paths.sharedConformance)
        #expect(shared == ConformanceTests.files)
        for name in shared {
            let a = FileManager.default.contents(atPath: Paths.sharedConformance + "/" + name)
            let b = FileManager.default.contents(atPath: Paths.conformance + "/" + name)
            #expect(a == b, "\(name) differs from the shared corpus")
        }
    }

    /// The upstream test's oracle for the multi-document export: 5 group definitions and 2 rules.
    @Test func multiDocumentExportMatchesUpstreamCounts() throws {
        let name = "list-groupdefs-and-securityrules-export-multidoc.yaml"
        let bytes = try #require(FileManager.default.contents(atPath: Paths.conformance + "/" + name))
        let decoded = PolicyDecoder.decodeFile([UInt8](bytes), file: name)
        #expect(decoded.objects.filter { $0.kind == .groupDefinition }.count == 5)
        #expect(decoded.objects.filter { $0.kind == .securityRule }.count == 1)
        #expect(decoded.objects.filter { $0.kind == .clusterSecurityRule }.count == 1)
        let rule = try #require(decoded.objects.first { $0.kind == .securityRule }?.securityRule)
        #expect(rule.ingress.count == 2)
        #expect(rule.target.policyMode == .notApplicable)
    }

    @Test func quirksReadAsNeuVectorMeansThem() throws {
        let bytes = try #require(FileManager.default.contents(
            atPath: Paths.conformance + "/nvsecurityrule-list-demo-exported.yaml"))
        let decoded = PolicyDecoder.decodeFile([UInt8](bytes), file: "x.yaml")
        let nginx = try #require(decoded.objects.first?.securityRule)
        // unquoted `op: =` is the string "="
        #expect(nginx.target.selector.criteria.first?.op == .equal)
        #expect(nginx.target.policyMode == .mode(.monitor))
        // `ingress: null` reads as an empty list
        let dns = try #require(decoded.objects.first { $0.metadata.name == "nv.kube-dns.kube-system" }?.securityRule)
        #expect(dns.ingress.isEmpty && dns.process.isEmpty)
    }
}
