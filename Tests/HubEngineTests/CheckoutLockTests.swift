import Foundation
@testable import HubEngine
import PolicyCore
import Testing

/// While a sync of the followed branch has a commit it has not accepted yet checked out, no session of the
/// process reads the checkout (a reconcile that read it then could push a commit a gate refuses).
@Suite struct CheckoutLockTests {
    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.withLock { value } }
        func set() { lock.withLock { value = true } }
    }

    @Test func aSessionWaitsWhileASyncHoldsTheCheckout() throws {
        try RepositoryFilesTests.withExample { folder in
            let engine = HubEngine(root: folder, statePath: nil)
            let holding = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            let released = DispatchSemaphore(value: 0)
            Thread {
                try? CheckoutLock.exclusive(folder) { () throws(EngineError) in
                    holding.signal()
                    release.wait()
                }
                released.signal()
            }.start()
            holding.wait()
            let opened = Flag()
            let done = DispatchSemaphore(value: 0)
            Thread {
                if (try? engine.open()) != nil { opened.set() }
                done.signal()
            }.start()
            #expect(done.wait(timeout: .now() + 1) == .timedOut, "the session read the checkout while the sync held it")
            #expect(!opened.isSet)
            release.signal()
            #expect(done.wait(timeout: .now() + 60) == .success)
            #expect(opened.isSet)
            released.wait()
            // the sync's own reads (nested in the same task) do not wait for themselves
            let nested = try CheckoutLock.exclusive(folder) { () throws(EngineError) in try engine.open().fleet.clusters.count }
            #expect(nested > 0)
        }
    }
}
