import Foundation
import HubTransport
import Members
import PolicyCore
import PolicyHubTesting
import Testing

/// Lists page as the API server pages them: `limit`, `continue` to the end, an expired token restarts once.
@Suite(.serialized) struct PagedListTests {
    static func fill(_ double: KubernetesAPIDouble, count: Int) {
        for index in 0..<count {
            double.put(KubernetesMemberTests.object(.clusterSecurityRule, "", String(format: "rule-%04d", index)).value, cluster: "big")
        }
    }

    @Test func twelveHundredObjectsThroughThreePages() async throws {
        let fixture = try KubernetesMemberTests.Fixture()
        Self.fill(fixture.double, count: 1200)
        let held = try await fixture.member("big").heldObjects()
        #expect(held.managed.count == 1200)
        let lists = fixture.double.requestLog.filter { $0.hasPrefix("GET /clusters/big/apis/neuvector.com/v1/nvclustersecurityrules?") }
        #expect(lists.count == 3, "\(lists)")
        #expect(lists.allSatisfy { $0.contains("limit=500") })
        #expect(lists.filter { $0.contains("continue=") }.count == 2)
    }

    @Test func anExpiredContinueTokenRestartsTheListOnce() async throws {
        let fixture = try KubernetesMemberTests.Fixture()
        Self.fill(fixture.double, count: 1200)
        fixture.double.setFault(.expireContinue(count: 1), cluster: "big")
        let held = try await fixture.member("big").heldObjects()
        #expect(held.managed.count == 1200)
        // a token that keeps expiring fails by name instead of looping
        fixture.double.setFault(.expireContinue(count: 10), cluster: "big")
        await #expect(throws: MemberError.self) { try await fixture.member("big").heldObjects() }
        do {
            _ = try await fixture.member("big").managedObjects()
            Issue.record("listed although every continue token expired")
        } catch {
            #expect(error.description.contains("410"), "\(error)")
        }
    }
}
