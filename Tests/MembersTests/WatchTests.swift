import Foundation
import HubTransport
@testable import Members
import PolicyCore
import PolicyHubTesting
import Testing

/// Kubernetes watches of the managed objects, against the API double serving them as the API server does.
@Suite(.serialized) struct WatchTests {
    typealias Fixture = KubernetesMemberTests.Fixture

    /// Events a watch delivered, in order.
    actor Seen {
        var events: [WatchEvent] = []
        func add(_ event: WatchEvent) { events.append(event) }
        var summary: [String] { events.map { "\($0.change.rawValue) \($0.identity)" } }
    }

    /// Waits (up to `seconds`) until `condition` holds.
    /// Waits for `condition` (long enough for a machine busy with the other suites; the tests time nothing).
    static func eventually(_ seconds: Double = 20, _ condition: () async -> Bool) async -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if await condition() { return true }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return await condition()
    }

    @Test func aWatchReportsEveryChangeToManagedObjectsAndNothingElse() async throws {
        let f = try Fixture()
        let member = f.member("w")
        let a = KubernetesMemberTests.object(.securityRule, "demo", "nv.a.demo")
        let b = KubernetesMemberTests.object(.securityRule, "demo", "nv.b.demo")
        _ = try await member.push([a, b])
        let listing = try await member.watchListing(.securityRule)
        #expect(Set(listing.objects.keys) == [a.identity, b.identity])
        let seen = Seen()
        let watching = Task { await member.watch(.securityRule, from: listing.resourceVersion, timeoutSeconds: 30) { await seen.add($0) } }
        #expect(await Self.eventually { f.double.activeWatches(cluster: "w") == 1 })

        f.double.remove(a.identity, cluster: "w")  // deleted by hand
        f.double.put(KubernetesMemberTests.object(.securityRule, "demo", "nv.b.demo", mode: "Monitor").value, cluster: "w")  // edited
        f.double.put(KubernetesMemberTests.object(.securityRule, "demo", "nv.c.demo").value, cluster: "w")  // added, labelled
        var unlabelled = KubernetesMemberTests.object(.securityRule, "demo", "nv.d.demo").value
        unlabelled = KubernetesAPIDouble.removing(["metadata", "labels"], from: unlabelled)
        f.double.put(unlabelled, cluster: "w")  // not the hub's: not watched
        f.double.put(KubernetesMemberTests.object(.clusterSecurityRule, "", "nv.e").value, cluster: "w")  // another kind
        // the label taken off a managed object: it leaves the watch's selector, reported as deleted
        f.double.put(KubernetesAPIDouble.removing(["metadata", "labels"], from: KubernetesMemberTests.object(.securityRule, "demo", "nv.c.demo").value), cluster: "w")

        #expect(await Self.eventually { await seen.events.count >= 4 })
        try await Task.sleep(nanoseconds: 200_000_000)
        #expect(await seen.summary == [
            "DELETED NvSecurityRule/demo/nv.a.demo", "MODIFIED NvSecurityRule/demo/nv.b.demo",
            "ADDED NvSecurityRule/demo/nv.c.demo", "DELETED NvSecurityRule/demo/nv.c.demo",
        ])
        let edited = await seen.events[1].object
        #expect(edited["spec"]?["target"]?["policymode"] == .string("Monitor"))
        watching.cancel()
        let (end, _) = await watching.value
        if case .failed(let error) = end { #expect(error.message.contains("cancelled")) } else { Issue.record("a cancelled watch ended as \(end)") }
        #expect(await Self.eventually { f.double.activeWatches(cluster: "w") == 0 })
    }

    @Test func aWatchResumesAfterItsTimeoutAndBookmarksMoveItsResourceVersionOn() async throws {
        let f = try Fixture()
        f.double.bookmarkInterval = 0.2
        let member = f.member("t")
        _ = try await member.push([KubernetesMemberTests.object(.securityRule, "demo", "nv.a.demo")])
        let listing = try await member.watchListing(.securityRule)
        f.double.put(KubernetesMemberTests.object(.clusterSecurityRule, "", "nv.other").value, cluster: "t")  // moves the version on
        let started = Date()
        let (end, delivered) = await member.watch(.securityRule, from: listing.resourceVersion, timeoutSeconds: 1) { _ in }
        #expect(Date().timeIntervalSince(started) >= 0.9)
        #expect(delivered >= 2, "bookmarks every 0.2 s over 1 s")
        guard case .closed(let version) = end else {
            Issue.record("ended as \(end)")
            return
        }
        #expect(Int(version) ?? 0 > Int(listing.resourceVersion) ?? 0, "a bookmark carries the newer resourceVersion")
        var cycle = WatchCycle()
        cycle.listed(resourceVersion: listing.resourceVersion)
        cycle.ended(end, from: listing.resourceVersion, lasted: 1, delivered: delivered)
        #expect(cycle.next() == .watch(resourceVersion: version))
    }

    @Test func aDroppedConnectionFailsTheWatchAndAnExpiredVersionAsksForAList() async throws {
        let f = try Fixture()
        let member = f.member("d")
        let a = KubernetesMemberTests.object(.securityRule, "demo", "nv.a.demo")
        _ = try await member.push([a])
        let listing = try await member.watchListing(.securityRule)
        let watching = Task { await member.watch(.securityRule, from: listing.resourceVersion, timeoutSeconds: 30) { _ in } }
        #expect(await Self.eventually { f.double.activeWatches(cluster: "d") == 1 })
        f.double.dropWatches(cluster: "d")
        let (dropped, _) = await watching.value
        guard case .failed = dropped else {
            Issue.record("a dropped connection ended the watch as \(dropped)")
            return
        }
        // changes missed while away are replayed from the history when the watch resumes
        f.double.remove(a.identity, cluster: "d")
        let seen = Seen()
        let resumed = Task { await member.watch(.securityRule, from: listing.resourceVersion, timeoutSeconds: 30) { await seen.add($0) } }
        #expect(await Self.eventually { await seen.summary == ["DELETED NvSecurityRule/demo/nv.a.demo"] })
        resumed.cancel()
        _ = await resumed.value
        // a compacted history: 410 Gone as an ERROR event, the cycle lists again
        f.double.compactHistory(cluster: "d")
        let (expired, _) = await member.watch(.securityRule, from: listing.resourceVersion, timeoutSeconds: 30) { _ in }
        guard case .expired(let message) = expired else {
            Issue.record("a compacted history ended the watch as \(expired)")
            return
        }
        #expect(message.contains("too old resource version"))
        var cycle = WatchCycle()
        cycle.listed(resourceVersion: listing.resourceVersion)
        cycle.ended(expired, from: listing.resourceVersion, lasted: 0.01, delivered: 0)
        #expect(cycle.next() == .list)
    }

    @Test func theCycleBacksOffOnFailuresAndResetsOnSuccess() {
        var cycle = WatchCycle()
        #expect(cycle.next() == .list)
        cycle.listFailed()
        #expect(cycle.next() == .wait(seconds: 0.5))
        #expect(cycle.next() == .list)
        cycle.listFailed()
        #expect(cycle.next() == .wait(seconds: 1))
        cycle.listed(resourceVersion: "7")
        #expect(cycle.failures == 0)
        #expect(cycle.next() == .watch(resourceVersion: "7"))
        let broken = WatchEnd.failed(MemberError(cluster: "c", message: "connection reset"))
        cycle.ended(broken, from: "7", lasted: 3, delivered: 0)
        #expect(cycle.next() == .wait(seconds: 0.5))
        #expect(cycle.next() == .watch(resourceVersion: "7"), "resumed from where it was, not listed again")
        for _ in 0..<10 { cycle.ended(broken, from: "7", lasted: 3, delivered: 0) }
        #expect(cycle.next() == .wait(seconds: WatchCycle.maxBackoff))
        // a server that closes every watch at once is not hammered
        var quick = WatchCycle()
        quick.listed(resourceVersion: "9")
        quick.ended(.closed(resourceVersion: "9"), from: "9", lasted: 0.01, delivered: 0)
        #expect(quick.next() == .wait(seconds: 0.5))
        var jittered = WatchCycle(jitter: 1)
        jittered.listFailed()
        #expect(jittered.next() == .wait(seconds: 0.75))
    }

    @Test(arguments: [
        (["{\"a\":1}\n{\"b\"", ":2}\n"], ["{\"a\":1}", "{\"b\":2}"]),
        (["{\"a\":1}\n\n", "\r\n{\"c\":3}\n"], ["{\"a\":1}", "{\"c\":3}"]),
        (["{\"a\"", ":1}"], []),
    ])
    func eventsAreSplitOnNewlinesWhateverTheChunks(chunks: [String], lines: [String]) {
        var splitter = LineSplitter(maxLine: 100)
        var out: [String] = []
        for chunk in chunks { out += (splitter.lines(adding: Array(chunk.utf8)) ?? []).map { String(decoding: $0, as: UTF8.self) } }
        #expect(out == lines)
    }

    @Test func aLineThatNeverEndsIsRefused() {
        var splitter = LineSplitter(maxLine: 10)
        #expect(splitter.lines(adding: Array("0123456789abc".utf8)) == nil)
    }
}
