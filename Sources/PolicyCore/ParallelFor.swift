/// How a caller lets the pure core spread independent work over cores: `run(n, body)` calls `body` once
/// for each index in `0..<n`, in any order and on any thread, and returns when all calls have returned.
public struct ParallelFor: Sendable {
    public let run: @Sendable (Int, @Sendable (Int) -> Void) -> Void

    public init(_ run: @escaping @Sendable (Int, @Sendable (Int) -> Void) -> Void) {
        self.run = run
    }

    /// One index after another, on the calling thread.
    public static let serial = ParallelFor { count, body in
        for index in 0..<count { body(index) }
    }
}

/// Results written by parallel work, each index by exactly one call, read after all calls returned.
public final class ResultSlots<T>: @unchecked Sendable {
    private let storage: UnsafeMutableBufferPointer<T?>

    public init(count: Int) {
        storage = .allocate(capacity: count)
        storage.initialize(repeating: nil)
    }

    deinit {
        storage.deinitialize()
        storage.deallocate()
    }

    /// Writes slot `index`. Distinct indices may be written from different threads at once.
    public func set(_ index: Int, _ value: T) { storage[index] = value }

    /// Every written slot, in index order.
    public var values: [T] { storage.compactMap { $0 } }
}
