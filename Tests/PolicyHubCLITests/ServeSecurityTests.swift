import Foundation
import HubTransport
import PolicyCore
import Testing

/// The review's findings against the daemon, each reproduced as it was found.
@Suite struct ServeSecurityTests {
    typealias CLI = CommandLineTests

    /// The escape of the review: a payments document whose target reaches every namespace.
    static func escape(target: String) -> String {
        """
        apiVersion: neuvector.com/v1
        kind: NvSecurityRule
        metadata:
          name: esc
          namespace: payments
        spec:
          target:
            selector: \(target)
          egress:
          - {name: out, action: allow, selector: {name: external}, applications: [any], ports: any}
        """
    }

    @Test(arguments: ["{name: containers, criteria: [], name_referral: true}", "{name: nodes, name_referral: true}",
                      "{name: everyone, criteria: [{key: domain, op: '=', value: payments}, {key: domain, op: '=', value: demo}]}"])
    func aNamespaceOwnerCannotSelectAnotherNamespace(_ target: String) async throws {
        try await ServeTests.withHub { hub in
            let before = await hub.revisions("staging")
            let put = await hub.request("PUT", "/v1/namespaces/payments/documents/NvSecurityRule/esc", token: hub.tokens["payments-owner"],
                                        body: Self.escape(target: target))
            #expect(put.status == 422, "\(put.bodyText)")
            #expect(put.bodyText.contains("body:8:"), "\(put.bodyText)")
            #expect(put.bodyText.contains("NvSecurityRule in namespace 'payments'"), "\(put.bodyText)")
            #expect(await hub.revisions("staging") == before)
            #expect(!FileManager.default.fileExists(atPath: hub.folder + "/policies/namespaces/payments/esc.yaml"))
            // what demo's workloads get is still decided by demo's and the global rules
            let explain = try CLI.run(["explain", "--repo", hub.folder, "--cluster", "staging-eu-1", "--target", "nv.nginx-pod.demo",
                                       "--peer", "external", "--port", "tcp/443", "--app", "HTTP", "--direction", "egress"])
            #expect(!explain.stdout.contains("payments/esc"), "\(explain.stdout)")
        }
    }

    /// An acknowledged API write and a CLI `apply` at the same time: the write is never dropped from the
    /// revision the apply records (the review lost it in 2 of 10 rounds).
    @Test func anAPIWriteRacingAnApplyIsNeverLost() async throws {
        try await ServeTests.withHub { hub in
            let admin = hub.tokens["security-admin"]
            for round in 0..<8 {
                let name = "race-\(round)"
                let folder = hub.folder
                async let applied = Task.detached { try CLI.run(["apply", "--repo", folder]) }.value
                let put = await hub.request("PUT", "/v1/documents/NvClusterSecurityRule/\(name)", token: admin,
                                            body: ServeTests.globalRule(name))
                #expect(put.status == 200, "\(put.bodyText)")
                let apply = try await applied
                #expect(apply.status == 0, "\(apply.stderr)")
                // the desired revision of staging holds the acknowledged document, whichever came first
                let documents = await hub.request("GET", "/v1/documents", token: admin)
                #expect(documents.bodyText.contains("\"\(name)\""), "round \(round): \(name) was lost: \(documents.bodyText.prefix(300))")
                // and a second apply records nothing new: the working tree and the revision agree
                let again = try CLI.run(["apply", "--repo", folder])
                #expect(!again.stderr.contains("recorded revision"), "round \(round): \(again.stderr)")
            }
        }
    }

    /// Two promotions at once: each answer names the revision that promotion recorded (or one is a conflict).
    @Test func concurrentPromotionsEachNameTheirOwnRevision() async throws {
        try await ServeTests.withHub { hub in
            let promoter = hub.tokens["promoter"]
            async let a = hub.request("POST", "/v1/promotions", token: promoter, body: #"{"to":"production","namespaces":["demo"],"force":true}"#)
            async let b = hub.request("POST", "/v1/promotions", token: promoter, body: #"{"to":"production","namespaces":["payments"],"force":true}"#)
            let (first, second) = await (a, b)
            let landed = [first, second].filter { $0.status == 201 }
            #expect(landed.count >= 1, "\(first.bodyText) \(second.bodyText)")
            for other in [first, second] where other.status != 201 { #expect(other.status == 409, "\(other.bodyText)") }
            let ids = landed.compactMap { hub.json($0)["revision"]?["id"]?.stringValue }
            #expect(Set(ids).count == landed.count, "both answers named \(ids)")
            let revisions = await hub.request("GET", "/v1/environments/production/revisions", token: promoter)
            for id in ids { #expect(revisions.bodyText.contains("\"\(id)\"")) }
        }
    }
}
